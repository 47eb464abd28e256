// The benchmark harness's pure parts: BENCHMARKS.md's generated block replaced in place (history
// kept), and the daemon's /metrics text (from the daemon's own Metrics class) read into a note.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from '../../src/operator/metrics.ts';
import { describeMetrics } from '../../bench/docker/daemon-view.ts';
import { BEGIN, END, renderBlock, replaceBlock, type RowRecord } from '../../bench/render.ts';

const record: RowRecord = {
  ranAt: '2026-11-30T12:53:45.065Z',
  commit: 'ef76744',
  dockerd: '20.10.24',
  node: 'v20.20.2',
  seconds: 76,
  load: 1.5,
  result: {
    row: '3 100 containers started',
    measurements: [
      { what: 'start, bridge', unit: 'ms', median: 100, min: 90, max: 120, n: 3 },
      { what: 'ratio a | b', unit: 'x', median: 1.234, min: 1.234, max: 1.234, n: 1 },
    ],
    verdicts: [{ target: 'ledgernet ≤ 0.9 × bridge', value: 1.114, met: false }],
    notes: ['How it was measured.'],
  },
};

test('a run replaces only the generated block: the text around it stays', () => {
  const md = `# Benchmarks\n\nintro\n\n${BEGIN}\nold\n${END}\n\n## History\n\nhand-written\n`;
  const out = replaceBlock(md, renderBlock({ '03-hundred-containers': record }));
  assert.ok(out.startsWith('# Benchmarks\n\nintro\n\n<!-- bench:begin -->\n'));
  assert.ok(out.endsWith(`${END}\n\n## History\n\nhand-written\n`));
  assert.ok(!out.includes('\nold\n'));
  assert.match(out, /\| 3 \| ledgernet ≤ 0\.9 × bridge \| 1\.114 \| \*\*missed\*\* \| 2026-11-30 12:53 UTC \|/);
  assert.match(out, /### Row 3: 100 containers started/);
  assert.match(out, /\| start, bridge \| ms \| 100\.0 \| 90\.0 \| 120\.0 \| 3 \|/);
  // A one-number ratio shows no range; a pipe in a cell is escaped.
  assert.match(out, /\| ratio a \\\| b \| x \| 1\.23 \| {2}\| {2}\| 1 \|/);
});

test('a BENCHMARKS.md without the markers is refused with the reason', () => {
  assert.throws(() => replaceBlock('# Benchmarks\n', 'x'), /BENCHMARKS\.md has no <!-- bench:begin --> … <!-- bench:end --> block/);
});

test("the daemon's metrics become one note: passes and per-call times", async () => {
  const m = new Metrics();
  m.onCall('NetworkDriver.CreateEndpoint', 40, true);
  m.onCall('NetworkDriver.CreateEndpoint', 60, false);
  m.onCall('NetworkDriver.Join', 10, true);
  m.onCall('NetworkDriver.GetCapabilities', 0.4, true);
  m.onCall('IpamDriver.GetCapabilities', 0.2, true);
  for (const durationMs of [30, 50]) m.onPass({ trigger: 'intent', planned: [], applied: [], failures: [], lost: [], durationMs, seq: 0 });
  const note = describeMetrics(await m.registry.metrics());
  assert.match(note, /2 reconcile passes, 40 ms each on average \(0\.1 s in all\)/);
  assert.match(note, /CreateEndpoint 2 × 50 ms, Join 1 × 10 ms, GetCapabilities 1 × 0 ms, IpamDriver\.GetCapabilities 1 × 0 ms\.$/);
  assert.doesNotMatch(note, /fsync/, 'no commit, no fsync figure');
  m.onFlush({ events: 2, bytes: 100, fsyncMs: 1 });
  m.onFlush({ events: 1, bytes: 50, fsyncMs: 2 });
  assert.match(describeMetrics(await m.registry.metrics()), /; 2 log fsyncs \(one per group commit\), 1\.50 ms each on average; its answers/);
});
