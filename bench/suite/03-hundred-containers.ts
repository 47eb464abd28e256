// Row 3: 100 containers started with concurrency 8 (`docker run -d`), then removed the same way;
// ledgernet against Docker's bridge driver, with `--network none` beside them for the network's share.
import { performance } from 'node:perf_hooks';
import { measure, median, type BenchOptions, type BenchResult, type Measurement } from '../rows.ts';
import { atMost, createNetwork, ratio, DRIVERS, measureSubnet, pool, rotate, type Variant } from '../docker/measure.ts';
import { withSession, type Session } from '../docker/session.ts';
import { TEST_IMAGE } from '../../test/helpers/docker.ts';

export interface Size {
  containers: number;
  concurrency: number;
  reps: number;
}

async function elapsed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** One batch on `network`: start all (concurrency c), then remove all; both phases timed (also bench/probes/floor-batch.ts). */
export async function batch(s: Session, network: string, size: Size): Promise<{ start: number; rm: number }> {
  const names = Array.from({ length: size.containers }, () => s.name('c3'));
  const start = await elapsed(() =>
    pool(names, size.concurrency, (n) => s.docker(['run', '-d', '--name', n, '--network', network, TEST_IMAGE, 'sleep', '3600'])),
  );
  const rm = await elapsed(() => pool(names, size.concurrency, (n) => s.docker(['rm', '-f', n])));
  return { start, rm };
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const size: Size = opts.smoke ? { containers: 2, concurrency: 2, reps: 1 } : { containers: Number(process.env['BENCH_03_CONTAINERS'] ?? 100), concurrency: 8, reps: Number(process.env['BENCH_03_REPS'] ?? 3) };
  return withSession(async (s) => {
    const network: Record<Variant, string> = {
      none: 'none',
      bridge: await createNetwork(s, 'bridge', measureSubnet(3)),
      ledgernet: await createNetwork(s, 'ledgernet', measureSubnet(4)),
    };
    const start: Record<Variant, number[]> = { none: [], bridge: [], ledgernet: [] };
    const rm: Record<Variant, number[]> = { none: [], bridge: [], ledgernet: [] };
    const total: Record<Variant, number[]> = { none: [], bridge: [], ledgernet: [] };
    const variants: Variant[] = ['none', ...DRIVERS];
    for (let i = 0; i < size.reps; i++) {
      for (const v of rotate(variants, i)) {
        const b = await batch(s, network[v], size);
        start[v].push(b.start);
        rm[v].push(b.rm);
        total[v].push(b.start + b.rm);
      }
    }
    const rows = (phase: string, xs: Record<Variant, number[]>): Measurement[] =>
      variants.map((v) => measure(`${phase}, ${v}`, 'ms', xs[v]));
    const share = (v: Variant) => median(total[v]) - median(total.none);
    return {
      row: `3 ${size.containers} containers started with concurrency ${size.concurrency}, then removed`,
      measurements: [
        ...rows('start all', start),
        ...rows('remove all', rm),
        ...rows('start + remove', total),
        ratio('network share (start + remove minus none), ledgernet / bridge', share('ledgernet') / share('bridge')),
      ],
      verdicts: [atMost('ledgernet ≤ 0.9 × bridge (start + remove)', median(total.ledgernet) / median(total.bridge), 0.9)],
      notes: [
        `${size.reps} repetitions; each runs a batch on none, the bridge network and the ledgernet ` +
          'network one after another, in an order that rotates each repetition. A batch starts ' +
          `${size.containers} containers (\`docker run -d … busybox sleep 3600\`), ${size.concurrency} ` +
          `at a time, then removes them (\`docker rm -f\`), ${size.concurrency} at a time. The issue's ` +
          "target is on the batch's whole time; the network's share (a batch's time minus that on " +
          'none, medians) is beside it for reading.',
      ],
    };
  });
}
