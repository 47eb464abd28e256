// IPv6 NAT in the `inet ledgernet` table (Docker 27+'s default for `--ipv6` networks), shaped
// like IPv4's (render.ts): published ports are elements of maps of their own (`dnat6_*`,
// `bound6_*`: the key is the same `meta l4proto . th dport`, the value an IPv6 address), looked
// up by `dnat ip6` rules next to the IPv4 ones in `prerouting`/`output` (in an inet table a
// `dnat ip` statement leaves IPv6 packets alone, and the reverse); egress is masqueraded (or
// SNATed to host_ipv6) through `ip6 saddr vmap @masq6` into the network's `net-<id>-masq6`
// chain; hairpin through an IPv6 published port is masqueraded in the network's `nat` chain.
// There is no rule for ::1: IPv6 has no route_localnet (ports on [::1] are served by the userland proxy, kernel/proxy/).
import type { FirewallNetworkPolicy, NftRule, NftSetSpec } from '../types.ts';
import * as x from './expr.ts';
import { portElements } from './port-elements.ts';

const PORT_KEY = ['inet_proto', 'inet_service'];
const BOUND_KEY = ['ipv6_addr', 'inet_proto', 'inet_service'];

/** The sets of IPv6 NAT, declared whether or not a network uses them (rules refer to them). */
export const NAT6_SETS: Readonly<Record<string, NftSetSpec>> = {
  masq6: { is: 'map', type: 'ipv6_addr', map: 'verdict', flags: ['interval'] },
  dnat6_addr: { is: 'map', type: PORT_KEY, map: 'ipv6_addr' },
  dnat6_port: { is: 'map', type: PORT_KEY, map: 'inet_service' },
  bound6_addr: { is: 'map', type: BOUND_KEY, map: 'ipv6_addr' },
  bound6_port: { is: 'map', type: BOUND_KEY, map: 'inet_service' },
};

/** The rules `prerouting` and `output` add for IPv6 published ports. */
export const DNAT6_RULES: readonly NftRule[] = [
  [x.localDst, x.dnatVia(x.portKey(false, 'ip6'), 'dnat6_addr', 'dnat6_port', 'ip6')],
  [x.localDst, x.dnatVia(x.portKey(true, 'ip6'), 'bound6_addr', 'bound6_port', 'ip6')],
];

/** The rule `postrouting` adds: IPv6 sources to their network's masquerade chain. */
export const MASQ6_RULE: NftRule = [x.vmap(x.payload('ip6', 'saddr'), 'masq6')];

/** Adds an element to a set of the table being rendered. */
type Add = (set: string, value: unknown, endpointId?: string) => void;

/**
 * The network's IPv6 NAT: its `masq6` chain (returned, null when it masquerades nothing) and
 * the elements that lead there and to its endpoints' IPv6 published ports.
 */
export function nat6Network(n: FirewallNetworkPolicy, masqChain: string, add: Add): NftRule[] | null {
  const nat = n.nat6;
  if (nat === undefined || n.internal) return null;
  for (const f of nat.forwards) {
    const { addrs, ports } = portElements(f);
    for (const e of addrs) add(f.hostIp === '' ? 'dnat6_addr' : 'bound6_addr', e, f.endpointId);
    for (const e of ports) add(f.hostIp === '' ? 'dnat6_port' : 'bound6_port', e, f.endpointId);
  }
  if (nat.masquerade.length === 0) return null;
  for (const pool of nat.masquerade) add('masq6', [x.prefix(pool), x.jump(masqChain)]);
  return [[x.oifname(n.bridge), x.ret], [x.natTo('ip6', nat.snat)]];
}

/** Hairpin through an IPv6 published port: masqueraded like IPv4's (the network's `nat` chain). */
export function hairpin6(n: FirewallNetworkPolicy): NftRule[] {
  const nat = n.nat6;
  if (nat === undefined || n.internal || nat.forwards.length === 0) return [];
  return nat.pools.map((pool) => [x.match(x.payload('ip6', 'saddr'), x.prefix(pool)), x.ctDnat, x.masquerade]);
}

