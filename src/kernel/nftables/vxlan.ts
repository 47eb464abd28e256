// Cluster networks in the nftables table: the `input` chain accepts the VXLAN packets (UDP 4789)
// of the other members' VTEPs, one rule per VTEP, as the iptables backend does in LEDGERNET-INPUT
// (kernel/iptables/vxlan.ts, which this backend also writes: an accept here does not undo a drop
// in another table or chain hooked at input).
import { VXLAN_PORT } from '../iproute/vxlan.ts';
import type { FirewallPolicy, NftRule } from '../types.ts';
import * as x from './expr.ts';

export function vxlanInput(policy: FirewallPolicy): NftRule[] {
  return (policy.vxlanPeers ?? []).map((vtep) => [x.match(x.payload('ip', 'saddr'), vtep), x.match(x.payload('udp', 'dport'), VXLAN_PORT), x.accept]);
}
