// A benchmark session on the host's dockerd: a ledgernet daemon of its own (fresh temp state dir,
// the plugin socket Docker knows), every container and network named `lnbench-<pid>-…`, and one
// cleanup that removes everything under that prefix and stops the daemon, whichever way the
// session ends: normally, by an exception, or by Ctrl-C / SIGTERM.
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startDaemon, type DaemonHandle } from '../../test/helpers/daemon.ts';
import { docker } from '../../test/helpers/docker.ts';
import type { BenchResult } from '../rows.ts';
import { describeMetrics, freePort } from './daemon-view.ts';

const PREFIX = 'lnbench-';
/** Built by scripts/test-env.sh: busybox plus Debian's iperf3 and its libraries. */
export const IPERF3_IMAGE = 'ledgernet-test-iperf3:latest';

export interface Session {
  /** `lnbench-<pid>-<what>-<n>`: unique in this process, swept by the cleanup. */
  name(what: string): string;
  /** Runs `docker …args`; throws with docker's stderr when it fails. Returns stdout. */
  docker(args: readonly string[], timeoutMs?: number): Promise<string>;
  /** Milliseconds one `docker …args` took (the CLI's whole run, as a user times it). */
  timed(args: readonly string[]): Promise<number>;
}

let counter = 0;
const mine = `${PREFIX}${process.pid}-`;

async function dockerOrThrow(args: readonly string[], timeoutMs = 120_000): Promise<string> {
  const r = await docker(args, { timeoutMs });
  if (r.exitCode !== 0) throw new Error(`docker ${args.join(' ')} failed (exit ${r.exitCode}): ${r.stderr || r.stdout}`);
  return r.stdout;
}

const session: Session = {
  name: (what) => `${mine}${what}-${++counter}`,
  docker: dockerOrThrow,
  async timed(args) {
    const t0 = performance.now();
    await dockerOrThrow(args);
    return performance.now() - t0;
  },
};

/** Names under the prefix whose owner is `pid`, or (stale) whose owner process is gone. */
function swept(name: string, stale: boolean): boolean {
  if (name.startsWith(mine)) return true;
  const m = /^lnbench-(\d+)-/.exec(name);
  return stale && m !== null && !existsSync(`/proc/${m[1]}`);
}

/** Removes the session's containers, then its networks (in batches); with `stale`, a dead run's too. */
async function sweep(stale: boolean): Promise<void> {
  const containers = (await dockerOrThrow(['ps', '-a', '--filter', `name=${PREFIX}`, '--format', '{{.Names}}']))
    .split('\n')
    .filter((n) => swept(n, stale));
  for (let i = 0; i < containers.length; i += 50) await docker(['rm', '-f', ...containers.slice(i, i + 50)], { timeoutMs: 300_000 });
  const networks = (await dockerOrThrow(['network', 'ls', '--filter', `name=${PREFIX}`, '--format', '{{.Name}}']))
    .split('\n')
    .filter((n) => swept(n, stale));
  for (let i = 0; i < networks.length; i += 50) await docker(['network', 'rm', ...networks.slice(i, i + 50)], { timeoutMs: 300_000 });
  const left = (await dockerOrThrow(['network', 'ls', '--filter', `name=${mine}`, '--format', '{{.Name}} {{.Driver}}']))
    .split('\n')
    .map((l) => l.trim().split(' '))
    .filter(([n]) => n?.startsWith(mine) === true);
  // Docker 20.10's own bridge driver keeps a stale endpoint now and then when containers start at
  // concurrency 8 ("has active endpoints" with no container on it; only a dockerd restart clears
  // it): the control's leak, reported, not ledgernet's, which fails the run.
  const kept = left.filter(([, driver]) => driver === 'bridge').map(([n]) => n);
  if (kept.length > 0) {
    console.error(`bench: Docker's bridge driver kept a stale endpoint on ${kept.join(', ')} (Docker's own leak, not ledgernet's); restart dockerd to remove it`);
  }
  const ours = left.filter(([, driver]) => driver !== 'bridge').map(([n]) => n);
  if (ours.length > 0) throw new Error(`benchmark cleanup could not remove these networks: ${ours.join(', ')}`);
}

function alive(d: DaemonHandle): boolean {
  return d.proc.exitCode === null && d.proc.signalCode === null;
}

/** What the ledgernet daemon says about the row: its passes and call times (one note). */
async function daemonView(metricsPort: number): Promise<string> {
  try {
    const r = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { signal: AbortSignal.timeout(10_000) });
    return describeMetrics(await r.text());
  } catch (e) {
    return `Ledgernet's metrics could not be read: ${e instanceof Error ? e.message : String(e)}.`;
  }
}

/**
 * The daemon's node flags: `BENCH_CPU_PROF=<dir>` makes its processes write V8 CPU profiles there
 * (`--cpu-prof`) when they exit, for a missed target's "where the time goes". Node refuses
 * --cpu-prof in NODE_OPTIONS; the supervisor passes its own flags on to the worker.
 */
function daemonNodeArgs(): string[] {
  const dir = process.env['BENCH_CPU_PROF'];
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

/**
 * Runs `fn` with a ledgernet daemon up, adds the daemon's own view of the row to the notes, then
 * removes everything it made. Ctrl-C also reaches the daemon (same process group): the cleanup
 * then starts it again on the same state dir, because Docker cannot remove a ledgernet network
 * while the driver is away.
 */
export async function withSession(fn: (s: Session) => Promise<BenchResult>): Promise<BenchResult> {
  const stateDir = await mkdtemp(join(tmpdir(), 'ledgernet-bench-'));
  const metricsPort = await freePort();
  const extraArgs = ['--log-level', 'warn', '--metrics', `127.0.0.1:${metricsPort}`];
  let daemon = await startDaemon({ stateDir, keepStateDir: false, extraArgs, nodeArgs: daemonNodeArgs() });
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      try {
        if (!alive(daemon)) {
          await daemon.terminate();
          daemon = await startDaemon(daemon.options);
        }
        await sweep(false);
      } finally {
        await daemon.stop();
      }
    })());
  const onSignal = (signal: NodeJS.Signals): void => {
    console.error(`bench: ${signal}: removing the benchmark's containers and networks`);
    void cleanup()
      .catch((e: unknown) => console.error(`bench: cleanup failed: ${e instanceof Error ? e.message : String(e)}`))
      .finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  // `on`, not `once`: execa's signal-exit re-raises a signal that no other listener handles, which
  // would end this process in the middle of the cleanup (a second Ctrl-C is ignored likewise).
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await sweep(true);
    const result = await fn(session);
    return { ...result, notes: [...result.notes, await daemonView(metricsPort)] };
  } finally {
    try {
      await cleanup();
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
}
