// Runs the `ledgernet` CLI from source (src/cli.ts through tsx: no build needed) for unit tests of
// its argument handling and commands.
import { join } from 'node:path';
import { execa } from 'execa';
import { REPO_ROOT } from './daemon.ts';

export interface CliRun {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * `ledgernet <args>`; `isolated`: inside a new network namespace (`unshare -n`), so a command
 * that wrongly went ahead can touch nothing on the host's network; `uid`: as that user and group,
 * with no other group (setpriv; the caller must be root).
 */
export async function runCli(args: readonly string[], o: { isolated?: boolean; env?: Record<string, string>; timeoutMs?: number; uid?: number } = {}): Promise<CliRun> {
  const as = o.uid === undefined ? [] : ['setpriv', '--reuid', String(o.uid), '--regid', String(o.uid), '--clear-groups'];
  const node = [...as, process.execPath, '--import', 'tsx', join(REPO_ROOT, 'src', 'cli.ts'), ...args];
  const [file, ...rest] = o.isolated ? ['unshare', '-n', ...node] : node;
  const r = await execa(file!, rest, { reject: false, cwd: REPO_ROOT, timeout: o.timeoutMs ?? 60_000, env: o.env ?? {}, stdin: 'ignore' });
  return { exitCode: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}
