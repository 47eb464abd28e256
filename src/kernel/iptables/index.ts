// The iptables firewall backend: the policy rendered as LEDGERNET-* chains and tagged hooks,
// diffed against `iptables-save`, applied with `iptables-restore --noflush`. It also removes the
// nftables backend's table when it finds one (a switch of backends), after its own rules are in.
import { applyNft, diffTable, isNftChange } from '../nftables/index.ts';
import type { FirewallBackend } from '../types.ts';
import { afterRestore } from './evolve.ts';
import { planChains, planChainsFrom } from './partial.ts';
import { restoreChanges } from './restore.ts';

export const iptablesFirewall: FirewallBackend = {
  name: 'iptables',
  plan: (policy, observed) => [...planChains(policy, observed), ...diffTable(null, observed.nftables)],
  // The nftables table is gone once a full plan removed it: observed holds what `before` asked.
  planFrom: (policy, before, observed) => planChainsFrom(policy, before, observed),
  apply: async (changes, kernel) => [...(await restoreChanges(changes.filter((c) => !isNftChange(c)), kernel)), ...(await applyNft(changes, kernel))],
  // After a switch from nftables (its table removed here) the model is read again.
  after: (observed, applied) => (applied.some(isNftChange) ? null : afterRestore(observed, applied)),
};

export { renderChains } from './render.ts';
export { parseIptablesSave } from './parse.ts';
export { HOOK_BEHIND_DOCKER } from './diff.ts';
