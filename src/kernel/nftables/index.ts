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

/** What the plan of the iptables accepts depends on besides the policy: the iptables tables, by identity. */
const iptablesOf = (s: KernelSnapshot): readonly unknown[] => [s.filter, s.nat, s.filter6, s.nat6, s.mangle, s.mangle6];

interface Remembered {
  readonly policy: string;
  readonly read: readonly unknown[];
  readonly changes: readonly FirewallChange[];
}
let lastTable: Remembered | null = null;
let lastAccepts: Remembered | null = null;

/** `make()`, or the changes it made for the same policy and the same objects read. */
function remembered(last: Remembered | null, policy: string, read: readonly unknown[], make: () => FirewallChange[]): Remembered {
  if (last !== null && last.policy === policy && last.read.length === read.length && last.read.every((r, i) => r === read[i])) return last;
  return { policy, read, changes: make() };
}

/**
 * The plan, remembered for one (policy, observed) pair, the table's part and the iptables
 * accepts' apart. Most of Docker's calls (a container without published ports: CreateEndpoint,
 * Join, Leave, DeleteEndpoint) change nothing the firewall is about and plan against the model,
 * whose tables are the same objects until a change of ours lands (kernel/model.ts) or the kernel
 * is read again: such a pass compares the policy's JSON instead of rendering and diffing the whole
 * table. A full read gives the same table object when its text did not change (run-kernel.ts), as
 * after a Docker network of the bridge driver came or went (its rules are iptables'): the table's
 * part is not diffed again (~60 ms at 200 networks, the canonical keys of every rule read).
 * Snapshots are never changed in place, so an object seen again holds what it held.
 */
function plan(policy: FirewallPolicy, observed: KernelSnapshot): FirewallChange[] {
  const key = JSON.stringify(policy);
  lastTable = remembered(lastTable, key, [observed.nftables], () => diffTable(renderTable(policy), observed.nftables));
  lastAccepts = remembered(lastAccepts, key, iptablesOf(observed), () => diffChains(renderAcceptOnly(policy, ACCEPT_ROLE), observed, policy.ownerTag));
  return [...lastTable.changes, ...lastAccepts.changes];
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
