// The iptables firewall backend: the policy rendered as LEDGERNET-* chains and tagged hooks,
// diffed against `iptables-save`, applied with `iptables-restore --noflush`.
import type { FirewallBackend } from '../types.ts';
import { diffChains } from './diff.ts';
import { afterRestore } from './evolve.ts';
import { renderChains } from './render.ts';
import { restoreChanges } from './restore.ts';

export const iptablesFirewall: FirewallBackend = {
  name: 'iptables',
  plan: (policy, observed) => diffChains(renderChains(policy), observed, policy.ownerTag),
  apply: restoreChanges,
  after: afterRestore,
};

export { renderChains } from './render.ts';
export { parseIptablesSave } from './parse.ts';
