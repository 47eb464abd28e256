// The iptables tables after a batch of ours landed, without reading them back: the model the
// hot path plans against (kernel/model.ts). Rules are kept exactly as the plan wrote them,
// which is how iptables-save prints them (the diff compares the two texts; if they differed,
// every pass would rewrite the chain).
import type { Chain, FirewallChange, IptablesTable, KernelSnapshot } from '../types.ts';

type TableKey = 'filter' | 'nat' | 'filter6' | 'nat6' | 'mangle' | 'mangle6';

/** Applies `c` to `chains` (a copy of one table's, made once per table and pass). */
function change(chains: Record<string, Chain>, c: FirewallChange): void {
  switch (c.kind) {
    case 'chain.write':
      // The plan's own array (read-only): the next plan's diff finds it the same by reference.
      chains[c.chain] = { name: c.chain, policy: chains[c.chain]?.policy ?? null, rules: c.rules };
      break;
    case 'chain.delete':
      delete chains[c.chain];
      break;
    case 'hook.add': {
      const from = chains[c.from] ?? { name: c.from, policy: null, rules: [] };
      const rules = [...from.rules];
      if (c.position === null) rules.push(c.rule);
      else rules.splice(c.position - 1, 0, c.rule);
      chains[c.from] = { ...from, rules };
      break;
    }
    case 'hook.delete': {
      const from = chains[c.from];
      if (!from) break;
      // `-D` removes the first rule that matches.
      const i = from.rules.indexOf(c.rule);
      if (i >= 0) chains[c.from] = { ...from, rules: from.rules.filter((_, j) => j !== i) };
      break;
    }
  }
}

/** The snapshot after `applied` (changes that did not fail) landed. Pure. */
export function afterRestore(s: KernelSnapshot, applied: readonly FirewallChange[]): KernelSnapshot {
  // One copy of a table's chains for all of its changes (a table holds Docker's chains and ours:
  // hundreds at 200 networks).
  const tables = new Map<TableKey, Record<string, Chain>>();
  for (const c of applied) {
    const key = c.table as TableKey;
    const table = s[key];
    // A table that could not be read (no ip6tables), or was not, stays unknown.
    if (table === null || table === undefined) continue;
    let chains = tables.get(key);
    if (chains === undefined) tables.set(key, (chains = { ...table.chains }));
    change(chains, c);
  }
  let out = s;
  for (const [key, chains] of tables) out = { ...out, [key]: { ...(s[key] as IptablesTable), chains } };
  return out;
}
