// Row 3's floor: row 3's batch (N containers started with `docker run -d` 8 at a time, then
// removed with `docker rm -f` 8 at a time) on `--network none`, the bridge driver, ledgernet and
// the floor driver (bench/probes/floor-driver.ts: a remote driver that answers every call at once
// from veth pairs made beforehand). Row 3's target is ledgernet ≤ 0.9 × the bridge driver on the
// batch's whole time; if the floor driver's batch is above that, no remote driver can meet it on
// this Docker. Under the test lock (≤ 15 min at the defaults):
//   flock /run/lock/ledgernet-tests.lock node --import tsx bench/probes/floor-batch.ts [containers] [reps]
import { loadavg } from 'node:os';
import { measure, median, type BenchResult } from '../rows.ts';
import { createNetwork, measureSubnet, rotate } from '../docker/measure.ts';
import { withSession } from '../docker/session.ts';
import { batch, type Size } from '../suite/03-hundred-containers.ts';
import { createFloorNetwork, FLOOR_GATEWAY, startFloorDriver } from './floor-driver.ts';

const size: Size = { containers: Number(process.argv[2] ?? 100), concurrency: 8, reps: Number(process.argv[3] ?? 3) };
type V = 'none' | 'bridge' | 'ledgernet' | 'floor';
const VARIANTS: V[] = ['none', 'bridge', 'ledgernet', 'floor'];

// The floor driver hands out each veth pair once: one per container of every floor batch, and the ping.
const floor = await startFloorDriver(FLOOR_GATEWAY, size.containers * size.reps + 1);
const load0 = loadavg();
try {
  const result = await withSession(async (s): Promise<BenchResult> => {
    const nets: Record<V, string> = {
      none: 'none',
      bridge: await createNetwork(s, 'bridge', measureSubnet(3)),
      ledgernet: await createNetwork(s, 'ledgernet', measureSubnet(4)),
      floor: await createFloorNetwork(s),
    };
    const total: Record<V, number[]> = { none: [], bridge: [], ledgernet: [], floor: [] };
    const start: Record<V, number[]> = { none: [], bridge: [], ledgernet: [], floor: [] };
    for (let i = 0; i < size.reps; i++)
      for (const v of rotate(VARIANTS, i)) {
        const b = await batch(s, nets[v], size);
        start[v].push(b.start);
        total[v].push(b.start + b.rm);
      }
    const share = (v: V) => median(total[v]) - median(total.none);
    const batchRatio = (a: V, b: V) => median(total[a]) / median(total[b]);
    return {
      row: `3 floor: ${size.containers} containers × ${size.reps}; load ${load0.map((x) => x.toFixed(2)).join(' ')} → ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
      measurements: [
        ...VARIANTS.map((v) => measure(`start all, ${v}`, 'ms', start[v])),
        ...VARIANTS.map((v) => measure(`start + remove, ${v}`, 'ms', total[v])),
        ...VARIANTS.slice(1).map((v) => ({ ...measure(`network share (start + remove minus none), ${v}`, 'ms', total[v].map((x, i) => x - (total.none[i] ?? Number.NaN))), median: share(v) })),
      ],
      verdicts: [
        { target: 'floor ≤ 0.9 × bridge (start + remove)', value: batchRatio('floor', 'bridge'), met: batchRatio('floor', 'bridge') <= 0.9 },
        { target: 'ledgernet / bridge (start + remove)', value: batchRatio('ledgernet', 'bridge'), met: false },
        { target: 'ledgernet / floor (start + remove)', value: batchRatio('ledgernet', 'floor'), met: false },
        { target: 'network share, floor / bridge', value: share('floor') / share('bridge'), met: false },
        { target: 'network share, ledgernet / bridge', value: share('ledgernet') / share('bridge'), met: false },
      ],
      notes: [],
    };
  });
  const f = (x: number) => x.toFixed(0);
  console.log(`## ${result.row}\n\n| what | median ms | min | max | n |\n|---|---:|---:|---:|---:|`);
  for (const m of result.measurements) console.log(`| ${m.what} | ${f(m.median)} | ${f(m.min)} | ${f(m.max)} | ${m.n} |`);
  for (const v of result.verdicts) console.log(`\n${v.target}: ${v.value.toFixed(3)}`);
} finally {
  await floor.stop();
}
