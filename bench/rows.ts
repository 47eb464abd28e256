// The shape every benchmark reports in, so `npm run bench` (bench/index.ts) can run them all and
// rewrite BENCHMARKS.md. One module per benchmark row of issue 11's table (and issue 13's):
//   export async function run(opts: BenchOptions): Promise<BenchResult>
// `opts.smoke` asks for a tiny run (seconds) whose only job is to prove the harness still works;
// the test suite runs every benchmark that way.

export interface BenchOptions {
  /** A tiny run for the test suite: correctness of the harness, not numbers. */
  readonly smoke: boolean;
}

/** One measured quantity: medians with min/max and n, as BENCHMARKS.md prints them. */
export interface Measurement {
  readonly what: string;
  readonly unit: 'ms' | 'MB' | 'per s' | 'Mbit/s' | 'x';
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

/** A target of the table and whether this run met it. */
export interface Verdict {
  readonly target: string;
  /** The value the target is about (a ratio, a time, a rate). */
  readonly value: number;
  readonly met: boolean;
}

export interface BenchResult {
  /** The row number and title in the table, e.g. `1 network cost of one container`. */
  readonly row: string;
  readonly measurements: readonly Measurement[];
  readonly verdicts: readonly Verdict[];
  /** Markdown paragraphs: how it was measured, and for a missed target where the time goes. */
  readonly notes: readonly string[];
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? Number.NaN : s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
}

/** Median, min, max and n of `xs`. */
export function measure(what: string, unit: Measurement['unit'], xs: readonly number[]): Measurement {
  return { what, unit, median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}
