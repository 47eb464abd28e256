// BENCHMARKS.md's generated block: a summary of every target, then per row its measurements,
// verdicts and notes, from the rows' latest results (bench/results.json).
import type { BenchResult, Measurement } from './rows.ts';

export const BEGIN = '<!-- bench:begin -->';
export const END = '<!-- bench:end -->';

/** A row's latest full run, as bench/results.json keeps it. */
export interface RowRecord {
  readonly ranAt: string;
  readonly commit: string;
  readonly dockerd: string;
  readonly node: string;
  readonly seconds: number;
  /** The 1-minute load average when the row started (the VM is shared). */
  readonly load: number;
  readonly result: BenchResult;
}

function num(x: number, unit: Measurement['unit']): string {
  if (unit === 'x') return x.toFixed(2);
  if (unit === 'MB' || unit === 'Mbit/s' || unit === 'per s') return Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(1);
  return x.toFixed(1);
}

const met = (m: boolean): string => (m ? 'met' : '**missed**');
/** Three decimals: a ratio of 0.604 against a target of 0.6 must not read as 0.60. */
const value = (x: number): string => x.toFixed(3);
const when = (r: RowRecord): string => `${r.ranAt.slice(0, 16).replace('T', ' ')} UTC`;
const cell = (s: string): string => s.replace(/\|/g, '\\|');

export function renderRow(r: BenchResult): string[] {
  const lines = ['| measurement | unit | median | min | max | n |', '|---|---|---:|---:|---:|---:|'];
  for (const m of r.measurements) {
    const range = m.n === 1 && m.min === m.max ? ['', ''] : [num(m.min, m.unit), num(m.max, m.unit)];
    lines.push(`| ${cell(m.what)} | ${m.unit} | ${num(m.median, m.unit)} | ${range.join(' | ')} | ${m.n} |`);
  }
  lines.push('', '| target | value | |', '|---|---:|---|');
  for (const v of r.verdicts) lines.push(`| ${cell(v.target)} | ${value(v.value)} | ${met(v.met)} |`);
  for (const n of r.notes) lines.push('', n);
  return lines;
}

export function renderBlock(rows: Readonly<Record<string, RowRecord>>): string {
  const entries = Object.entries(rows);
  const out = [
    BEGIN,
    '<!-- Written by `npm run bench` (bench/index.ts) from bench/results.json: edits here are overwritten. -->',
    '',
    '## Latest results',
    '',
    '| row | target | value | | run |',
    '|---|---|---:|---|---|',
  ];
  for (const [, rec] of entries) {
    const row = rec.result.row.split(' ')[0] ?? '';
    for (const v of rec.result.verdicts) out.push(`| ${row} | ${cell(v.target)} | ${value(v.value)} | ${met(v.met)} | ${when(rec)} |`);
  }
  for (const [id, rec] of entries) {
    const [row, ...title] = rec.result.row.split(' ');
    out.push('', `### Row ${row}: ${title.join(' ')}`, '');
    out.push(
      `\`bench/suite/${id}.ts\`, run ${when(rec)} at ${rec.commit} in ${Math.round(rec.seconds)} s; ` +
        `dockerd ${rec.dockerd}, Node ${rec.node}, load average ${rec.load.toFixed(2)} at the start.`,
      '',
    );
    out.push(...renderRow(rec.result));
  }
  out.push(END);
  return out.join('\n');
}

/** `md` with its generated block replaced by `block`; throws when the markers are missing. */
export function replaceBlock(md: string, block: string): string {
  const a = md.indexOf(BEGIN);
  const b = md.indexOf(END);
  if (a < 0 || b < a) throw new Error(`BENCHMARKS.md has no ${BEGIN} … ${END} block for the results; add the two markers where they go`);
  return md.slice(0, a) + block + md.slice(b + END.length);
}
