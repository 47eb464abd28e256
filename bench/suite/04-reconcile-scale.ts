// Row 4: reconcile at scale, no Docker. For 250, 500, 1,000 and 2,000 endpoints over a tenth as
// many networks (default options: the firewall holds isolation, icc and masquerade rules), a
// namespace of the benchmark's own and the daemon's reconciler over the real kernel in it (ip,
// iptables, ip6tables, tc), the desired state folded from events as the daemon folds them.
// Timed, in each of `ROUNDS` fresh namespaces per size: the pass that converges the empty
// namespace; then no-change passes of both kinds the daemon runs: the full pass (it reads the
// whole kernel: the repair timer's, start-up's, a drift notice's) and a pass of Docker's calls
// (planned against the kernel model the last pass left, kernel/model.ts). The first full pass
// after the converge is reported apart (with the read through processes it met 4,200 links it
// had not seen and read their kinds with `ip -d`; rtnetlink dumps carry every link's kind).
// Between namespaces the benchmark waits until the kernel has torn the last one down (it holds
// the rtnl lock for seconds at 2,000 endpoints, and a converge meanwhile waits for it).
import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import { createKernel, type Kernel } from '../../src/kernel/index.ts';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { Reconciler, type PassResult } from '../../src/reconciler/index.ts';
import { hostCommands, layout, stateFrom } from '../offline/scenario.ts';
import { withNetns } from '../offline/netns.ts';
import { measure, median, type BenchOptions, type BenchResult, type Measurement } from '../rows.ts';

const quiet = { info() {}, warn() {}, error() {}, debug() {} };

/** Wall and CPU (this process; the processes it ran, from /proc) of one pass, ms. */
interface Timed {
  readonly wall: number;
  readonly cpu: number;
  readonly childCpu: number;
}

interface Size {
  readonly endpoints: number;
  readonly converge: Timed[];
  readonly firstFull: Timed[];
  readonly full: Timed[];
  readonly model: Timed[];
  /** ms spent in each kernel method during the last full no-change pass (where a pass's time goes). */
  readonly kernelMs: Record<string, number>;
}

/** CPU time of the processes this one waited for, ms (utime + stime of its children, /proc/self/stat). */
function childCpuMs(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]?.split(' ') ?? [];
  // After the `)`: state is field 0, cutime 13, cstime 14 (clock ticks, 100 a second).
  return (Number(fields[13]) + Number(fields[14])) * 10;
}

async function timed<T>(f: () => Promise<T>): Promise<{ value: T; t: Timed }> {
  const c0 = process.cpuUsage();
  const k0 = childCpuMs();
  const t0 = performance.now();
  const value = await f();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { value, t: { wall, cpu: (c.user + c.system) / 1000, childCpu: childCpuMs() - k0 } };
}

/** The kernel, with the time spent in each of its methods added up in `spent()`. */
function withSpent(kernel: Kernel, spent: () => Record<string, number>): Kernel {
  return new Proxy(kernel, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        const t0 = performance.now();
        const out = (v as (...a: unknown[]) => unknown).apply(target, args);
        const add = () => {
          const into = spent();
          into[String(prop)] = (into[String(prop)] ?? 0) + performance.now() - t0;
        };
        if (out instanceof Promise) return out.finally(add);
        add();
        return out;
      };
    },
  });
}

function check(r: PassResult, what: string, fullReads: number): void {
  if (r.failures.length > 0) throw new Error(`${what}: ${r.failures.length} failures, e.g. ${JSON.stringify(r.failures[0])}`);
  if (r.fullReads !== fullReads) throw new Error(`${what} read the whole kernel ${r.fullReads} times, not ${fullReads}`);
}

/**
 * Returns once the kernel answers `ip link show lo` at once three times in a row (a deleted
 * namespace is torn down under the rtnl lock), or after 10 s (a host busy with other work).
 */
async function kernelSettled(): Promise<void> {
  const deadline = Date.now() + 10_000;
  let fast = 0;
  await new Promise((r) => setTimeout(r, 300));
  while (fast < 3 && Date.now() < deadline) {
    const t0 = performance.now();
    await execa('ip', ['link', 'show', 'lo']);
    fast = performance.now() - t0 < 50 ? fast + 1 : 0;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function round(endpoints: number, passes: number, into: Size): Promise<void> {
  const state = stateFrom(hostCommands(layout(endpoints)));
  await withNetns('lnbench04', async (netns) => {
    let spent: Record<string, number> = {};
    const kernel = createKernel({ netns, filterPrefixes: [VETH_PREFIX] });
    // A running daemon's kernel: its libnftables worker thread started (~180 ms of CPU, once).
    await kernel.observe();
    const reconciler = new Reconciler({
      kernel: withSpent(kernel, () => spent),
      getState: () => state,
      log: quiet,
      onLost: async () => undefined,
      intervalMs: 0,
    });
    const pass = async (trigger: string, what: string, fullReads: number) => {
      const { value, t } = await timed(() => reconciler.requestPass(trigger));
      check(value, what, fullReads);
      return { value, t };
    };
    try {
      into.converge.push((await pass('timer', `converging ${endpoints} endpoints`, 1)).t);
      for (let i = 0; i <= passes; i++) {
        spent = {};
        const { value, t } = await pass('timer', 'a full no-change pass', 1);
        if (value.planned.length > 0) throw new Error(`a pass after converging ${endpoints} endpoints still planned ${value.planned.length} actions`);
        (i === 0 ? into.firstFull : into.full).push(t);
        if (i > 0) Object.assign(into.kernelMs, spent);
      }
      for (let i = 0; i < passes; i++) {
        const { value, t } = await pass('NetworkDriver.CreateEndpoint', 'a no-change pass against the model', 0);
        if (value.planned.length > 0) throw new Error(`a pass against the model planned ${value.planned.length} actions`);
        into.model.push(t);
      }
    } finally {
      await reconciler.stop();
    }
  });
  await kernelSettled();
}

const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const ms = (ts: readonly Timed[], k: keyof Timed) => median(ts.map((t) => t[k])).toFixed(0);

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const sizes = opts.smoke ? [20, 40] : [250, 500, 1_000, 2_000];
  const rounds = opts.smoke ? 1 : 3;
  const passes = opts.smoke ? 1 : 5;
  const loadBefore = loadAverage();
  const results: Size[] = [];
  await kernelSettled();
  for (const endpoints of sizes) {
    const size: Size = { endpoints, converge: [], firstFull: [], full: [], model: [], kernelMs: {} };
    for (let r = 0; r < rounds; r++) await round(endpoints, passes, size);
    results.push(size);
  }
  const loadAfter = loadAverage();
  const measurements: Measurement[] = [];
  const wall = (ts: readonly Timed[]) => ts.map((t) => t.wall);
  for (const r of results) {
    measurements.push(measure(`converge from empty, ${r.endpoints} endpoints`, 'ms', wall(r.converge)));
    measurements.push(measure(`no-change full pass (reads the whole kernel), ${r.endpoints} endpoints`, 'ms', wall(r.full)));
    measurements.push(measure(`no-change pass of Docker's calls (against the model), ${r.endpoints} endpoints`, 'ms', wall(r.model)));
  }
  const big = results.at(-1) as Size;
  const half = results.at(-2) as Size;
  const converge = median(wall(big.converge));
  const growth = converge / median(wall(half.converge));
  const full = median(wall(big.full));
  const inKernel = Object.entries(big.kernelMs).map(([k, v]) => `${k} ${v.toFixed(0)} ms`).join(', ');
  return {
    row: '4 reconcile at scale in a namespace, no Docker',
    measurements: [
      ...measurements,
      measure(`first full pass after the converge, ${big.endpoints} endpoints`, 'ms', wall(big.firstFull)),
      measure(`converge time(${big.endpoints}) / time(${half.endpoints})`, 'x', [growth]),
    ],
    verdicts: [
      { target: `converge from empty ≤ 2 s at ${big.endpoints}`, value: converge, met: converge <= 2_000 },
      { target: `a no-change pass ≤ 100 ms at ${big.endpoints} (the full pass, which reads the whole kernel)`, value: full, met: full <= 100 },
      { target: `time(${big.endpoints}) ≤ 2.2 × time(${half.endpoints})`, value: growth, met: growth <= 2.2 },
    ],
    notes: [
      `${rounds} fresh namespaces per size, one after the other (each deleted, and the kernel done tearing it down, before the next); in each the daemon's Reconciler over the real kernel there (warmed by one read of the empty namespace, as a running daemon's is: its libnftables worker thread started) converges the empty namespace, then runs ${passes + 1} full no-change passes (trigger \`timer\`) and ${passes} of Docker's (\`NetworkDriver.CreateEndpoint\`, planned against the model); each must plan nothing. Wall clock around \`requestPass\`; load average ${loadBefore} before, ${loadAfter} after.`,
      `CPU at ${big.endpoints} endpoints (medians, ms; this process + the processes it ran): converge ${ms(big.converge, 'cpu')} + ${ms(big.converge, 'childCpu')}; full no-change pass ${ms(big.full, 'cpu')} + ${ms(big.full, 'childCpu')}; the first full pass after the converge ${ms(big.firstFull, 'cpu')} + ${ms(big.firstFull, 'childCpu')}; a pass against the model ${ms(big.model, 'cpu')} + ${ms(big.model, 'childCpu')}.`,
      `The last full no-change pass at ${big.endpoints} endpoints (${big.full.at(-1)?.wall.toFixed(0)} ms) spent in the kernel's methods (processes it runs and their parsing): ${inKernel || 'nothing'}; the rest is desired state, plan and the loop.`,
    ],
  };
}
