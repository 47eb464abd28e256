// The fake kernel's iptables tables: typed firewall changes applied with the checks
// iptables-restore makes (a chain must exist to be flushed, deleted from or hooked into; `-D`
// needs the rule; `-I` a position inside the chain). The caller applies to a copy and keeps it
// only when every change passed: a restore is all or nothing.
import type { FirewallChange, RuleEdits } from '../../src/kernel/types.ts';

export type FakeTable = Map<string, { policy: string | null; rules: string[] }>;

/** @throws Error, as iptables-restore fails, when a change does not apply. */
export function applyTableChange(t: FakeTable, c: FirewallChange): void {
  const chain = (name: string) => {
    const found = t.get(name);
    if (!found) throw new Error(`iptables-restore: chain ${name} does not exist`);
    return found;
  };
  switch (c.kind) {
    case 'chain.write':
      if (c.edits) return editChain(chain(c.chain).rules, c.chain, c.edits);
      // `:CHAIN` creates it if missing, `-F` empties it, `-A` each rule.
      t.set(c.chain, { policy: t.get(c.chain)?.policy ?? null, rules: [...c.rules] });
      return;
    case 'chain.delete':
      chain(c.chain);
      t.delete(c.chain);
      return;
    case 'hook.add': {
      const from = chain(c.from);
      if (c.position === null) return void from.rules.push(c.rule);
      if (c.position > from.rules.length + 1) throw new Error(`iptables-restore: bad -I position ${c.position} in ${c.from}`);
      from.rules.splice(c.position - 1, 0, c.rule);
      return;
    }
    case 'hook.delete': {
      const from = chain(c.from);
      const i = from.rules.indexOf(c.rule);
      if (i < 0) throw new Error(`iptables-restore: no such rule in ${c.from}`);
      from.rules.splice(i, 1);
      return;
    }
  }
}

/** `-D` by rule, then `-I` at each place, as iptables-restore applies a chain's edits. */
function editChain(rules: string[], name: string, edits: RuleEdits): void {
  for (const r of edits.deletes) {
    const i = rules.indexOf(r);
    if (i < 0) throw new Error(`iptables-restore: no such rule in ${name}`);
    rules.splice(i, 1);
  }
  for (const { position, rule } of edits.inserts) {
    if (position > rules.length + 1) throw new Error(`iptables-restore: bad -I position ${position} in ${name}`);
    rules.splice(position - 1, 0, rule);
  }
}
