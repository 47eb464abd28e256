// The egress policy (FirewallEgress, kernel/types.ts) in the nftables table. A network with a
// policy gets one chain `net-<id>-egress` for both families, entered only by the first packet of a
// connection (`ct state new`) from its bridge:
// - forwarded: from its `from` chain (reached by `iifname vmap @from`), after isolation and before
//   the accept of what leaves the network, so no other network's `to` chain (published ports,
//   allow-list) sees a new connection the policy refuses;
// - to the host itself: from `input`, through the verdict map `egress` (bridge → jump to the
//   chain): one hash lookup, whatever the number of networks.
// In the chain: return for the network's own subnets, reject for deny items, return for allow
// items, then a reject of the whole family when there is an allow-list. Items that share a
// protocol and ports are one rule whose destination is an anonymous interval set (intervals.ts),
// so a long list of CIDRs is one lookup. Return goes back to the calling chain: passing never
// accepts (the rest of the policy, or the host's own input rules, still decide). Destinations
// and ports are the connection's original ones (`ct original ip daddr`, `ct original
// proto-dst`), as the container addressed them before any DNAT on the host.
import type { FirewallEgressItem, FirewallNetworkPolicy, NftRule } from '../types.ts';
import * as x from './expr.ts';
import { addressMatch } from './intervals.ts';

type Family = 4 | 6;
const FAMILIES: readonly Family[] = [4, 6];

/** The egress chain of a network (a per-network chain: `net-<id>-<role>`). */
export const egressChainName = (networkId: string): string => `net-${networkId}-egress`;

const familyOf = (cidr: string): Family => (cidr.includes(':') ? 6 : 4);

/** True when the network's policy judges connections of this family (as the iptables backend's). */
function judges(n: FirewallNetworkPolicy, family: Family): boolean {
  const e = n.egress;
  if (e === null || (family === 6 && !n.ipv6)) return false;
  return e.allow !== null || e.deny.some((i) => i.family === family);
}

/** The network has an egress chain. */
export const hasEgressChain = (n: FirewallNetworkPolicy): boolean => FAMILIES.some((f) => judges(n, f));

/** `ct state new jump net-<id>-egress`, for the network's `from` chain; nothing without a policy. */
export function egressJump(n: FirewallNetworkPolicy): NftRule[] {
  return hasEgressChain(n) ? [[x.ctNew, x.jump(egressChainName(n.networkId))]] : [];
}

/** `ct state new iifname vmap @egress`, for `input`. */
export const egressLookup: NftRule = [x.ctNew, x.vmap(x.meta('iifname'), 'egress')];

const daddr = (family: Family, cidrs: readonly string[]): x.Expr => x.match(x.ctOriginal(family === 4 ? 'ip daddr' : 'ip6 daddr'), addressMatch(family, cidrs));

/** Items of one family grouped by protocol and ports (in the order first given): one rule each. */
function itemRules(items: readonly FirewallEgressItem[], family: Family, verdict: x.Expr): NftRule[] {
  const groups = new Map<string, { item: FirewallEgressItem; cidrs: string[] }>();
  for (const i of items.filter((i) => i.family === family)) {
    const key = `${i.proto}/${i.ports?.join('-') ?? ''}`;
    const g = groups.get(key) ?? { item: i, cidrs: [] };
    g.cidrs.push(i.cidr);
    groups.set(key, g);
  }
  return [...groups.values()].map(({ item, cidrs }) => {
    const proto = item.proto === null ? [] : [x.l4proto(item.proto === 'icmp' && family === 6 ? 'ipv6-icmp' : item.proto)];
    const ports = item.ports === null ? [] : [x.match(x.ctOriginal('proto-dst'), item.ports[0] === item.ports[1] ? item.ports[0] : { range: [...item.ports] })];
    return [...proto, ...ports, daddr(family, cidrs), verdict];
  });
}

/** The rules of the network's egress chain (both families); empty without a policy. */
export function egressPolicyRules(n: FirewallNetworkPolicy): NftRule[] {
  const e = n.egress;
  const families = FAMILIES.filter((f) => judges(n, f));
  if (e === null || families.length === 0) return [];
  const own = families.flatMap((f) => {
    const cidrs = e.own.filter((c) => familyOf(c) === f);
    return cidrs.length === 0 ? [] : [[daddr(f, cidrs), x.ret]];
  });
  const deny = families.flatMap((f) => itemRules(e.deny, f, x.reject(null)));
  if (e.allow === null) return [...own, ...deny];
  const allow = e.allow;
  const listed = families.flatMap((f) => itemRules(allow, f, x.ret));
  return [...own, ...deny, ...listed, ...families.map((f) => [x.reject(f)])];
}
