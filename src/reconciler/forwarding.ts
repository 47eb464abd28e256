// Forwarding turned off under ledgernet's networks. IPv4: the kernel forwards a packet only when the
// link it came in on has `net.ipv4.conf.<link>.forwarding` on: off on a network's bridge, nothing
// its containers send goes beyond the host; off on the uplink (a default route's device), neither
// the replies to them nor published ports from other hosts get to them. Docker turns forwarding
// on everywhere when it starts (`net.ipv4.ip_forward=1`); a reload of /etc/sysctl.d or a network
// manager restarting an interface can turn it off afterwards, and then containers lose the outside
// with nothing in Docker saying why. IPv6: the kernel forwards only while
// `net.ipv6.conf.all.forwarding` is on, whatever the links say; Docker turns it on only for IPv6
// networks of its own bridge driver. It is the host's setting, not ledgernet's to change unless
// the operator says so (`serve --ipv6-forwarding`: planIpv6Forwarding); otherwise this names it
// (status, the daemon's log, a dry-run's warning) with the command that fixes it.
import type { NetworkState, State } from '../events/domain/types.ts';
import type { KernelSnapshot } from '../kernel/types.ts';
import type { Action } from './actions.ts';

export interface ForwardingProblem {
  /** The links whose IPv4 forwarding is off and matters: the networks' bridges, then the uplinks. */
  readonly devices: readonly string[];
  /** IPv6 forwarding is off (`net.ipv6.conf.all.forwarding = 0`) and networks with IPv6 need it. */
  readonly ipv6Off: boolean;
  /** The networks whose containers it cuts off (Docker's names where known, else 12 hex of the id), sorted. */
  readonly networks: readonly string[];
  readonly message: string;
}

/**
 * What forwarding that is off costs the networks of `state` with a way out of the host (not
 * `--internal`; IPv4 links for those with IPv4, the namespace's IPv6 setting for those with IPv6),
 * as the full read `snapshot` shows it; null when nothing (or when the read did not look). Pure.
 */
export function forwardingProblem(state: State, snapshot: Pick<KernelSnapshot, 'links' | 'routes' | 'forwardingOff' | 'ipv6Forwarding'>): ForwardingProblem | null {
  const present = new Set(snapshot.links.map((l) => l.name));
  const outward = Object.values(state.networks).filter((n) => !n.internal && present.has(n.bridge));
  const v4 = ipv4Problem(outward.filter((n) => n.ipv4Data.length > 0), snapshot);
  const v6 = snapshot.ipv6Forwarding?.all === false ? outward.filter((n) => n.ipv6Data.length > 0) : [];
  if (v4 === null && v6.length === 0) return null;
  const v6Message =
    `IPv6 forwarding is off (net.ipv6.conf.all.forwarding = 0): what containers of ${labels(v6).join(', ')} send over IPv6 goes no further than the host, ` +
    `and nothing from beyond the host (replies, published ports) reaches them over IPv6. ` +
    `Docker turns it on only for IPv6 networks of its own bridge driver. ` +
    `Turn it on: sysctl -w net.ipv6.conf.all.forwarding=1 net.ipv6.conf.default.forwarding=1, and keep it on in /etc/sysctl.d/ ` +
    `(a link that takes its IPv6 default route from router advertisements then needs net.ipv6.conf.<link>.accept_ra=2), ` +
    `or run ledgernet serve with --ipv6-forwarding to have it turned on as Docker's bridge driver does`;
  return {
    devices: v4?.devices ?? [],
    ipv6Off: v6.length > 0,
    networks: [...new Set([...(v4?.networks ?? []), ...labels(v6)])].sort(),
    message: [...(v4 === null ? [] : [v4.message]), ...(v6.length > 0 ? [v6Message] : [])].join('. '),
  };
}

const labels = (ns: readonly NetworkState[]): string[] => ns.map((n) => n.name ?? n.networkId.slice(0, 12)).sort();

/** IPv4 forwarding off on the bridges of `outward` (networks with IPv4) or on a default route's device. */
function ipv4Problem(outward: readonly NetworkState[], snapshot: Pick<KernelSnapshot, 'routes' | 'forwardingOff'>): Omit<ForwardingProblem, 'ipv6Off'> | null {
  const off = new Set(snapshot.forwardingOff ?? []);
  if (off.size === 0 || outward.length === 0) return null;
  const bridges = outward.filter((n) => off.has(n.bridge));
  const uplinks = [...new Set((snapshot.routes ?? []).flatMap((r) => (r.family === 4 && r.dst === '0.0.0.0/0' && r.dev !== null ? [r.dev] : [])))].filter((d) => off.has(d)).sort();
  if (bridges.length === 0 && uplinks.length === 0) return null;
  const devices = [...bridges.map((n) => n.bridge).sort(), ...uplinks];
  const effect = [
    ...(bridges.length > 0 ? [`what containers of ${labels(bridges).join(', ')} send goes no further than the host`] : []),
    ...(uplinks.length > 0 ? [`nothing that comes in on ${uplinks.join(', ')} (replies from beyond the host, published ports from other hosts) reaches containers of any ledgernet network`] : []),
  ].join('; ');
  const fix = devices.map((d) => `sysctl -w net.ipv4.conf.${d.replaceAll('.', '/')}.forwarding=1`).join('; ');
  return {
    devices,
    networks: labels(uplinks.length > 0 ? outward : bridges),
    message:
      `IPv4 forwarding is off on ${devices.join(', ')} (net.ipv4.conf.<link>.forwarding = 0): ${effect}. ` +
      `Docker turns it on when it starts; something turned it off since (a reload of /etc/sysctl.d, a network manager). ` +
      `Turn it on: ${fix} (or sysctl -w net.ipv4.ip_forward=1 for every interface), and keep it on in /etc/sysctl.d/`,
  };
}

/** The networks that reach beyond the host over IPv6 (not `--internal`, with IPv6 subnets). */
const ipv6Outward = (state: State): NetworkState[] => Object.values(state.networks).filter((n) => !n.internal && n.ipv6Data.length > 0);

/**
 * `serve --ipv6-forwarding`: turns the namespace's IPv6 forwarding on (`default` and `all`, as
 * Docker's bridge driver does for an IPv6 network of its own) while a network of `state` has a way
 * out over IPv6 and the full read `snapshot` found it off; nothing when the read did not look (the
 * model). Never turned off: other networks (Docker's own) may need it. Pure.
 */
export function planIpv6Forwarding(state: State, snapshot: Pick<KernelSnapshot, 'ipv6Forwarding'>): Action[] {
  const f = snapshot.ipv6Forwarding;
  if (f === undefined || (f.all && f.default)) return [];
  const networks = labels(ipv6Outward(state));
  if (networks.length === 0) return [];
  const found = [...(f.default ? [] : ['default']), ...(f.all ? [] : ['all'])].map((k) => `net.ipv6.conf.${k}.forwarding = 0`).join(', ');
  return [
    {
      kind: 'sysctl.ipv6_forwarding',
      name: 'net.ipv6.conf.all.forwarding',
      owner: { networkId: null, endpointId: null },
      reason: 'drifted',
      detail: `on expected (serve --ipv6-forwarding: ${networks.join(', ')} reach beyond the host over IPv6), found ${found}`,
    },
  ];
}
