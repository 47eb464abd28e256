// The nftables firewall backend: the policy as one table `inet ledgernet` (render.ts), diffed
// against `nft -j list table` (diff.ts), applied with one `nft -j -f -` transaction (apply.ts).
// Docker's iptables FORWARD policy is DROP and a drop in any table is final, so the backend also
// keeps one iptables chain that only accepts ledgernet's bridges (after DOCKER-USER, whose rules
// still come first), written and repaired by the iptables backend's own diff and restore. It
// removes whatever else the iptables backend wrote (a switch of backends).
import { diffChains } from '../iptables/diff.ts';
import { renderAcceptOnly } from '../iptables/render.ts';
import { afterRestore } from '../iptables/evolve.ts';
import { restoreChanges } from '../iptables/restore.ts';
import type { FirewallBackend } from '../types.ts';
import { applyNft, isNftChange } from './apply.ts';
import { diffTable } from './diff.ts';
import { afterNft } from './evolve.ts';
import { renderTable } from './render.ts';

/** The role in the comment of the iptables rules the nftables backend keeps (`ledgernet:nftables`). */
const ACCEPT_ROLE = 'nftables';

export const nftablesFirewall: FirewallBackend = {
  name: 'nftables',
  plan: (policy, observed) => [
    ...diffTable(renderTable(policy), observed.nftables),
    ...diffChains(renderAcceptOnly(policy, ACCEPT_ROLE), observed, policy.ownerTag),
  ],
  // nftables first: during a switch from iptables, the new policy is in place before the old goes.
  apply: async (changes, kernel) => [...(await applyNft(changes, kernel)), ...(await restoreChanges(changes.filter((c) => !isNftChange(c)), kernel))],
  // Both predicted (nftables: evolve.ts), so a pass that changed the table does not make the next one read it.
  after: (observed, applied) => {
    const s = afterRestore(observed, applied.filter((c) => !isNftChange(c)));
    if (!applied.some(isNftChange)) return s;
    const nftables = afterNft(observed.nftables, applied);
    return nftables === undefined ? s : { ...s, nftables };
  },
};

export { applyNft, isNftChange } from './apply.ts';
export { diffTable } from './diff.ts';
