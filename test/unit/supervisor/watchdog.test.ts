import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PING_MS, Watchdog } from '../../../src/supervisor/watchdog.ts';
import { PREVIOUS_WORKER_ENV, previousWorker } from '../../../src/supervisor/worker-link.ts';

/** Ticks every PING_MS from `from` to `to` (inclusive), answering each with a pong when `answers(t)`; returns the first 'kill' time or null. */
function run(dog: Watchdog, from: number, to: number, answers: (t: number) => boolean): number | null {
  for (let t = from; t <= to; t += PING_MS) {
    if (dog.tick(t) === 'kill') return t;
    if (answers(t)) dog.pong(t + 5);
  }
  return null;
}

describe('watchdog', () => {
  it('a worker that answers every ping is never killed', () => {
    const dog = new Watchdog(15_000, 0);
    assert.equal(run(dog, PING_MS, 600_000, () => true), null);
  });

  it('a worker that stops answering is killed at the first tick past the limit, not before', () => {
    const dog = new Watchdog(15_000, 0);
    const kill = run(dog, PING_MS, 60_000, (t) => t < 10_000);
    // Last pong at 9,005 ms: silent for more than 15 s from the tick at 25,000 ms on.
    assert.equal(kill, 25_000);
    assert.equal(dog.silentFor(25_000), 25_000 - 9_005);
  });

  it('answers that come late but within the limit keep it alive (a busy event loop is not a stuck one)', () => {
    const dog = new Watchdog(15_000, 0);
    // Answers only every 10th ping: 10 s gaps, under the 15 s limit.
    assert.equal(run(dog, PING_MS, 300_000, (t) => t % 10_000 === 0), null);
  });

  it('time the supervisor itself was held up (a late tick) is not counted against the worker', () => {
    const dog = new Watchdog(15_000, 0);
    assert.equal(dog.tick(1_000), 'ping');
    dog.pong(1_005);
    // The machine was paused for a minute: the next tick comes 60 s late, no pong could arrive.
    assert.equal(dog.tick(61_000), 'ping');
    // From then on the worker has the whole limit again; silent, it is killed after it.
    const kill = run(dog, 62_000, 120_000, () => false);
    assert.equal(kill, 77_000);
  });

  it('a ready worker silent from the start is killed after the limit', () => {
    const dog = new Watchdog(2_000, 0);
    assert.equal(run(dog, PING_MS, 10_000, () => false), 3_000);
  });

  it('a starting worker has the start-up limit; once ready, the running one from then on', () => {
    const dog = new Watchdog(60_000, 0);
    // Silent for 30 s while it starts (a long synchronous replay): left alone.
    assert.equal(run(dog, PING_MS, 30_000, () => false), null);
    dog.relimit(2_000, 30_500);
    assert.equal(run(dog, 31_000, 40_000, () => false), 33_000);
  });
});

describe('the worker before this one (LEDGERNET_PREVIOUS_WORKER)', () => {
  it('is read from what the supervisor wrote, and anything else is nothing', () => {
    const prev = { generation: 3, pid: 4242, endedAt: '2026-12-05T05:21:29.278Z', why: 'killed by the watchdog: its event loop had not answered for 15 s' };
    assert.deepEqual(previousWorker({ [PREVIOUS_WORKER_ENV]: JSON.stringify(prev) }), prev);
    for (const bad of [undefined, '', '{', '{"generation":"3","pid":1,"endedAt":"x","why":"y"}', '[]', 'null']) {
      assert.equal(previousWorker(bad === undefined ? {} : { [PREVIOUS_WORKER_ENV]: bad }), null, String(bad));
    }
  });
});
