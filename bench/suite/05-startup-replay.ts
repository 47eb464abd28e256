// Row 5: start-up with 1,000,000 events in the log. A log written with the project's own writer
// (bench/offline/gen-log.ts) for a host of 200 endpoints over 20 networks whose containers came
// and went; then the real daemon (`serve`, in a namespace of its own) is started on it and timed
// until its plugin socket answers: with the snapshot the daemon keeps (every 1,000 events and at
// stop), and with the snapshot deleted (a full replay: every record read, its chain and hash
// checked, folded).
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateLog } from '../offline/gen-log.ts';
import { startBenchDaemon } from '../offline/daemon.ts';
import { withNetns } from '../offline/netns.ts';
import { measure, type BenchOptions, type BenchResult } from '../rows.ts';

async function startOnce(netns: string, dir: string, withSnapshot: boolean): Promise<number> {
  if (!withSnapshot) await unlink(join(dir, 'state', 'snapshot.json')).catch(() => undefined);
  const d = await startBenchDaemon({ netns, dir, extraArgs: ['--reconcile-interval', '0'], cpuProfDir: process.env['BENCH_CPU_PROF_DIR'], readyTimeoutMs: 300_000 });
  await d.stop();
  return d.readyMs;
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const total = opts.smoke ? 3_000 : 1_000_000;
  const rounds = opts.smoke ? 1 : 3;
  const dir = await mkdtemp(join(tmpdir(), 'ledgernet-bench-05-'));
  try {
    const gen = await generateLog(join(dir, 'state'), total, { endpoints: 200, snapshotAt: total - 500 });
    return await withNetns('lnbench05', async (netns) => {
      // The first start sets the namespace up (bridges, veths, rules); not measured.
      await startOnce(netns, dir, true);
      const snap: number[] = [];
      const full: number[] = [];
      for (let i = 0; i < rounds; i++) {
        snap.push(await startOnce(netns, dir, true));
        full.push(await startOnce(netns, dir, false));
      }
      const s = measure('start until the socket answers, with a snapshot', 'ms', snap);
      const f = measure('start until the socket answers, full replay (no snapshot)', 'ms', full);
      return {
        row: '5 start-up with 1,000,000 events in the log',
        measurements: [s, f, measure('writing the log (generator)', 'ms', [gen.ms])],
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
