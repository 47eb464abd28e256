// listKeys (src/events/cluster/cas.ts): a key listing that stalls is dropped and made again. The
// stall itself (the NATS client's listing waiting 30 s for its consumer's heartbeat when a key
// changes while it is listed) is shown with real nats-servers in test/integration/cluster-join.test.ts;
// here a bucket whose first listing stalls shows what listKeys does with it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KV } from '@nats-io/kv';
import { listKeys } from '../../../src/events/cluster/cas.ts';
import { DriverError } from '../../../src/errors.ts';

/** Shorter waits than the daemon's: a stall 100 ms, the last listing's 500 ms, any listing 1 s. */
const fast = { stallMs: 100, lastStallMs: 500, maxMs: 1_000 };

/** A bucket whose first `stalls` listings yield `before` and then wait until stopped; later ones yield `after` (`pauseMs` apart) and end. */
function bucket(stalls: number, before: string[], after: string[], pauseMs = 0): { kv: KV; listings: () => number; stopped: () => number } {
  let listings = 0;
  let stopped = 0;
  const keys = async () => {
    const stall = ++listings <= stalls;
    let stop: () => void = () => undefined;
    const ended = new Promise<void>((r) => (stop = r));
    return {
      stop: () => {
        stopped++;
        stop();
      },
      async *[Symbol.asyncIterator]() {
        if (stall) {
          yield* before;
          await ended;
          return;
        }
        for (const k of after) {
          if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs));
          yield k;
        }
      },
    };
  };
  return { kv: { keys } as unknown as KV, listings: () => listings, stopped: () => stopped };
}

describe('listKeys', () => {
  it('a listing that goes a second without a key is stopped, and the next one is the answer', async () => {
    const b = bucket(1, ['subnets.a'], ['subnets.a', 'subnets.b']);
    const t = performance.now();
    assert.deepEqual(await listKeys(b.kv, 'subnets.*'), ['subnets.a', 'subnets.b']);
    const ms = performance.now() - t;
    assert.ok(ms >= 900 && ms < 3_000, `took ${ms} ms`);
    assert.equal(b.listings(), 2);
    assert.equal(b.stopped(), 2, 'the dropped listing and the answer are both stopped');
  });

  it('a listing that ends is the answer at once', async () => {
    const b = bucket(0, [], ['hosts.h1', 'hosts.h2']);
    const t = performance.now();
    assert.deepEqual(await listKeys(b.kv, 'hosts.*'), ['hosts.h1', 'hosts.h2']);
    assert.ok(performance.now() - t < 500);
    assert.equal(b.listings(), 1);
  });

  it('the last of four listings may wait longer (past the consumer\'s heartbeat) and is the answer', async () => {
    const b = bucket(3, ['x'], ['x', 'y'], 300);
    assert.deepEqual(await listKeys(b.kv, '>', fast), ['x', 'y']);
    assert.equal(b.listings(), 4);
    assert.equal(b.stopped(), 4);
  });

  it('a key that comes again ends the listing at once: keys rewritten without a pause never let it end', async () => {
    // What the NATS client does while heartbeats rewrite the host records: every rewrite is
    // delivered after the keys as they were, and the listing waits for a pause that never comes.
    let stopped = false;
    const keys = async () => ({
      stop: () => (stopped = true),
      async *[Symbol.asyncIterator]() {
        yield* ['hosts.h1', 'hosts.h2', 'hosts.h3'];
        for (let i = 0; !stopped; i++) {
          await new Promise((r) => setTimeout(r, 5));
          yield `hosts.h${(i % 3) + 1}`;
        }
      },
    });
    const t = performance.now();
    assert.deepEqual(await listKeys({ keys } as unknown as KV, 'hosts.*'), ['hosts.h1', 'hosts.h2', 'hosts.h3']);
    assert.ok(performance.now() - t < 500, 'no stall waited for');
    assert.ok(stopped, 'the listing is stopped');
  });

  it('new keys coming without end, or a last listing that stalls too: an error naming the filter, never a wait without end', async () => {
    let made = 0;
    const keys = async () => {
      let stopped = false;
      return {
        stop: () => (stopped = true),
        async *[Symbol.asyncIterator]() {
          for (let i = 0; !stopped; i++) {
            await new Promise((r) => setTimeout(r, 5));
            yield `blocks.n.${made}.${i}`;
          }
        },
      };
    };
    const counted = async () => (made++, keys());
    await assert.rejects(listKeys({ keys: counted } as unknown as KV, 'blocks.n.*', fast), (e: unknown) => {
      return e instanceof DriverError && e.code === 'LN_ERR_CLUSTER_UNAVAILABLE' && e.message.includes('blocks.n.*');
    });
    assert.equal(made, 4);
    const b = bucket(4, ['x'], []);
    const t = performance.now();
    await assert.rejects(listKeys(b.kv, '>', fast), /a listing of > stalled 4 times/);
    assert.ok(performance.now() - t >= 3 * fast.stallMs + fast.lastStallMs - 50);
    assert.equal(b.stopped(), 4);
  });
});
