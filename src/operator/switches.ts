// The serve switches the CLI's plans must agree with (`reconcile --dry-run`, `status`): serve
// records each in the state dir when it starts, and the CLI reads them back.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The state dir's record of each switch (a file holding `true` or `false`). */
export const SWITCH_RECORDS = { directRouting: 'allow-direct-routing', ipv6Forwarding: 'ipv6-forwarding' } as const;

export async function recordSwitch(stateDir: string, which: keyof typeof SWITCH_RECORDS, on: boolean): Promise<void> {
  await writeFile(join(stateDir, SWITCH_RECORDS[which]), `${on}\n`, { mode: 0o600 });
}

/** What serve recorded; false when it recorded nothing (a serve before the switch, or none yet). */
export function readSwitch(stateDir: string, which: keyof typeof SWITCH_RECORDS): Promise<boolean> {
  return readFile(join(stateDir, SWITCH_RECORDS[which]), 'utf8').then((t) => t.trim() === 'true', () => false);
}
