import { execa } from 'execa';

/** `iptables-save` / `ip6tables-save` output without counters and date comments, for comparing. */
export async function rulesSave(cmd: 'iptables-save' | 'ip6tables-save', args: readonly string[] = []): Promise<string> {
  const r = await execa(cmd, args, { stdin: 'ignore' });
  return r.stdout
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]'))
    .join('\n');
}

/** The rules of a dump that are not ledgernet's, without comment lines and counters: what must stay as it was. */
export function foreignRules(text: string): string {
  return text
    .split('\n')
    .filter((l) => !l.startsWith('#') && !l.includes('LEDGERNET') && !l.includes('ledgernet:'))
    .map((l) => l.replace(/\[\d+:\d+\]/g, '[0:0]'))
    .join('\n');
}

/** The lines of a rules dump that are not ledgernet's (chains LEDGERNET-*, rules tagged ledgernet:). */
export function notOurs(text: string): string {
  return text
    .split('\n')
    .filter((l) => !l.includes('LEDGERNET') && !l.includes('ledgernet:'))
    .join('\n');
}
