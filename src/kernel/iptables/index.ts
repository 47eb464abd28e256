// The iptables firewall backend: the policy rendered as LEDGERNET-* chains and tagged hooks,
// diffed against `iptables-save`, applied with `iptables-restore --noflush`. It also removes the
// nftables backend's table when it finds one (a switch of backends), after its own rules are in.
import { applyNft, diffTable, isNftChange } from '../nftables/index.ts';
import type { FirewallBackend } from '../types.ts';
import { diffChains } from './diff.ts';
import { renderChains } from './render.ts';
import { restoreChanges } from './restore.ts';

export const iptablesFirewall: FirewallBackend = {
  name: 'iptables',
  plan: (policy, observed) => [...diffChains(renderChains(policy), observed, policy.ownerTag), ...diffTable(null, observed.nftables)],
  apply: async (changes, kernel) => [...(await restoreChanges(changes.filter((c) => !isNftChange(c)), kernel)), ...(await applyNft(changes, kernel))],
};

export { renderChains } from './render.ts';
export { parseIptablesSave } from './parse.ts';
