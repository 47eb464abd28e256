// Docker 28's gateway modes and direct-access protection in the `inet ledgernet` table; the same
// verdicts as the iptables backend's (kernel/iptables/gateway-mode.ts, which says why each).
// - Ingress (the network's `to` chain, when there is no allow-list): `nat` accepts DNATed
//   connections (both families) and, from a trusted interface, the published container ports addressed directly;
//   `routed` accepts the published container ports from anywhere, and ICMP; `nat-unprotected`
//   accepts everything of its family.
// - Protection: base chain `direct` (hook prerouting, priority -150: after conntrack, before DNAT)
//   lets replies pass and looks the destination up in the interval verdict maps `direct4` and
//   `direct6` (a `nat` network's subnets → its chain `net-<id>-direct`): from the bridge, a trusted
//   interface, to the gateway or to an allow-list port it returns; anything else is dropped. One
//   lookup, whatever the number of networks; a network is its map elements and its chain.
import type { FirewallNetworkPolicy, NftHook, NftRule, NftSetSpec } from '../types.ts';
import * as x from './expr.ts';

const MAP = (type: string): NftSetSpec => ({ is: 'map', type, map: 'verdict', flags: ['interval'] });
export const DIRECT_SETS: Readonly<Record<string, NftSetSpec>> = { direct4: MAP('ipv4_addr'), direct6: MAP('ipv6_addr') };

const familyOf = (cidr: string): 4 | 6 => (cidr.includes(':') ? 6 : 4);
const ipProto = (f: 4 | 6) => (f === 4 ? 'ip' : 'ip6');
const nfproto = (f: 4 | 6) => x.match(x.meta('nfproto'), f === 4 ? 'ipv4' : 'ipv6');
const icmp = (f: 4 | 6) => x.l4proto(f === 4 ? 'icmp' : 'ipv6-icmp');

/** A subnet as nft prints an interval element's key. */
function prefix(cidr: string): unknown {
  const [addr = '', len = ''] = cidr.split('/');
  return { prefix: { addr, len: Number(len) } };
}

/** The families of network `n` its policy covers in the `inet` table. */
const families = (n: FirewallNetworkPolicy): (4 | 6)[] => (n.ipv6 ? [4, 6] : [4]);

/** The base chain of the protection: replies pass, everything else is looked up by destination. */
export function directChain(): { hook: NftHook; rules: NftRule[] } {
  return {
    hook: { type: 'filter', hook: 'prerouting', prio: -150, policy: 'accept' },
    rules: [[x.established, x.accept], [x.vmap(x.payload('ip', 'daddr'), 'direct4')], [x.vmap(x.payload('ip6', 'daddr'), 'direct6')]],
  };
}

/** The subnets of `n` that are guarded (its families in the `nat` gateway mode), as map keys by set. */
export function directElements(n: FirewallNetworkPolicy): { set: string; key: unknown }[] {
  if (n.internal || n.directRouting === true) return [];
  return n.subnets
    .filter((s) => families(n).includes(familyOf(s)) && n.gatewayMode[familyOf(s)] === 'nat')
    .map((s) => ({ set: familyOf(s) === 4 ? 'direct4' : 'direct6', key: prefix(s) }));
}

/** The network's protection chain (only reached for its guarded subnets). */
export function directRules(n: FirewallNetworkPolicy): NftRule[] {
  const gateways = n.gateways.map((g) => [x.match(x.payload(ipProto(familyOf(g)), 'daddr'), g), x.ret]);
  const allow = (n.allow ?? []).flatMap((a) => (a.ports === null ? families(n).map((f) => [icmp(f), x.ret]) : [[x.dport(a.proto, a.ports), x.ret]]));
  return [[x.iifname(n.bridge), x.ret], ...n.trusted.map((t) => [x.iifname(t), x.ret]), ...gateways, ...allow, [x.drop]];
}

/** What the gateway modes let into bridge `n` from outside when there is no allow-list. */
export function openRules(n: FirewallNetworkPolicy): NftRule[] {
  return families(n).flatMap((f) => {
    const direct = (pre: x.Expr[]) =>
      n.opened.filter((o) => o.family === f).map((o) => [...pre, x.match(x.payload(ipProto(f), 'daddr'), o.ip), x.dport(o.proto, o.ports), x.accept]);
    switch (n.gatewayMode[f]) {
      case 'nat':
        // Connections DNATed to a published port (IPv4, or IPv6 through the `dnat6` maps) come in.
        // --allow-direct-routing: every interface is trusted.
        return [[nfproto(f), x.ctDnat, x.accept], ...(n.directRouting === true ? direct([]) : n.trusted.flatMap((t) => direct([x.iifname(t)])))];
      case 'routed':
        return [...direct([]), [icmp(f), x.accept]];
      default:
        return [];
    }
  });
}

/** `nat-unprotected`: everything of that family comes in (before the network's drop). */
export function unprotectedRules(n: FirewallNetworkPolicy): NftRule[] {
  return families(n)
    .filter((f) => n.gatewayMode[f] === 'nat-unprotected')
    .map((f) => [nfproto(f), x.accept]);
}
