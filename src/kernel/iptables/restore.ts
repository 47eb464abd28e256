// One `iptables-restore --noflush` input per table (`ip6tables-restore` for `filter6`, `nat6` and
// `mangle6`), all asked for at once; the kernel runs the tables of one family that are asked for
// together in one process (run-kernel.ts), each table its own COMMIT: each is atomic, and a failure
// in one leaves the others applied. Spawning costs 2–10 ms (more under load and as the daemon's
// heap grows: node forks itself); 1,000 rules in one restore take ~18 ms against 2.2 s for 1,000
// `iptables -A`.
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

/**
 * Several tables' restore inputs (`*table … COMMIT` each) as one, for one `iptables-restore`
 * instead of one process per table, and the line each table's section starts at (1-based).
 */
export function joinInputs(inputs: readonly string[]): { input: string; starts: number[] } {
  const starts: number[] = [];
  let line = 1;
  for (const input of inputs) {
    starts.push(line);
    line += input.split('\n').length - 1;
  }
  return { input: inputs.join(''), starts };
}

/**
 * The section (index into `starts`) a failed joined restore stopped at, from the line its
 * message names (`line 8 failed`, `Error occurred at line: 8`); null when it names none. Each
 * COMMIT is a transaction of its own: the sections before it are in the kernel, the ones after it
 * were not tried.
 */
export function failedSection(stderr: string, starts: readonly number[]): number | null {
  const m = /\bline:? (\d+)/.exec(stderr);
  if (!m) return null;
  const line = Number(m[1]);
  let at = -1;
  for (let i = 0; i < starts.length && (starts[i] ?? Infinity) <= line; i++) at = i;
  return at < 0 ? null : at;
}
