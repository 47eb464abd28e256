import { execa } from 'execa';

/**
 * A dump without the tables that hold nothing (only built-in chains, policy ACCEPT, no rule): one
 * does what no table does, and iptables-nft keeps a table once ledgernet wrote to it (the mangle
 * table of direct-access protection stays, empty, after the last network).
 */
function withoutEmptyTables(text: string): string {
  return text.replace(/^\*\w+\n(?::[A-Z]+ ACCEPT \[\d+:\d+\]\n)+COMMIT\n?/gm, '');
}

/** `iptables-save` / `ip6tables-save` output without counters, date comments and empty tables, for comparing. */
export async function rulesSave(cmd: 'iptables-save' | 'ip6tables-save', args: readonly string[] = []): Promise<string> {
  const r = await execa(cmd, args, { stdin: 'ignore' });
  const lines = r.stdout.split('\n').filter((l) => !l.startsWith('#'));
  return withoutEmptyTables(lines.join('\n') + '\n').replace(/\[\d+:\d+\]/g, '[0:0]');
}

/** The rules of a dump that are not ledgernet's, without comment lines and counters: what must stay as it was. */
export function foreignRules(text: string): string {
  const foreign = text.split('\n').filter((l) => !l.startsWith('#') && !l.includes('LEDGERNET') && !l.includes('ledgernet:'));
  return withoutEmptyTables(foreign.join('\n') + '\n').replace(/\[\d+:\d+\]/g, '[0:0]');
}

/** The lines of a rules dump that are not ledgernet's (chains LEDGERNET-*, rules tagged ledgernet:). */
export function notOurs(text: string): string {
  return text
    .split('\n')
    .filter((l) => !l.includes('LEDGERNET') && !l.includes('ledgernet:'))
    .join('\n');
}
