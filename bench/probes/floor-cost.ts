// Row 1's floor: the network cost of one container (`docker run --rm … true` on the network minus
// the same with `--network none`) on the bridge driver, ledgernet, and the floor driver
// (bench/probes/floor-driver.ts: a remote driver that answers every call at once from a pool of
// veths made beforehand). If the floor driver's cost is above 0.8 × the bridge driver's, no remote
// driver can meet row 1 on this Docker: the rest is Docker's own remote-driver path.
// Also per variant: dockerd's and containerd's CPU time per run (their threads' schedstat; runc
// and the shims are not counted), and for the floor driver
// its own receive→reply time per call and when each call came, from the CLI's start.
// Under the test lock (≤ 10 min):
//   flock /run/lock/ledgernet-tests.lock node --import tsx bench/probes/floor-cost.ts [rounds]
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { measure, median, type BenchResult, type Measurement } from '../rows.ts';
import { createNetwork, measureSubnet, rotate } from '../docker/measure.ts';
import { withSession, type Session } from '../docker/session.ts';
import { TEST_IMAGE } from '../../test/helpers/docker.ts';
import { createFloorNetwork, FLOOR_GATEWAY, startFloorDriver, type FloorCall, type FloorDriver } from './floor-driver.ts';

const ROUNDS = Number(process.argv[2] ?? 30);
type V = 'none' | 'bridge' | 'ledgernet' | 'floor';
const VARIANTS: V[] = ['none', 'bridge', 'ledgernet', 'floor'];

const pidOf = (name: string) => Number(execFileSync('pidof', [name], { encoding: 'utf8' }).trim().split(/\s+/)[0]);
const ENGINE = [pidOf('dockerd'), pidOf('containerd')];
/** CPU time of dockerd and containerd in ms: the sum of their threads' run time (schedstat, ns). */
function engineCpuMs(): number {
  let ns = 0;
  for (const pid of ENGINE)
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        /* the thread ended */
      }
    }
  return ns / 1e6;
}

interface Run {
  wall: number;
  cpu: number;
  calls: FloorCall[];
  t0: number;
  t1: number;
}

async function runOnce(s: Session, net: string, v: V, floor: FloorDriver): Promise<Run> {
  const from = floor.calls.length;
  const c0 = engineCpuMs();
  const t0 = performance.now();
  await s.docker(['run', '--rm', '--name', s.name(`floor-${v}`), '--network', net, TEST_IMAGE, 'true']);
  const t1 = performance.now();
  return { wall: t1 - t0, cpu: engineCpuMs() - c0, calls: floor.calls.slice(from), t0, t1 };
}

/** Per method: n, median receive→reply (µs), median arrival after the CLI started (ms). */
function callTable(runs: Run[]): string[] {
  const by = new Map<string, { own: number[]; at: number[] }>();
  for (const r of runs)
    for (const c of r.calls) {
      const m = by.get(c.method) ?? { own: [], at: [] };
      m.own.push((c.replied - c.received) * 1000);
      m.at.push(c.received - r.t0);
      by.set(c.method, m);
    }
  return [...by].map(
    ([method, m]) =>
      `| ${method.replace('NetworkDriver.', '')} | ${m.own.length} | ${median(m.own).toFixed(0)} µs (max ${Math.max(...m.own).toFixed(0)}) | ${median(m.at).toFixed(1)} ms |`,
  );
}

const diffs = (a: number[], b: number[]) => a.map((x, i) => x - (b[i] ?? Number.NaN));

function costs(out: Record<V, Run[]>): Measurement[] {
  const wall = (v: V) => out[v].map((r) => r.wall);
  const cpu = (v: V) => out[v].map((r) => r.cpu);
  const ms: Measurement[] = [];
  for (const v of VARIANTS) ms.push(measure(`docker run --rm, ${v}`, 'ms', wall(v)));
  for (const v of VARIANTS.slice(1)) ms.push({ ...measure(`network cost, ${v}`, 'ms', diffs(wall(v), wall('none'))), median: median(wall(v)) - median(wall('none')) });
  // The same from each round's own pair (a load spike hits both runs of a round alike).
  for (const v of VARIANTS.slice(1)) ms.push(measure(`network cost, ${v}, median of the rounds' differences`, 'ms', diffs(wall(v), wall('none'))));
  for (const v of VARIANTS) ms.push(measure(`dockerd+containerd CPU per run, ${v}`, 'ms', cpu(v)));
  for (const v of VARIANTS.slice(1)) ms.push({ ...measure(`dockerd+containerd CPU, network share, ${v}`, 'ms', diffs(cpu(v), cpu('none'))), median: median(cpu(v)) - median(cpu('none')) });
  return ms;
}

const floor = await startFloorDriver(FLOOR_GATEWAY, ROUNDS + 6);
const load0 = loadavg();
try {
  const result = await withSession(async (s): Promise<BenchResult> => {
    const nets: Record<V, string> = {
      none: 'none',
      bridge: await createNetwork(s, 'bridge', measureSubnet(1)),
      ledgernet: await createNetwork(s, 'ledgernet', measureSubnet(2)),
      floor: await createFloorNetwork(s),
    };
    const out: Record<V, Run[]> = { none: [], bridge: [], ledgernet: [], floor: [] };
    for (const v of VARIANTS) await runOnce(s, nets[v], v, floor);
    for (let i = 0; i < ROUNDS; i++) for (const v of rotate(VARIANTS, i)) out[v].push(await runOnce(s, nets[v], v, floor));
    const ms = costs(out);
    const cost = (v: V) => ms.find((m) => m.what === `network cost, ${v}`)?.median ?? Number.NaN;
    const cpu = (v: V) => ms.find((m) => m.what === `dockerd+containerd CPU, network share, ${v}`)?.median ?? Number.NaN;
    const own = out.floor.map((r) => r.calls.reduce((a, c) => a + (c.replied - c.received), 0));
    const tail = out.floor.map((r) => r.t1 - Math.max(...r.calls.map((c) => c.replied)));
    return {
      row: `1 floor: ${ROUNDS} rounds; load ${load0.map((x) => x.toFixed(2)).join(' ')} → ${loadavg().map((x) => x.toFixed(2)).join(' ')}`,
      measurements: [...ms, measure("floor driver's own time per container (sum over its calls)", 'ms', own), measure('floor: last reply → CLI exit', 'ms', tail)],
      verdicts: [
        { target: 'floor ≤ 0.8 × bridge', value: cost('floor') / cost('bridge'), met: cost('floor') <= 0.8 * cost('bridge') },
        { target: 'ledgernet / bridge', value: cost('ledgernet') / cost('bridge'), met: false },
        { target: 'ledgernet / floor', value: cost('ledgernet') / cost('floor'), met: false },
        { target: 'engine CPU network share, floor / bridge', value: cpu('floor') / cpu('bridge'), met: false },
      ],
      notes: ['| call | n | receive→reply, median | arrives after CLI start, median |', '|---|---|---|---|', ...callTable(out.floor)],
    };
  });
  const f = (x: number) => x.toFixed(1);
  console.log(`## ${result.row}\n\n| what | median | min | max | n |\n|---|---|---|---|---|`);
  for (const m of result.measurements) console.log(`| ${m.what} | ${f(m.median)} | ${f(m.min)} | ${f(m.max)} | ${m.n} |`);
  for (const v of result.verdicts) console.log(`\n${v.target}: ${v.value.toFixed(3)}`);
  console.log(`\n${result.notes.join('\n')}`);
} finally {
  await floor.stop();
}
