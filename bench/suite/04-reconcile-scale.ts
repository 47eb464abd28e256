// Row 4: reconcile at scale, no Docker. For 250, 500, 1,000 and 2,000 endpoints over a tenth as
// many networks (default options: the firewall holds isolation, icc and masquerade rules), a
// namespace of the benchmark's own and the daemon's reconciler over the real kernel in it (ip,
// iptables, ip6tables, tc), the desired state folded from events as the daemon folds them.
// Timed: the pass that converges the empty namespace, then passes that find nothing to change.
import { createKernel, type Kernel } from '../../src/kernel/index.ts';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { Reconciler, type PassResult } from '../../src/reconciler/index.ts';
import { hostCommands, layout, stateFrom } from '../offline/scenario.ts';
import { withNetns } from '../offline/netns.ts';
import { measure, type BenchOptions, type BenchResult, type Measurement } from '../rows.ts';

const quiet = { info() {}, warn() {}, error() {}, debug() {} };

interface Size {
  readonly endpoints: number;
  readonly converge: number;
  readonly noChange: number[];
  /** ms spent in each kernel method during the last no-change pass (where a pass's time goes). */
  readonly kernelMs: Record<string, number>;
}

/** The kernel, with the time spent in each of its methods added up in `spent()`. */
function timed(kernel: Kernel, spent: () => Record<string, number>): Kernel {
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

function check(r: PassResult, what: string): void {
  if (r.failures.length > 0) throw new Error(`${what}: ${r.failures.length} failures, e.g. ${JSON.stringify(r.failures[0])}`);
}

async function atSize(endpoints: number, noChangeRounds: number): Promise<Size> {
  const state = stateFrom(hostCommands(layout(endpoints)));
  return withNetns('lnbench04', async (netns) => {
    let spent: Record<string, number> = {};
    const reconciler = new Reconciler({
      kernel: timed(createKernel({ netns, filterPrefixes: [VETH_PREFIX] }), () => spent),
      getState: () => state,
      log: quiet,
      onLost: async () => undefined,
      intervalMs: 0,
    });
    try {
      let t0 = performance.now();
      const first = await reconciler.requestPass('CreateEndpoint');
      const converge = performance.now() - t0;
      check(first, `converging ${endpoints} endpoints`);
      const noChange: number[] = [];
      for (let i = 0; i < noChangeRounds; i++) {
        spent = {};
        t0 = performance.now();
        const r = await reconciler.requestPass('CreateEndpoint');
        noChange.push(performance.now() - t0);
        check(r, 'a no-change pass');
        if (r.planned.length > 0) throw new Error(`a pass after converging ${endpoints} endpoints still planned ${r.planned.length} actions`);
      }
      return { endpoints, converge, noChange, kernelMs: spent };
    } finally {
      await reconciler.stop();
    }
  });
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const sizes = opts.smoke ? [20, 40] : [250, 500, 1_000, 2_000];
  const results: Size[] = [];
  for (const n of sizes) results.push(await atSize(n, opts.smoke ? 1 : 5));
  const measurements: Measurement[] = [];
  for (const r of results) {
    measurements.push(measure(`converge from empty, ${r.endpoints} endpoints`, 'ms', [r.converge]));
    measurements.push(measure(`no-change pass, ${r.endpoints} endpoints`, 'ms', r.noChange));
  }
  const big = results.at(-1) as Size;
  const half = results.at(-2) as Size;
  const growth = big.converge / half.converge;
  const noChange = measure('', 'ms', big.noChange).median;
  const inKernel = Object.entries(big.kernelMs).map(([k, ms]) => `${k} ${ms.toFixed(0)} ms`).join(', ');
  return {
    row: '4 reconcile at scale in a namespace, no Docker',
    measurements: [...measurements, measure(`converge time(${big.endpoints}) / time(${half.endpoints})`, 'x', [growth])],
    verdicts: [
      { target: `converge from empty ≤ 2 s at ${big.endpoints}`, value: big.converge, met: big.converge <= 2_000 },
      { target: `a no-change pass ≤ 100 ms at ${big.endpoints}`, value: noChange, met: noChange <= 100 },
      { target: `time(${big.endpoints}) ≤ 2.2 × time(${half.endpoints})`, value: growth, met: growth <= 2.2 },
    ],
    notes: [
      'One fresh namespace per size; the daemon\'s Reconciler (plan against what it observes, apply in batches) over the real ' +
        'kernel there; each no-change pass must plan nothing. Times are wall clock around `requestPass`.',
      `The last no-change pass at ${big.endpoints} endpoints (${big.noChange.at(-1)?.toFixed(0)} ms) spent in the kernel's methods ` +
        `(processes it runs and their parsing): ${inKernel || 'nothing'}; the rest is desired state, plan and the loop.`,
    ],
  };
}
