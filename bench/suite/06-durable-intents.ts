// Row 6: durable intents over the real plugin socket. A daemon of the benchmark's own (`serve`
// with supervisor and worker, in a namespace of its own, its own state dir and socket); 32
// clients call it the way Docker does (one connection per call) with IpamDriver.RequestAddress /
// ReleaseAddress pairs on one pool, for a fixed time. Every answer comes only after its intent is
// fsynced to the log; throughput counts answered calls (each one intent), latency is per call.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pluginCall } from '../../test/helpers/daemon.ts';
import { cpuMs, startBenchDaemon, type BenchDaemon } from '../offline/daemon.ts';
import { withNetns } from '../offline/netns.ts';
import { measure, type BenchOptions, type BenchResult } from '../rows.ts';

const CLIENTS = 32;
const POOL = '10.99.0.0/24';

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
}

async function call(socket: string, method: string, body: object, lat: number[]): Promise<unknown> {
  const t0 = performance.now();
  const r = await pluginCall(method, body, socket, { timeoutMs: 30_000 });
  lat.push(performance.now() - t0);
  if (r.status !== 200) throw new Error(`${method}: HTTP ${r.status} ${r.text}`);
  return r.json;
}

/** Each client: request an address, release it, again, until `until`. */
async function client(socket: string, poolId: string, until: number, lat: number[]): Promise<void> {
  while (performance.now() < until) {
    const got = (await call(socket, 'IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: {} }, lat)) as { Address: string };
    await call(socket, 'IpamDriver.ReleaseAddress', { PoolID: poolId, Address: got.Address.split('/')[0] }, lat);
  }
}

interface Run {
  readonly rate: number;
  readonly lat: number[];
  /** CPU ms per call: the worker, the supervisor, the clients (this process). */
  readonly cpu: { worker: number; supervisor: number; clients: number };
}

/** One timed run: intents per second, every call's latency, and the CPU each process spent per call. */
async function load(d: BenchDaemon, poolId: string, seconds: number): Promise<Run> {
  const lat: number[] = [];
  const pids = { worker: d.workerPid() ?? 0, supervisor: d.proc.pid ?? 0 };
  const c0 = { worker: cpuMs(pids.worker), supervisor: cpuMs(pids.supervisor), clients: process.cpuUsage() };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, () => client(d.socket, poolId, t0 + seconds * 1000, lat)));
  const rate = lat.length / ((performance.now() - t0) / 1000);
  const own = process.cpuUsage(c0.clients);
  const per = (ms: number) => ms / lat.length;
  return {
    rate,
    lat,
    cpu: {
      worker: per(cpuMs(pids.worker) - c0.worker),
      supervisor: per(cpuMs(pids.supervisor) - c0.supervisor),
      clients: per((own.user + own.system) / 1000),
    },
  };
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const seconds = opts.smoke ? 0.5 : 10;
  const rounds = opts.smoke ? 1 : 3;
  const dir = await mkdtemp(join(tmpdir(), 'ledgernet-bench-06-'));
  try {
    return await withNetns('lnbench06', async (netns) => {
      const d = await startBenchDaemon({ netns, dir, extraArgs: ['--reconcile-interval', '0'], cpuProfDir: process.env['BENCH_CPU_PROF_DIR'] });
      try {
        const pool = (await call(d.socket, 'IpamDriver.RequestPool', { AddressSpace: 'ledgernet-local', Pool: POOL, Options: {}, V6: false }, [])) as { PoolID: string };
        await load(d, pool.PoolID, opts.smoke ? 0.2 : 2); // warm-up
        const rates: number[] = [];
        const p99s: number[] = [];
        const p50s: number[] = [];
        const cpu = { worker: [] as number[], supervisor: [] as number[], clients: [] as number[] };
        for (let i = 0; i < rounds; i++) {
          const r = await load(d, pool.PoolID, seconds);
          rates.push(r.rate);
          p99s.push(quantile(r.lat, 0.99));
          p50s.push(quantile(r.lat, 0.5));
          for (const k of ['worker', 'supervisor', 'clients'] as const) cpu[k].push(r.cpu[k]);
        }
        const perCall = (['worker', 'supervisor', 'clients'] as const).map((k) => measure(`CPU per call: ${k}`, 'ms', cpu[k]));
        const cpuTotal = perCall.reduce((a, m) => a + m.median, 0);
        const rate = measure(`intents per second, ${CLIENTS} clients, ${seconds} s runs`, 'per s', rates);
        const p99 = measure('p99 latency of one call (per run)', 'ms', p99s);
        return {
          row: '6 durable intents over the real socket, 32 concurrent clients',
          measurements: [rate, p99, measure('median latency of one call (per run)', 'ms', p50s), ...perCall],
          verdicts: [
            { target: '≥ 5,000 intents per second', value: rate.median, met: rate.median >= 5_000 },
            { target: 'p99 ≤ 20 ms', value: p99.median, met: p99.median <= 20 },
          ],
          notes: [
            `IpamDriver.RequestAddress/ReleaseAddress pairs on pool ${POOL} through the supervisor and the worker, ` +
              'one connection per call as Docker makes them; the clients run in the benchmark process on the same 2 cores.',
            `CPU per call (from /proc, so it holds however busy the shared machine is): ${perCall.map((m) => `${m.what.slice(14)} ${m.median.toFixed(2)} ms`).join(', ')}; ` +
              `${cpuTotal.toFixed(2)} ms in all, so these three processes alone allow at most ${Math.round(2_000 / cpuTotal)} calls per second on 2 cores.`,
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
