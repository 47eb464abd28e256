// The benchmark suite's runner: finds the modules in bench/suite (`NN-name.ts`, NN the row of the
// issue's table), runs them one after another, keeps each row's latest full result in
// bench/results.json and renders them all into BENCHMARKS.md's generated block. A smoke run
// (`smoke: true`) runs every module at a tiny size and writes nothing.
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { execa } from 'execa';
import type { BenchOptions, BenchResult } from './rows.ts';
import { renderBlock, replaceBlock, type RowRecord } from './render.ts';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const SUITE_DIR = join(BENCH_DIR, 'suite');
export const RESULTS_FILE = join(BENCH_DIR, 'results.json');
export const BENCHMARKS_FILE = join(BENCH_DIR, '..', 'BENCHMARKS.md');

interface Module {
  run(opts: BenchOptions): Promise<BenchResult>;
}

export interface RowRun {
  /** The module's file name without `.ts`, e.g. `01-container-cost`. */
  readonly id: string;
  readonly seconds: number;
  readonly result?: BenchResult;
  /** Why the module failed or returned a malformed result. */
  readonly error?: string;
}

/** The suite's modules, sorted; `filter` keeps those whose name starts with one of its words ("1", "01", "01-container"). */
export async function discover(filter: readonly string[] = []): Promise<string[]> {
  const all = (await readdir(SUITE_DIR)).filter((f) => /^\d\d-[\w.-]+\.ts$/.test(f)).map((f) => f.slice(0, -3)).sort();
  if (filter.length === 0) return all;
  const words = filter.map((w) => (/^\d$/.test(w) ? `0${w}` : w));
  const unknown = words.filter((w) => !all.some((id) => id.startsWith(w)));
  if (unknown.length > 0) throw new Error(`no benchmark matches ${unknown.join(', ')}; the suite has: ${all.join(', ')}`);
  return all.filter((id) => words.some((w) => id.startsWith(w)));
}

const finite = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x);

/** What is wrong with a module's result (empty when it is well-formed). */
export function checkResult(r: BenchResult): string[] {
  const out: string[] = [];
  if (typeof r.row !== 'string' || r.row === '') out.push('no row title');
  if (!Array.isArray(r.measurements) || r.measurements.length === 0) out.push('no measurements');
  for (const m of r.measurements ?? []) {
    if (!(Number.isInteger(m.n) && m.n > 0)) out.push(`${m.what}: n is ${m.n}`);
    for (const k of ['median', 'min', 'max'] as const) if (!finite(m[k])) out.push(`${m.what}: ${k} is ${m[k]}`);
  }
  if (!Array.isArray(r.verdicts) || r.verdicts.length === 0) out.push('no verdicts');
  for (const v of r.verdicts ?? []) {
    if (!finite(v.value)) out.push(`${v.target}: value is ${v.value}`);
    if (typeof v.met !== 'boolean') out.push(`${v.target}: met is ${String(v.met)}`);
  }
  if (!Array.isArray(r.notes)) out.push('no notes');
  return out;
}

async function runOne(id: string, opts: BenchOptions): Promise<RowRun> {
  const t0 = Date.now();
  const seconds = () => Math.round((Date.now() - t0) / 100) / 10;
  try {
    const mod = (await import(pathToFileURL(join(SUITE_DIR, `${id}.ts`)).href)) as Partial<Module>;
    if (typeof mod.run !== 'function') throw new Error(`bench/suite/${id}.ts exports no run(opts) function`);
    const result = await mod.run(opts);
    const problems = checkResult(result);
    if (problems.length > 0) return { id, seconds: seconds(), result, error: `malformed result: ${problems.join('; ')}` };
    return { id, seconds: seconds(), result };
  } catch (e) {
    return { id, seconds: seconds(), error: e instanceof Error ? (e.stack ?? e.message) : String(e) };
  }
}

async function output(cmd: string, args: readonly string[]): Promise<string> {
  const r = await execa(cmd, args, { reject: false, cwd: join(BENCH_DIR, '..') });
  return r.exitCode === 0 ? r.stdout.trim() : '?';
}

/** Where and on what a row ran: the commit (and whether the tree had other changes), dockerd, Node. */
async function environment(): Promise<Pick<RowRecord, 'commit' | 'dockerd' | 'node'>> {
  const changed = (await output('git', ['status', '--porcelain']))
    .split('\n')
    .filter((l) => l.trim() !== '' && !/(BENCHMARKS\.md|bench\/results\.json)$/.test(l));
  return {
    commit: `${await output('git', ['rev-parse', '--short', 'HEAD'])}${changed.length > 0 ? ' + uncommitted changes' : ''}`,
    dockerd: (await output('/usr/bin/docker', ['version', '-f', '{{.Server.Version}}'])).replace(/^\?$/, 'not running'),
    node: process.version,
  };
}

async function readRecords(): Promise<Record<string, RowRecord>> {
  try {
    return (JSON.parse(await readFile(RESULTS_FILE, 'utf8')) as { rows: Record<string, RowRecord> }).rows;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new Error(`${RESULTS_FILE} is not readable JSON: ${String(e)}`);
  }
}

/** Stores a full run's result for its row and rewrites BENCHMARKS.md's block from all rows. */
async function record(run: RowRun, start: Pick<RowRecord, 'ranAt' | 'load'>): Promise<void> {
  if (!run.result || run.error) return;
  const records = await readRecords();
  records[run.id] = { ...start, ...(await environment()), seconds: run.seconds, result: run.result };
  const sorted = Object.fromEntries(Object.entries(records).sort(([a], [b]) => a.localeCompare(b)));
  await writeFile(RESULTS_FILE, `${JSON.stringify({ rows: sorted }, null, 2)}\n`);
  const md = await readFile(BENCHMARKS_FILE, 'utf8');
  await writeFile(BENCHMARKS_FILE, replaceBlock(md, renderBlock(sorted)));
}

export interface SuiteOptions extends BenchOptions {
  /** Words that select modules (see discover); empty: all. */
  readonly filter?: readonly string[];
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
}

/**
 * Runs the selected modules one after another. A full run records each row as it finishes (a
 * failed row keeps its previous result); a smoke run records nothing.
 */
export async function runSuite(opts: SuiteOptions): Promise<RowRun[]> {
  const ids = await discover(opts.filter);
  const runs: RowRun[] = [];
  for (const id of ids) {
    opts.log?.(`bench: ${id}${opts.smoke ? ' (smoke)' : ''} …`);
    const start = { ranAt: new Date().toISOString(), load: loadavg()[0] ?? 0 };
    const run = await runOne(id, { smoke: opts.smoke });
    opts.log?.(`bench: ${id}: ${run.error ? `FAILED after ${run.seconds} s: ${run.error}` : `done in ${run.seconds} s`}`);
    if (!opts.smoke) await record(run, start);
    runs.push(run);
  }
  return runs;
}
