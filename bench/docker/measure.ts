// Measurements the Docker rows share: one container's `docker run --rm … true` on none, the bridge
// driver and ledgernet (row 1, row 10), a network create + rm on each driver (row 2, row 10), and
// the "200 other networks of each driver" a host at scale holds (rows 7 and 10).
import { median, measure, type Measurement, type Verdict } from '../rows.ts';
import { TEST_IMAGE } from '../../test/helpers/docker.ts';
import type { Session } from './session.ts';

export type Driver = 'bridge' | 'ledgernet';
export const DRIVERS: readonly Driver[] = ['bridge', 'ledgernet'];
export type Variant = 'none' | Driver;

/**
 * Address plan, apart from every range the tests use (10.231/16, 10.232/16, 10.77/16…):
 * 10.240.i/24 the i-th bridge network of a population, 10.241.i/24 the i-th ledgernet one,
 * 10.242.k/24 the networks a row measures on.
 */
const POPULATION_BASE: Record<Driver, string> = { bridge: '10.240', ledgernet: '10.241' };
export const MAX_POPULATION = 250;

/** The subnet of measurement network `k` (0–255). */
export const measureSubnet = (k: number): string => `10.242.${k}.0/24`;

/** Creates a network on `driver` with `subnet`; returns its name. */
export async function createNetwork(s: Session, driver: Driver, subnet: string, what = 'net'): Promise<string> {
  const name = s.name(`${what}-${driver}`);
  await s.docker(['network', 'create', '-d', driver, '--subnet', subnet, name]);
  return name;
}

/** Runs `fn` over `items` with at most `limit` at a time; the results keep the items' order. */
export async function pool<I, O>(items: readonly I[], limit: number, fn: (item: I) => Promise<O>): Promise<O[]> {
  const out: O[] = new Array<O>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as I);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/**
 * Creates `count` empty networks of each driver (interleaved, 4 at a time), as a host at scale
 * holds them. They stay until the session's cleanup. Returns the seconds it took.
 */
export async function populate(s: Session, count: number): Promise<number> {
  if (count > MAX_POPULATION) throw new Error(`populate: at most ${MAX_POPULATION} networks of each driver, not ${count}`);
  const t0 = Date.now();
  const jobs = Array.from({ length: count }, (_, i) => DRIVERS.map((d) => ({ d, i }))).flat();
  await pool(jobs, 4, ({ d, i }) => createNetwork(s, d, `${POPULATION_BASE[d]}.${i}.0/24`, 'pop'));
  return (Date.now() - t0) / 1000;
}

/** `xs` rotated left by `k`: round k of an interleaved run starts with a different variant. */
export const rotate = <T>(xs: readonly T[], k: number): T[] => xs.map((_, i) => xs[(i + k) % xs.length] as T);

export type Samples<K extends string> = Record<K, number[]>;

/**
 * `rounds` interleaved rounds of `docker run --rm --network <n> busybox true` on none, the bridge
 * network and the ledgernet network (order rotating each round), after one unmeasured warm-up of
 * each (but for a single round: a smoke run).
 */
export async function containerRuns(s: Session, nets: Record<Driver, string>, rounds: number): Promise<Samples<Variant>> {
  const network: Record<Variant, string> = { none: 'none', ...nets };
  const run = (v: Variant) => s.timed(['run', '--rm', '--name', s.name(`run-${v}`), '--network', network[v], TEST_IMAGE, 'true']);
  const out: Samples<Variant> = { none: [], bridge: [], ledgernet: [] };
  const variants: Variant[] = ['none', ...DRIVERS];
  if (rounds > 1) for (const v of variants) await run(v); // a smoke run (one round) skips the warm-up
  for (let i = 0; i < rounds; i++) for (const v of rotate(variants, i)) out[v].push(await run(v));
  return out;
}

/** `rounds` interleaved rounds of `docker network create` + `rm` on each driver. */
export async function createRmRounds(s: Session, rounds: number): Promise<Samples<Driver>> {
  const out: Samples<Driver> = { bridge: [], ledgernet: [] };
  const once = async (d: Driver): Promise<number> => {
    const name = s.name(`cr-${d}`);
    const create = await s.timed(['network', 'create', '-d', d, '--subnet', measureSubnet(d === 'bridge' ? 250 : 251), name]);
    return create + (await s.timed(['network', 'rm', name]));
  };
  if (rounds > 1) for (const d of DRIVERS) await once(d);
  for (let i = 0; i < rounds; i++) for (const d of rotate(DRIVERS, i)) out[d].push(await once(d));
  return out;
}

/**
 * The network's cost of one container on `d`: median(run on d) − median(run on none), as the issue
 * defines it; min and max are those of the per-round differences (each round ran both).
 */
export function networkCost(runs: Samples<Variant>, d: Driver, what: string): Measurement {
  const diffs = runs[d].map((x, i) => x - (runs.none[i] ?? Number.NaN));
  return { ...measure(what, 'ms', diffs), median: median(runs[d]) - median(runs.none) };
}

/** A ratio of two medians, as a one-number measurement (n = 1). */
export function ratio(what: string, value: number): Measurement {
  return { what, unit: 'x', median: value, min: value, max: value, n: 1 };
}

/** A verdict: `value` (a ratio) must be at most `limit`. */
export const atMost = (target: string, value: number, limit: number): Verdict => ({ target, value, met: value <= limit });

/** A verdict: `value` (a ratio) must be at least `limit`. */
export const atLeast = (target: string, value: number, limit: number): Verdict => ({ target, value, met: value >= limit });
