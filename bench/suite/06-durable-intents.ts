// Row 6: durable intents over the real plugin socket. A daemon of the benchmark's own (`serve`
// with supervisor and worker, in a namespace of its own, its own state dir and socket); 32
// clients call it the way Docker does (one connection per call) with IpamDriver.RequestAddress /
// ReleaseAddress pairs on one pool, for a fixed time. Every answer comes only after its intent is
// fsynced to the log; throughput counts answered calls (each one intent), latency is per call.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pluginCall } from '../../test/helpers/daemon.ts';
import { startBenchDaemon } from '../offline/daemon.ts';
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

/** One timed run: intents per second and every call's latency. */
async function load(socket: string, poolId: string, seconds: number): Promise<{ rate: number; lat: number[] }> {
  const lat: number[] = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, () => client(socket, poolId, t0 + seconds * 1000, lat)));
  return { rate: lat.length / ((performance.now() - t0) / 1000), lat };
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
        await load(d.socket, pool.PoolID, opts.smoke ? 0.2 : 2); // warm-up
        const rates: number[] = [];
        const p99s: number[] = [];
        const p50s: number[] = [];
        for (let i = 0; i < rounds; i++) {
          const r = await load(d.socket, pool.PoolID, seconds);
          rates.push(r.rate);
          p99s.push(quantile(r.lat, 0.99));
          p50s.push(quantile(r.lat, 0.5));
        }
        const rate = measure(`intents per second, ${CLIENTS} clients, ${seconds} s runs`, 'per s', rates);
        const p99 = measure('p99 latency of one call (per run)', 'ms', p99s);
        return {
          row: '6 durable intents over the real socket, 32 concurrent clients',
          measurements: [rate, p99, measure('median latency of one call (per run)', 'ms', p50s)],
          verdicts: [
            { target: '≥ 5,000 intents per second', value: rate.median, met: rate.median >= 5_000 },
            { target: 'p99 ≤ 20 ms', value: p99.median, met: p99.median <= 20 },
          ],
          notes: [
            `IpamDriver.RequestAddress/ReleaseAddress pairs on pool ${POOL} through the supervisor and the worker, ` +
              'one connection per call as Docker makes them; the clients run in the benchmark process on the same 2 cores.',
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
