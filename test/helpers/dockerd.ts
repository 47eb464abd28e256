// Stop and start the real dockerd the way scripts/test-env.sh starts it (same binary, no flags,
// the same log file), for tests of ledgernet across Docker restarts. A test that stops dockerd
// must call ensureDockerd() in its `after` hook, so dockerd runs again whatever happened.
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { REPO_ROOT } from './daemon.ts';
import { docker, waitFor } from './docker.ts';

export const DOCKERD_LOG = '/var/log/ledgernet-test-dockerd.log';
const TEST_ENV = join(REPO_ROOT, 'scripts', 'test-env.sh');

async function dockerdPids(): Promise<number[]> {
  const pids: number[] = [];
  for (const e of await readdir('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const comm = await readFile(`/proc/${e}/comm`, 'utf8').catch(() => '');
    if (comm.trim() === 'dockerd') pids.push(Number(e));
  }
  return pids;
}

/** SIGTERM to dockerd (it stops its containers first), and waits for it to exit. */
export async function stopDockerd(timeoutMs = 90_000): Promise<void> {
  const pids = await dockerdPids();
  if (pids.length === 0) throw new Error('no dockerd runs');
  for (const p of pids) process.kill(p, 'SIGTERM');
  await waitFor(async () => (await dockerdPids()).length === 0, { timeoutMs, intervalMs: 200, what: 'dockerd to exit after SIGTERM' });
}

/** Starts dockerd as test-env.sh does, without waiting for it to answer. */
export async function spawnDockerd(): Promise<void> {
  await execa('bash', [TEST_ENV, 'dockerd-spawn'], { stdin: 'ignore' });
}

/**
 * Makes sure dockerd runs and answers (starting it as test-env.sh does, with `flags` if this call
 * starts it); never leaves it stopped.
 */
export async function ensureDockerd(flags: readonly string[] = []): Promise<void> {
  await execa('bash', [TEST_ENV, 'dockerd'], { stdin: 'ignore', timeout: 180_000, env: { LEDGERNET_TEST_DOCKERD_FLAGS: flags.join(' ') } });
}

/** Whether the running dockerd keeps containers and plugins running when it stops. */
export async function liveRestore(): Promise<boolean> {
  return (await docker(['info', '-f', '{{.LiveRestoreEnabled}}'], { timeoutMs: 10_000 })).stdout.trim() === 'true';
}

/** A dockerd as test-env.sh starts it, without live-restore (restarted when a test left it on). */
export async function ensurePlainDockerd(): Promise<void> {
  await ensureDockerd();
  if (!(await liveRestore())) return;
  await stopDockerd();
  await ensureDockerd();
}

/** Waits until `docker info` answers. */
export async function waitDockerAnswers(timeoutMs = 90_000): Promise<void> {
  await waitFor(async () => (await docker(['info'], { timeoutMs: 10_000 })).exitCode === 0, { timeoutMs, intervalMs: 500, what: 'dockerd to answer' });
}

/** The size of dockerd's log now: read what it writes from here with dockerdLogSince(). */
export async function dockerdLogSize(): Promise<number> {
  return (await stat(DOCKERD_LOG).catch(() => ({ size: 0 }))).size;
}

export async function dockerdLogSince(offset: number): Promise<string> {
  const buf = await readFile(DOCKERD_LOG).catch(() => Buffer.alloc(0));
  return buf.subarray(offset).toString('utf8');
}
