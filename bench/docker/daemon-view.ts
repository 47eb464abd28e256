// Where ledgernet's time went during a row, in its own words: the daemon runs with `--metrics`
// and the row's notes get its reconcile passes and its per-call times from /metrics.
import { createServer } from 'node:net';

/** A TCP port on 127.0.0.1 that nothing listened on a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

interface Totals {
  sum: number;
  count: number;
}

/** Sums `<name>_sum` and `<name>_count` of a Prometheus histogram, by the value of `label` (or all in ''). */
export function histogramTotals(text: string, name: string, label?: string): Map<string, Totals> {
  const out = new Map<string, Totals>();
  const line = new RegExp(`^${name}_(sum|count)(?:\\{([^}]*)\\})? ([0-9.eE+-]+)$`);
  for (const l of text.split('\n')) {
    const m = line.exec(l);
    if (!m) continue;
    const key = label ? (new RegExp(`${label}="([^"]*)"`).exec(m[2] ?? '')?.[1] ?? '') : '';
    const t = out.get(key) ?? { sum: 0, count: 0 };
    if (m[1] === 'sum') t.sum += Number(m[3]);
    else t.count += Number(m[3]);
    out.set(key, t);
  }
  return out;
}

const meanMs = (t: Totals): string => `${((t.sum / Math.max(1, t.count)) * 1000).toFixed(0)} ms`;

/** Sums the samples of a Prometheus counter by the value of `label`. */
function counterTotals(text: string, name: string, label: string): Map<string, number> {
  const out = new Map<string, number>();
  const line = new RegExp(`^${name}\\{([^}]*)\\} ([0-9.eE+-]+)$`);
  for (const l of text.split('\n')) {
    const m = line.exec(l);
    const key = m ? new RegExp(`${label}="([^"]*)"`).exec(m[1] ?? '')?.[1] : undefined;
    if (m && key !== undefined) out.set(key, (out.get(key) ?? 0) + Number(m[2]));
  }
  return out;
}

/** Which passes read the whole kernel, and the kernel notices taken as drift (absent: none counted). */
function readsNote(text: string): string {
  const against = counterTotals(text, 'ledgernet_reconcile_passes_total', 'against');
  if (against.size === 0) return '';
  const drift = counterTotals(text, 'ledgernet_kernel_notices_total', 'verdict').get('drift') ?? 0;
  const scoped = against.get('scoped') ?? 0;
  const model = (against.get('model') ?? 0) + scoped;
  return ` (${model} planned against the kernel model, ${scoped} of them for the changed networks only; ${against.get('read') ?? 0} full kernel reads; ${drift} kernel notices taken as drift)`;
}

/** One paragraph for the notes from the daemon's /metrics text. */
export function describeMetrics(text: string): string {
  const passes = histogramTotals(text, 'ledgernet_reconcile_pass_duration_seconds').get('') ?? { sum: 0, count: 0 };
  const calls = [...histogramTotals(text, 'ledgernet_request_duration_seconds', 'method')]
    .filter(([, t]) => t.count > 0)
    .sort(([, a], [, b]) => b.sum - a.sum)
    // The network driver's calls by their bare names; IPAM's keep `IpamDriver.` (both have GetCapabilities).
    .map(([method, t]) => `${method.replace(/^NetworkDriver\./, '')} ${t.count} × ${meanMs(t)}`);
  const fsync = histogramTotals(text, 'ledgernet_log_fsync_duration_seconds').get('') ?? { sum: 0, count: 0 };
  const fsyncNote = fsync.count > 0 ? `; ${fsync.count} log fsyncs (one per group commit), ${((fsync.sum / fsync.count) * 1000).toFixed(2)} ms each on average` : '';
  return (
    `Ledgernet's own metrics over the whole row, warm-ups and every phase included: ` +
    `${passes.count} reconcile passes, ${meanMs(passes)} each on average (${passes.sum.toFixed(1)} s in all)${readsNote(text)}${fsyncNote}; ` +
    `its answers to Docker, count × mean, most total time first: ${calls.join(', ') || 'none'}.`
  );
}
