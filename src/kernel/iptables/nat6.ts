// IPv6 NAT as ip6tables nat rules (table `nat6` in plans), Docker 27+'s default for `--ipv6`
// networks: egress masqueraded (or SNATed to host_ipv6), published ports DNATed over IPv6, and
// hairpin through them masqueraded. The same two chains as IPv4's nat table, in ip6tables:
// - LEDGERNET-DNAT, jumped to from PREROUTING and OUTPUT for local destinations: one rule per range.
// - LEDGERNET-POSTROUTING, from POSTROUTING: masquerade by source pool, hairpin.
// No localhost rule: IPv6 has no route_localnet, so a packet from ::1 never leaves `lo` (the
// kernel drops it on the way back); ports on [::1] are served by the userland proxy (kernel/proxy/).
// The filter side (published-port and hairpin accepts) is render.ts's, for both families.
import type { FirewallNetworkPolicy, FirewallPolicy } from '../types.ts';
import { dnatRule, hook, natTarget } from './render.ts';
import { owned, type DesiredChain } from './shared.ts';

const DNAT_CHAIN = 'LEDGERNET-DNAT';
const POSTROUTING_CHAIN = 'LEDGERNET-POSTROUTING';

/** The ip6tables nat chains for the policy; chains with no rules are left out (and then removed). */
export function renderNat6(policy: FirewallPolicy): DesiredChain[] {
  const t = policy.ownerTag;
  const nets = policy.networks.filter((n) => n.ipv6 && !n.internal && n.nat6 !== undefined);
  const chains: DesiredChain[] = [
    {
      table: 'nat6',
      name: DNAT_CHAIN,
      rules: nets.flatMap((n) => (n.nat6?.forwards ?? []).map((f) => dnatRule(t, f, 6))),
      hooks: ['PREROUTING', 'OUTPUT'].map((from) => hook(t, from, DNAT_CHAIN, 'append', '-m addrtype --dst-type LOCAL ')),
    },
    { table: 'nat6', name: POSTROUTING_CHAIN, rules: nets.flatMap((n) => postrouting6(t, n)), hooks: [hook(t, 'POSTROUTING', POSTROUTING_CHAIN, 'append')] },
  ];
  return chains.filter((c) => c.rules.length > 0);
}

function postrouting6(t: string, n: FirewallNetworkPolicy): string[] {
  const nat = n.nat6;
  if (nat === undefined) return [];
  const b = n.bridge;
  const who = owned(t, n);
  const rules = nat.masquerade.map((pool) => `-s ${pool} ! -o ${b} ${who('masquerade')} ${natTarget(nat.snat)}`);
  if (nat.forwards.length > 0) {
    for (const pool of nat.pools) rules.push(`-s ${pool} -o ${b} -m conntrack --ctstate DNAT ${who('hairpin')} -j MASQUERADE`);
  }
  return rules;
}
