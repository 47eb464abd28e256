// Row 9: daemon memory with 2,000 endpoints. A daemon of the benchmark's own (`serve`:
// supervisor and worker, in a namespace of its own) is given 200 networks and 2,000 endpoints
// through its plugin socket as Docker would (CreateNetwork, CreateEndpoint, 16 calls at a time),
// then, after a full repair pass, the resident set size (VmRSS) of both processes is read.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pluginCall } from '../../test/helpers/daemon.ts';
import { pssMb, rssMb, startBenchDaemon } from '../offline/daemon.ts';
import { withNetns } from '../offline/netns.ts';
import { createEndpointBody, createNetworkBody, layout } from '../offline/scenario.ts';
import { measure, type BenchOptions, type BenchResult } from '../rows.ts';

const CONCURRENCY = 16;

async function callAll(socket: string, method: string, bodies: readonly object[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < bodies.length) {
      const body = bodies[next++] as object;
      const r = await pluginCall(method, body, socket, { timeoutMs: 120_000 });
      if (r.status !== 200) throw new Error(`${method}: HTTP ${r.status} ${r.text}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const l = layout(opts.smoke ? 20 : 2_000);
  const dir = await mkdtemp(join(tmpdir(), 'ledgernet-bench-09-'));
  try {
    return await withNetns('lnbench09', async (netns) => {
      // The repair timer at 2 s, so a full pass over everything runs before RSS is read.
      const d = await startBenchDaemon({ netns, dir, extraArgs: ['--reconcile-interval', '2', '--apply-timeout', '120'], cpuProfDir: process.env['BENCH_CPU_PROF_DIR'] });
      try {
        const idle = { worker: rssMb(d.workerPid() ?? 0), supervisor: rssMb(d.proc.pid ?? 0) };
        const t0 = performance.now();
        await callAll(d.socket, 'NetworkDriver.CreateNetwork', Array.from({ length: l.networks }, (_, i) => createNetworkBody(i)));
        await callAll(d.socket, 'NetworkDriver.CreateEndpoint', Array.from({ length: l.endpoints }, (_, e) => createEndpointBody(l, e)));
        const createMs = performance.now() - t0;
        await new Promise((r) => setTimeout(r, 5_000));
        const worker = rssMb(d.workerPid() ?? 0);
        const supervisor = rssMb(d.proc.pid ?? 0);
        const total = worker + supervisor;
        const pss = pssMb(d.workerPid() ?? 0) + pssMb(d.proc.pid ?? 0);
        return {
          row: '9 daemon memory with 2,000 endpoints',
          measurements: [
            measure(`RSS of the daemon (supervisor + worker), ${l.endpoints} endpoints on ${l.networks} networks`, 'MB', [total]),
            measure('RSS of the worker', 'MB', [worker]),
            measure('RSS of the supervisor', 'MB', [supervisor]),
            measure('PSS of the daemon (supervisor + worker; pages both map, the node binary, counted once)', 'MB', [pss]),
            measure('RSS of the daemon before any network', 'MB', [idle.worker + idle.supervisor]),
            measure(`creating ${l.networks} networks and ${l.endpoints} endpoints (${CONCURRENCY} calls at a time)`, 'ms', [createMs]),
          ],
          verdicts: [{ target: 'RSS ≤ 150 MB', value: total, met: total <= 150 }],
          notes: [
            'VmRSS from /proc of the supervisor and of its worker, 5 s after the last CreateEndpoint answered ' +
              '(a repair pass over everything ran in between); the worker alone holds the state, the log and the kernel model.',
          ],
        };
      } finally {
        await d.stop();
      }
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
