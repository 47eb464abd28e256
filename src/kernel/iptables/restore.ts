// One `iptables-restore --noflush` per table (`ip6tables-restore` for `filter6` and `nat6`), run at
// once: each is atomic, and a failure in one leaves the others applied. Spawning costs ~2 ms; 1,000 rules in one
// restore take ~18 ms against 2.2 s for 1,000 `iptables -A`.
import { editLines } from './edits.ts';
import type { FirewallChange, FirewallFailure, IptablesTableKey, Kernel } from '../types.ts';

/**
 * The `iptables-restore --noflush` input for the changes of one table, or null.
 * Only chains whose content changed are written (the plan holds no others). Chains jump to
 * chains (LEDGERNET-FORWARD to LEDGERNET-EG-…), so every written chain is declared before any
 * rule, and chains are deleted (-X) only after every flush and rewrite dropped the jumps to them.
 */
export function restoreInput(changes: readonly FirewallChange[], table: IptablesTableKey): string | null {
  const declared: string[] = [];
  const lines: string[] = [];
  const deleted: string[] = [];
  for (const c of changes) {
    if (c.table !== table) continue;
    switch (c.kind) {
      case 'chain.write':
        if (c.edits) {
          lines.push(...editLines(c.chain, c.edits, c.rules.length));
          break;
        }
        // Declaring the chain creates it if missing; -F makes the rewrite exact either way.
        declared.push(`:${c.chain} - [0:0]`);
        lines.push(`-F ${c.chain}`, ...c.rules.map((r) => `-A ${c.chain} ${r}`));
        break;
      case 'chain.delete':
        lines.push(`-F ${c.chain}`);
        deleted.push(`-X ${c.chain}`);
        break;
      case 'hook.add':
        lines.push(c.position === null ? `-A ${c.from} ${c.rule}` : `-I ${c.from} ${c.position} ${c.rule}`);
        break;
      case 'hook.delete':
        lines.push(`-D ${c.from} ${c.rule}`);
        break;
    }
  }
  // `filter6`/`nat6`/`mangle6` are ip6tables' tables: the same `*filter`/`*nat`/`*mangle` section, sent to ip6tables-restore.
  const section = table.replace(/6$/, '');
  const all = [...declared, ...lines, ...deleted];
  return all.length === 0 ? null : `*${section}\n${all.join('\n')}\nCOMMIT\n`;
}

/**
 * Applies the changes through the kernel, one restore per table (rendered by `restoreInput`), all
 * at once: tables are independent (a chain jumps only within its table), each restore is atomic,
 * and on the nf_tables backend a restore whose table changed under it retries by itself (the
 * legacy backend's `-w` takes turns on the xtables lock). A failed restore fails every change of
 * its table; failures are reported in table order.
 */
export async function restoreChanges(changes: readonly FirewallChange[], kernel: Kernel): Promise<FirewallFailure[]> {
  const tables = (['filter', 'nat', 'filter6', 'nat6', 'mangle', 'mangle6'] as const).filter((t) => changes.some((c) => c.table === t));
  const results = await Promise.all(
    tables.map((table) =>
      kernel.restoreIptables(table, changes.filter((c) => c.table === table)).then(
        () => [],
        (e: unknown) => changes.filter((c) => c.table === table).map((change) => ({ change, message: (e as Error).message })),
      ),
    ),
  );
  return results.flat();
}
