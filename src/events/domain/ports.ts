// Host ports for published ports. Docker leaves the choice to the driver for `-P` and `-p 80`
// (HostPort 0) and for `-p 8000-8010:80` (a host range for one container port). The choice is
// made here, in `decide`, from the state alone: deterministic (the lowest port not published by
// another ledgernet endpoint), and recorded in the `endpoint.external.programmed` event, so a
// replay or a second daemon reading the log arrives at the same rules.
import { DriverError } from '../../errors.ts';
import type { EndpointState, PortBinding, State } from './types.ts';

/** Docker's own range for ephemeral published ports on Linux. */
const EPHEMERAL_PORTS: readonly [number, number] = [49153, 65535];

export const PROTO_NAME: Readonly<Record<number, string>> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };

function key(proto: number, port: number): string {
  return `${proto}/${port}`;
}

/**
 * Resolves every binding to one host port (`hostPort === hostPortEnd`). Keeps the ports the
 * endpoint already holds when Docker repeats the call.
 * @throws DriverError `LN_ERR_CONFLICT` when a fixed port is taken or a range has no free port.
 */
export function resolvePorts(portmap: readonly PortBinding[], state: State, ep: EndpointState): PortBinding[] {
  const taken = new Map<string, string>();
  for (const other of Object.values(state.endpoints)) {
    if (other.endpointId === ep.endpointId) continue;
    for (const p of other.portmap) taken.set(key(p.proto, p.hostPort), other.endpointId);
  }
  const out: PortBinding[] = [];
  const mine = new Set<string>();
  // Fixed ports first, so a range never takes a port a fixed binding of this call asks for.
  const fixed = portmap.filter((p) => p.hostPort !== 0 && p.hostPortEnd <= p.hostPort);
  for (const p of fixed) {
    const owner = taken.get(key(p.proto, p.hostPort));
    if (owner !== undefined) {
      throw new DriverError(
        'LN_ERR_CONFLICT',
        `host port ${PROTO_NAME[p.proto] ?? p.proto}/${p.hostPort} is already published by endpoint ${owner.slice(0, 12)}`,
      );
    }
    mine.add(key(p.proto, p.hostPort));
  }
  for (const p of portmap) {
    if (fixed.includes(p)) {
      out.push({ ...p, hostPortEnd: p.hostPort });
      continue;
    }
    const [lo, hi] = p.hostPort === 0 ? EPHEMERAL_PORTS : [p.hostPort, p.hostPortEnd];
    const previous = ep.portmap.find(
      (q) => q.proto === p.proto && q.port === p.port && q.hostIp === p.hostIp && q.hostPort >= lo && q.hostPort <= hi,
    );
    const free = (n: number) => !taken.has(key(p.proto, n)) && !mine.has(key(p.proto, n));
    let chosen = previous && free(previous.hostPort) ? previous.hostPort : 0;
    for (let n = lo; chosen === 0 && n <= hi; n++) if (free(n)) chosen = n;
    if (chosen === 0) {
      throw new DriverError('LN_ERR_CONFLICT', `no free host port in ${lo}-${hi} for ${PROTO_NAME[p.proto] ?? p.proto}/${p.port}`);
    }
    mine.add(key(p.proto, chosen));
    out.push({ ...p, hostPort: chosen, hostPortEnd: chosen });
  }
  return out;
}
