// IPv4 forwarding turned off under ledgernet's networks. The kernel forwards a packet only when the
// link it came in on has `net.ipv4.conf.<link>.forwarding` on: off on a network's bridge, nothing
// its containers send goes beyond the host; off on the uplink (a default route's device), neither
// the replies to them nor published ports from other hosts get to them. Docker turns forwarding
// on everywhere when it starts (`net.ipv4.ip_forward=1`); a reload of /etc/sysctl.d or a network
// manager restarting an interface can turn it off afterwards, and then containers lose the outside
// with nothing in Docker saying why. It is the host's setting, not ledgernet's to change: this
// names it (status, the daemon's log, a dry-run's warning) with the command that fixes it.
import type { NetworkState, State } from '../events/domain/types.ts';
import type { KernelSnapshot } from '../kernel/types.ts';

export interface ForwardingProblem {
  /** The links whose forwarding is off and matters: the networks' bridges, then the uplinks. */
  readonly devices: readonly string[];
  /** The networks whose containers it cuts off (Docker's names where known, else 12 hex of the id), sorted. */
  readonly networks: readonly string[];
  readonly message: string;
}

/**
 * What forwarding that is off costs the networks of `state` with a way out of the host (not
 * `--internal`, with IPv4), as the full read `snapshot` shows it; null when nothing (or when the
 * read did not look: no `forwardingOff`). Pure.
 */
export function forwardingProblem(state: State, snapshot: Pick<KernelSnapshot, 'links' | 'routes' | 'forwardingOff'>): ForwardingProblem | null {
  const off = new Set(snapshot.forwardingOff ?? []);
  if (off.size === 0) return null;
  const present = new Set(snapshot.links.map((l) => l.name));
  const outward = Object.values(state.networks).filter((n) => !n.internal && n.ipv4Data.length > 0 && present.has(n.bridge));
  if (outward.length === 0) return null;
  const labels = (ns: readonly NetworkState[]) => ns.map((n) => n.name ?? n.networkId.slice(0, 12)).sort();
  const bridges = outward.filter((n) => off.has(n.bridge));
  const uplinks = [...new Set((snapshot.routes ?? []).flatMap((r) => (r.family === 4 && r.dst === '0.0.0.0/0' && r.dev !== null ? [r.dev] : [])))].filter((d) => off.has(d)).sort();
  if (bridges.length === 0 && uplinks.length === 0) return null;
  const devices = [...bridges.map((n) => n.bridge).sort(), ...uplinks];
  const networks = labels(uplinks.length > 0 ? outward : bridges);
  const effect = [
    ...(bridges.length > 0 ? [`what containers of ${labels(bridges).join(', ')} send goes no further than the host`] : []),
    ...(uplinks.length > 0 ? [`nothing that comes in on ${uplinks.join(', ')} (replies from beyond the host, published ports from other hosts) reaches containers of any ledgernet network`] : []),
  ].join('; ');
  const fix = devices.map((d) => `sysctl -w net.ipv4.conf.${d.replaceAll('.', '/')}.forwarding=1`).join('; ');
  return {
    devices,
    networks,
    message:
      `IPv4 forwarding is off on ${devices.join(', ')} (net.ipv4.conf.<link>.forwarding = 0): ${effect}. ` +
      `Docker turns it on when it starts; something turned it off since (a reload of /etc/sysctl.d, a network manager). ` +
      `Turn it on: ${fix} (or sysctl -w net.ipv4.ip_forward=1 for every interface), and keep it on in /etc/sysctl.d/`,
  };
}
