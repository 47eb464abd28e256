// With --metrics on, the idle daemon is not woken 100 times a second: prom-client's event-loop
// delay monitor samples every EVENT_LOOP_SAMPLE_MS (100 ms), not every 10 ms (its default). Seen
// as users would: the wakeups of the process's main thread while nothing happens (its voluntary
// context switches, each a sleep in epoll_wait that a timer ended).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { EVENT_LOOP_SAMPLE_MS, Metrics } from '../../../src/operator/metrics.ts';

/** The main thread's voluntary context switches so far (/proc: this test's thread is the process's main thread). */
function wakeups(): number {
  const m = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  assert.ok(m, 'voluntary_ctxt_switches in /proc/self/status');
  return Number(m[1]);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('metrics on an idle daemon', () => {
  it('the event-loop delay monitor wakes the process about 10 times a second, not 100', async () => {
    const m = new Metrics();
    assert.ok(m.registry.getSingleMetric('ledgernet_nodejs_eventloop_lag_p99_seconds'), 'the lag gauges are there');
    await sleep(300);
    const before = wakeups();
    await sleep(2_000);
    const woken = wakeups() - before;
    // Every 100 ms: ~20 in 2 s, plus a few of node's own; at prom-client's 10 ms it was ~200.
    assert.ok(woken < 60, `the main thread woke ${woken} times in 2 s of idle (sampling every ${EVENT_LOOP_SAMPLE_MS} ms)`);
    assert.ok(woken >= 10, `the monitor still samples (${woken} wakeups in 2 s)`);
  });
});
