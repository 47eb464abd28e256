// Published ports as `ledgernet status` lists them: Docker cannot show a remote driver's port map
// (`docker port` and the PORTS of `docker ps` stay empty), so this is where an operator sees which
// container a host port leads to. Read from the desired firewall (the DNAT that a pass writes),
// so a row is exactly what the kernel is made to forward; the IPv6 loopback's proxied ports are
// the proxy table's.
import { short, withPort, type State } from '../events/index.ts';
import type { PortForward } from '../kernel/types.ts';
import { desiredFromState } from '../reconciler/index.ts';
import { table } from './table.ts';

export interface PortRow {
  readonly proto: PortForward['proto'];
  /** The host address (`0.0.0.0`, `::` for every one of the family) and the host ports, first and last. */
  readonly hostIp: string;
  readonly hostPorts: readonly [number, number];
  /** The container's address and its first port. */
  readonly ip: string;
  readonly port: number;
  readonly networkId: string;
  readonly endpointId: string;
  /** Its container as Docker's API names it (null until read). */
  readonly container: string | null;
}

/** Every host port a ledgernet network forwards to a container, IPv4 then IPv6, by host port. Pure. */
export function portRows(state: State): PortRow[] {
  const rows = desiredFromState(state).firewall.networks.flatMap((n) =>
    [...n.forwards.map((f) => [f, '0.0.0.0'] as const), ...(n.nat6?.forwards ?? []).map((f) => [f, '::'] as const)].map(
      ([f, every]): PortRow => ({
        proto: f.proto,
        hostIp: f.hostIp === '' ? every : f.hostIp,
        hostPorts: f.hostPorts,
        ip: f.ip,
        port: f.port,
        networkId: n.networkId,
        endpointId: f.endpointId,
        container: state.endpoints[f.endpointId]?.container?.name ?? null,
      }),
    ),
  );
  const family = (r: PortRow) => (r.hostIp.includes(':') ? 6 : 4);
  return rows.sort((a, b) => family(a) - family(b) || a.hostPorts[0] - b.hostPorts[0] || a.proto.localeCompare(b.proto) || a.hostIp.localeCompare(b.hostIp));
}

export function portsTable(rows: readonly PortRow[]): string {
  return table(
    ['PUBLISHED', 'TO', 'CONTAINER', 'ENDPOINT'],
    rows.map((r) => {
      const [lo, hi] = r.hostPorts;
      const host = lo === hi ? `${lo}` : `${lo}-${hi}`;
      const to = lo === hi ? `${r.port}` : `${r.port}-${r.port + hi - lo}`;
      return [`${withPort(r.hostIp, host)}/${r.proto}`, withPort(r.ip, to), r.container ?? '-', short(r.endpointId)];
    }),
  );
}
