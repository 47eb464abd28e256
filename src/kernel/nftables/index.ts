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
import type { FirewallBackend, FirewallChange, FirewallPolicy, KernelSnapshot } from '../types.ts';
import { applyNft, isNftChange } from './apply.ts';
import { diffTable } from './diff.ts';
import { afterNft } from './evolve.ts';
import { planTableFrom } from './partial.ts';
import { renderTable } from './render.ts';

/** The role in the comment of the iptables rules the nftables backend keeps (`ledgernet:nftables`). */
const ACCEPT_ROLE = 'nftables';

/** What a plan depends on besides the policy: the table and the iptables tables, by identity. */
const readOf = (s: KernelSnapshot): readonly unknown[] => [s.nftables, s.filter, s.nat, s.filter6, s.nat6, s.mangle, s.mangle6];

let last: { readonly policy: string; readonly read: readonly unknown[]; readonly changes: readonly FirewallChange[] } | null = null;

/**
 * The plan, remembered for one (policy, observed) pair. Most of Docker's calls (a container
 * without published ports: CreateEndpoint, Join, Leave, DeleteEndpoint) change nothing the
 * firewall is about and plan against the model, whose tables are the same objects until a change
 * of ours lands (kernel/model.ts) or the kernel is read again: such a pass compares the policy's
 * JSON instead of rendering and diffing the whole table. Snapshots are never changed in place,
 * so an object seen again holds what it held.
 */
function plan(policy: FirewallPolicy, observed: KernelSnapshot): FirewallChange[] {
  const key = JSON.stringify(policy);
  const read = readOf(observed);
  if (last !== null && last.policy === key && last.read.every((r, i) => r === read[i])) return [...last.changes];
  const changes = [...diffTable(renderTable(policy), observed.nftables), ...diffChains(renderAcceptOnly(policy, ACCEPT_ROLE), observed, policy.ownerTag)];
  last = { policy: key, read, changes };
  return [...changes];
}

export const nftablesFirewall: FirewallBackend = {
  name: 'nftables',
  plan,
  // The table by parts when it can (partial.ts); the few iptables accepts in full.
  planFrom: (policy, before, observed) => {
    const table = planTableFrom(policy, before, observed.nftables);
    return table === null ? plan(policy, observed) : [...table, ...diffChains(renderAcceptOnly(policy, ACCEPT_ROLE), observed, policy.ownerTag)];
  },
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
