// Parsers for `tc -j -r qdisc show` and the stderr of `tc -force -batch -`.
import { asRecord, optionalString, parseError, parseJsonRecords, requireString } from './json-fields.ts';
import type { BatchFailure, Qdisc } from './types.ts';

const WHAT = 'tc -j -r qdisc show';

/**
 * Parses `tc -j -r qdisc show` (all devices) into qdiscs. For tbf, `rate` (bytes/s), `burst` and
 * `limit` (bytes) as tc prints them (`limit` only raw, `-r`: else null); null for other kinds.
 * @throws DriverError `LN_ERR_KERNEL_PARSE` when the output is not the expected JSON.
 */
export function parseQdiscs(text: string): Qdisc[] {
  if (text.trim() === '') return [];
  return parseJsonRecords(text, WHAT).map((rec, i) => {
    const label = `entry ${i}`;
    const options = rec['options'] === undefined ? {} : asRecord(rec['options'], WHAT, `${label}.options`);
    const kind = requireString(rec, 'kind', WHAT, label);
    // Other kinds have fields of these names in other units (fq_codel's limit is in packets).
    const tbf = (key: string): number | null => {
      const v = options[key];
      return kind === 'tbf' && typeof v === 'number' ? v : null;
    };
    return {
      dev: requireString(rec, 'dev', WHAT, label),
      kind,
      handle: requireString(rec, 'handle', WHAT, label),
      root: rec['root'] === true,
      parent: optionalString(rec, 'parent', WHAT, label),
      rate: tbf('rate'),
      burst: tbf('burst'),
      limit: tbf('limit'),
    };
  });
}

/**
 * Maps `tc -force -batch -` stderr to the failed lines: tc prints the error, then
 * `Command failed -:N` (1-based). Lines with no marker are not reported.
 */
export function parseTcBatchErrors(stderr: string, lines: readonly string[]): BatchFailure[] {
  const out: BatchFailure[] = [];
  let pending: string[] = [];
  for (const raw of stderr.split('\n')) {
    const m = /^Command failed -:(\d+)$/.exec(raw.trim());
    if (!m) {
      if (raw.trim() !== '') pending.push(raw.trim());
      continue;
    }
    const line = Number(m[1]) - 1;
    out.push({ line, command: lines[line] ?? '', message: pending.join('; ') || 'tc failed' });
    pending = [];
  }
  return out;
}

/**
 * Parses the output of `tc -j -batch -` with one `filter show dev <d> ingress` per device (one
 * JSON array per line, in order) into device → the devices its filters redirect to (mirred).
 * @throws DriverError `LN_ERR_KERNEL_PARSE` when the lines do not match the devices asked for.
 */
export function parseIngressRedirects(text: string, devices: readonly string[]): Record<string, string[]> {
  const what = 'tc -j filter show';
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length !== devices.length) parseError(what, `${devices.length} devices asked for, ${lines.length} answers`);
  const out: Record<string, string[]> = {};
  devices.forEach((dev, i) => {
    const targets: string[] = [];
    for (const f of parseJsonRecords(lines[i] ?? '', what)) {
      const options = f['options'] === undefined ? {} : asRecord(f['options'], what, `${dev}.options`);
      const actions = Array.isArray(options['actions']) ? options['actions'] : [];
      for (const a of actions) {
        const act = asRecord(a, what, `${dev}.actions`);
        if (act['kind'] === 'mirred' && act['mirred_action'] === 'redirect' && typeof act['to_dev'] === 'string') targets.push(act['to_dev']);
      }
    }
    out[dev] = targets;
  });
  return out;
}
