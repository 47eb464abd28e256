// The egress policy (FirewallEgress, kernel/types.ts) as iptables rules. Each network with a
// policy gets, per family, a chain LEDGERNET-EG-<12 hex of its id> in filter (filter6 for IPv6),
// entered by one jump per hook for the first packet of a connection from its bridge:
//   LEDGERNET-FORWARD (after isolation, before any ingress accept, so no other network's accept
//   can let a new connection past the policy) and LEDGERNET-INPUT (the host's own addresses).
// In the chain: RETURN for the network's own subnets, REJECT for deny items, RETURN for allow
// items, then REJECT for everything else when there is an allow-list. RETURN goes back to the
// calling chain, so passing never ACCEPTs: the rest of our policy (FORWARD) or the host's own
// INPUT rules still decide. One chain per network keeps the per-packet cost of a new connection
// to its own items, however many networks have a policy. Matches use conntrack's original
// destination (`--ctorigdst`/`--ctorigdstport`), written exactly as iptables-save prints them
// (a /32 or /128 without its length).
import type { FirewallEgressItem, FirewallNetworkPolicy } from '../types.ts';

const CHAIN_PREFIX = 'LEDGERNET-EG-';
const PROTO_NUMBER: Readonly<Record<string, Readonly<Record<4 | 6, number>>>> = {
  tcp: { 4: 6, 6: 6 },
  udp: { 4: 17, 6: 17 },
  icmp: { 4: 1, 6: 58 },
};
const REJECT: Readonly<Record<4 | 6, string>> = { 4: '-j REJECT --reject-with icmp-port-unreachable', 6: '-j REJECT --reject-with icmp6-port-unreachable' };

/** `tag` spells the comment of a network's rule for a role (`-m comment --comment "ledgernet:network:<id>:<role>"`). */
type Tag = (role: string) => string;

/** The egress chain of a network (one name for both families: filter and filter6 are separate tables). */
export function egressChainName(networkId: string): string {
  return `${CHAIN_PREFIX}${networkId.slice(0, 12)}`;
}

const familyOf = (cidr: string): 4 | 6 => (cidr.includes(':') ? 6 : 4);

/** True when the network's policy judges connections of this family (it has a chain there). */
function judges(n: FirewallNetworkPolicy, family: 4 | 6): boolean {
  const e = n.egress;
  if (e === null || (family === 6 && !n.ipv6)) return false;
  return e.allow !== null || e.deny.some((i) => i.family === family);
}

/** The jump from LEDGERNET-FORWARD or LEDGERNET-INPUT, or nothing when the family is not judged. */
export function egressJump(n: FirewallNetworkPolicy, family: 4 | 6, tag: Tag): string[] {
  if (!judges(n, family)) return [];
  return [`-i ${n.bridge} -m conntrack --ctstate NEW ${tag('egress-policy')} -j ${egressChainName(n.networkId)}`];
}

/** The rules of the network's egress chain for one family; empty when the family is not judged. */
export function egressRules(n: FirewallNetworkPolicy, family: 4 | 6, tag: Tag): string[] {
  const e = n.egress;
  if (e === null || !judges(n, family)) return [];
  const reject = REJECT[family];
  const items = (list: readonly FirewallEgressItem[]) => list.filter((i) => i.family === family);
  const rules = e.own.filter((c) => familyOf(c) === family).map((c) => `${match(family, c, null, null)} ${tag('egress-own')} -j RETURN`);
  rules.push(...items(e.deny).map((i) => `${itemMatch(i)} ${tag('egress-deny')} ${reject}`));
  if (e.allow !== null) {
    rules.push(...items(e.allow).map((i) => `${itemMatch(i)} ${tag('egress-allow')} -j RETURN`));
    rules.push(`${tag('egress-default')} ${reject}`);
  }
  return rules;
}

function itemMatch(i: FirewallEgressItem): string {
  return match(i.family, i.cidr, i.proto, i.ports);
}

function match(family: 4 | 6, cidr: string, proto: FirewallEgressItem['proto'], ports: FirewallEgressItem['ports']): string {
  const host = family === 4 ? '/32' : '/128';
  const dst = cidr.endsWith(host) ? cidr.slice(0, -host.length) : cidr;
  const p = proto === null ? '' : `--ctproto ${PROTO_NUMBER[proto]?.[family]} `;
  const port = ports === null ? '' : ` --ctorigdstport ${ports[0] === ports[1] ? ports[0] : `${ports[0]}:${ports[1]}`}`;
  return `-m conntrack ${p}--ctorigdst ${dst}${port}`;
}
