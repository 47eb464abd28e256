// Docker 28's gateway modes and direct-access protection as iptables rules (the policy's
// `gatewayMode`, `trusted`, `opened`; kernel/types.ts).
//
// What comes into a network from outside (LEDGERNET-FORWARD, after isolation), per family:
// - `nat`: connections DNATed to a published port (`--ctstate DNAT`), and from a trusted
//   interface (`trusted_host_interfaces`) the published container ports addressed directly;
// - `routed`: the published container ports addressed directly, from anywhere, and ICMP;
// - `nat-unprotected`: everything (no per-port filtering);
// then the network's drop (an ACCEPT for `nat-unprotected`). The allow-list replaces all but the
// last rule, as before.
//
// Direct-access protection (Docker 28's raw PREROUTING drop), for networks in `nat`: mangle
// LEDGERNET-DIRECT, hooked from mangle PREROUTING for every packet that is not a reply
// (`! --ctstate RELATED,ESTABLISHED`), drops what is addressed to the network's subnet from
// anywhere but its bridge, except its gateway (the host's own address), a trusted interface and
// the ports of the allow-list (which opens them to routed traffic). Why mangle with conntrack and
// not raw like Docker: raw runs before conntrack, so it also drops the replies to connections
// containers open without masquerade (`enable_ip_masquerade=false`); mangle runs after
// conntrack and before DNAT, so what it sees is still the address the sender wrote. It comes
// before filter, so neither DOCKER-USER nor a FORWARD rule of someone else can let it through.
import type { FirewallAllow, FirewallNetworkPolicy } from '../types.ts';

export const DIRECT_CHAIN = 'LEDGERNET-DIRECT';
/** The hook's match: only packets that are not replies (or related to a connection) enter the chain. */
export const DIRECT_HOOK_MATCH = '-m conntrack ! --ctstate RELATED,ESTABLISHED ';

type Tag = (role: string) => string;

const familyOf = (cidr: string): 4 | 6 => (cidr.includes(':') ? 6 : 4);
const host = (addr: string) => `${addr}/${familyOf(addr) === 4 ? 32 : 128}`;
const ports = ([lo, hi]: readonly [number, number]) => (lo === hi ? `${lo}` : `${lo}:${hi}`);

/** An allow-list item as an iptables match; `icmp` is ICMPv6 in ip6tables. */
export function allowMatch(a: FirewallAllow, family: 4 | 6): string {
  if (a.ports === null) return family === 4 ? `-p ${a.proto}` : '-p ipv6-icmp';
  return `-p ${a.proto} -m ${a.proto} --dport ${ports(a.ports)}`;
}

/** What the gateway mode lets into bridge `n` from outside when there is no allow-list. */
export function openRules(n: FirewallNetworkPolicy, family: 4 | 6, tag: Tag): string[] {
  const b = n.bridge;
  const mine = n.opened.filter((o) => o.family === family);
  const direct = (i: string, role: string) =>
    mine.map((o) => `-d ${host(o.ip)} ${i}-o ${b} -p ${o.proto} -m ${o.proto} --dport ${ports(o.ports)} ${tag(role)} -j ACCEPT`);
  switch (n.gatewayMode[family]) {
    case 'nat':
      // Connections DNATed to a published port (IPv4's nat table, or ip6tables' for IPv6) are let in.
      // --allow-direct-routing: every interface is trusted.
      if (n.directRouting === true) return [`-o ${b} -m conntrack --ctstate DNAT ${tag('published')} -j ACCEPT`, ...direct('', 'direct-routing')];
      return [`-o ${b} -m conntrack --ctstate DNAT ${tag('published')} -j ACCEPT`, ...n.trusted.flatMap((t) => direct(`-i ${t} `, 'trusted'))];
    case 'routed':
      return [...direct('', 'routed'), `-o ${b} -p ${family === 4 ? 'icmp' : 'ipv6-icmp'} ${tag('routed-icmp')} -j ACCEPT`];
    default:
      return [];
  }
}

/** The last ingress rule of bridge `n`: a drop, or an accept for `nat-unprotected`. */
export function closeRule(n: FirewallNetworkPolicy, family: 4 | 6, tag: Tag): string {
  return n.gatewayMode[family] === 'nat-unprotected' ? `-o ${n.bridge} ${tag('unprotected')} -j ACCEPT` : `-o ${n.bridge} ${tag('ingress')} -j DROP`;
}

/** The networks whose subnets of `family` are guarded against direct access. */
function guarded(n: FirewallNetworkPolicy, family: 4 | 6): boolean {
  return !n.internal && n.directRouting !== true && n.gatewayMode[family] === 'nat' && (family === 4 || n.ipv6);
}

/** The rules of LEDGERNET-DIRECT for one network and family (mangle, or mangle6 for IPv6). */
export function directRules(n: FirewallNetworkPolicy, family: 4 | 6, tag: Tag): string[] {
  if (!guarded(n, family)) return [];
  const rules = n.gateways.filter((g) => familyOf(g) === family).map((g) => `-d ${host(g)} ${tag('direct-gateway')} -j RETURN`);
  for (const subnet of n.subnets.filter((s) => familyOf(s) === family)) {
    rules.push(...n.trusted.map((t) => `-d ${subnet} -i ${t} ${tag('direct-trusted')} -j RETURN`));
    rules.push(...(n.allow ?? []).map((a) => `-d ${subnet} ${allowMatch(a, family)} ${tag('direct-allow')} -j RETURN`));
    rules.push(`-d ${subnet} ! -i ${n.bridge} ${tag('direct')} -j DROP`);
  }
  return rules;
}
