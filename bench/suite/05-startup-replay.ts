// Row 5: start-up with 1,000,000 events in the log. A log written with the project's own writer
// (bench/offline/gen-log.ts) for a host of 200 endpoints over 20 networks whose containers came
// and went; then the real daemon (`serve`, in a namespace of its own) is started on it and timed
// until its plugin socket answers: with the snapshot the daemon keeps (every 1,000 events and at
// stop), and with the snapshot deleted (a full replay: every record read, its chain and hash
// checked, folded).
import { mkdtemp, rename, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadState } from '../../src/events/log/open.ts';
import { generateLog } from '../offline/gen-log.ts';
import { cpuMs, startBenchDaemon } from '../offline/daemon.ts';
import { withNetns } from '../offline/netns.ts';
import { measure, type BenchOptions, type BenchResult } from '../rows.ts';

/** A full replay in this process (read, check the chain, fold), snapshot set aside: wall and CPU ms. */
async function replayInProcess(stateDir: string): Promise<{ ms: number; cpu: number }> {
  const snap = join(stateDir, 'snapshot.json');
  await rename(snap, `${snap}.aside`);
  try {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await loadState(stateDir);
    const c = process.cpuUsage(c0);
    return { ms: performance.now() - t0, cpu: (c.user + c.system) / 1000 };
  } finally {
    await rename(`${snap}.aside`, snap);
  }
}

/** ms until the socket answers, and the worker's CPU ms until then (all its threads, from /proc). */
async function startOnce(netns: string, dir: string, withSnapshot: boolean, cpu: number[] = []): Promise<number> {
  if (!withSnapshot) await unlink(join(dir, 'state', 'snapshot.json')).catch(() => undefined);
  const d = await startBenchDaemon({ netns, dir, extraArgs: ['--reconcile-interval', '0'], cpuProfDir: process.env['BENCH_CPU_PROF_DIR'], readyTimeoutMs: 300_000 });
  const worker = d.workerPid();
  if (worker !== null) cpu.push(cpuMs(worker));
  await d.stop();
  return d.readyMs;
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const total = opts.smoke ? 3_000 : 1_000_000;
  const rounds = opts.smoke ? 1 : 3;
  const dir = await mkdtemp(join(tmpdir(), 'ledgernet-bench-05-'));
  try {
    const gen = await generateLog(join(dir, 'state'), total, { endpoints: 200, snapshotAt: total - 500 });
    const inProcess = await replayInProcess(join(dir, 'state'));
    return await withNetns('lnbench05', async (netns) => {
      // The first start sets the namespace up (bridges, veths, rules); not measured.
      await startOnce(netns, dir, true);
      const snap: number[] = [];
      const full: number[] = [];
      const fullCpu: number[] = [];
      const empty: number[] = [];
      for (let i = 0; i < rounds; i++) {
        snap.push(await startOnce(netns, dir, true));
        full.push(await startOnce(netns, dir, false, fullCpu));
        // The same start with an empty log, in its own namespace: what Node and the daemon cost anyway.
        const bare = await mkdtemp(join(tmpdir(), 'ledgernet-bench-05-empty-'));
        try {
          empty.push(await withNetns('lnbench05e', (ns) => startOnce(ns, bare, true)));
        } finally {
          await rm(bare, { recursive: true, force: true });
        }
      }
      const s = measure('start until the socket answers, with a snapshot', 'ms', snap);
      const f = measure('start until the socket answers, full replay (no snapshot)', 'ms', full);
      const e = measure('start until the socket answers, empty log (the floor: Node, two processes, the first pass)', 'ms', empty);
      return {
        row: '5 start-up with 1,000,000 events in the log',
        measurements: [
          s,
          f,
          e,
          measure('full replay in the benchmark process (read, chain and hashes checked, folded)', 'ms', [inProcess.ms]),
          measure('CPU of that replay (both threads)', 'ms', [inProcess.cpu]),
          measure('CPU of the worker process in the full-replay start, until the socket answered (all its threads)', 'ms', fullCpu),
          measure('writing the log (generator)', 'ms', [gen.ms]),
        ],
        verdicts: [
          { target: 'serving ≤ 1 s with snapshots', value: s.median, met: s.median <= 1_000 },
          { target: 'full replay without a snapshot ≤ 5 s', value: f.median, met: f.median <= 5_000 },
        ],
        notes: [
          `${gen.events} events (${(gen.bytes / 1e6).toFixed(0)} MB) for 200 endpoints over 20 networks: containers leaving, ` +
            'deleted, created and joined again, and IPAM addresses requested and released; times from spawning `ledgernet serve` ' +
            '(supervisor and worker, in a namespace of its own, no NATS) until Plugin.Activate answers, so they include Node\'s own start.',
        ],
      };
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
