// The iptables tables after a batch of ours landed, without reading them back: the model the
// hot path plans against (kernel/model.ts). Rules are kept exactly as the plan wrote them,
// which is how iptables-save prints them (the diff compares the two texts; if they differed,
// every pass would rewrite the chain).
import type { FirewallChange, IptablesTable, KernelSnapshot } from '../types.ts';

type TableKey = 'filter' | 'nat' | 'filter6' | 'nat6' | 'mangle' | 'mangle6';

function change(t: IptablesTable, c: FirewallChange): IptablesTable {
  const chains = { ...t.chains };
  switch (c.kind) {
    case 'chain.write':
      chains[c.chain] = { name: c.chain, policy: chains[c.chain]?.policy ?? null, rules: [...c.rules] };
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
  return { ...t, chains };
}

/** The snapshot after `applied` (changes that did not fail) landed. Pure. */
export function afterRestore(s: KernelSnapshot, applied: readonly FirewallChange[]): KernelSnapshot {
  let out = s;
  for (const c of applied) {
    const key = c.table as TableKey;
    const table = out[key];
    // A table that could not be read (no ip6tables), or was not, stays unknown.
    if (table !== null && table !== undefined) out = { ...out, [key]: change(table, c) };
  }
  return out;
}
