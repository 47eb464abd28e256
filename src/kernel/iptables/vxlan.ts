// Cluster networks: the VXLAN packets of the other members' VTEPs (UDP 4789) are accepted in
// filter INPUT, through LEDGERNET-INPUT (hooked first in INPUT), so a host whose INPUT drops by
// default still receives its tunnels. One rule per VTEP, tagged `ledgernet:vxlan`; none once the
// last cluster network is gone. Both firewall backends write them (nftables keeps them in iptables
// too, next to its FORWARD accepts: a drop in any table is final).
import { VXLAN_PORT } from '../iproute/vxlan.ts';
import type { FirewallPolicy } from '../types.ts';

export function vxlanInputRules(policy: FirewallPolicy): string[] {
  const tag = `-m comment --comment "${policy.ownerTag}vxlan"`;
  return (policy.vxlanPeers ?? []).map((vtep) => `-s ${vtep}/32 -p udp -m udp --dport ${VXLAN_PORT} ${tag} -j ACCEPT`);
}
