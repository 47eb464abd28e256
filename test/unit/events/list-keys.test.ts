// listKeys (src/events/cluster/cas.ts): a key listing that stalls is dropped and made again. The
// stall itself (the NATS client's listing waiting 30 s for its consumer's heartbeat when a key
// changes while it is listed) is shown with real nats-servers in test/integration/cluster-join.test.ts;
// here a bucket whose first listing stalls shows what listKeys does with it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KV } from '@nats-io/kv';
import { listKeys } from '../../../src/events/cluster/cas.ts';

/** A bucket whose first `stalls` listings yield `before` and then wait until stopped; later ones yield `after` and end. */
function bucket(stalls: number, before: string[], after: string[]): { kv: KV; listings: () => number; stopped: () => number } {
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
        yield* stall ? before : after;
        if (stall) await ended;
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
    assert.equal(b.stopped(), 1);
  });

  it('a listing that ends is the answer at once', async () => {
    const b = bucket(0, [], ['hosts.h1', 'hosts.h2']);
    const t = performance.now();
    assert.deepEqual(await listKeys(b.kv, 'hosts.*'), ['hosts.h1', 'hosts.h2']);
    assert.ok(performance.now() - t < 500);
    assert.equal(b.listings(), 1);
  });

  it('the last of four listings runs to its end however long it waits', async () => {
    const b = bucket(3, ['x'], ['x', 'y']);
    assert.deepEqual(await listKeys(b.kv, '>'), ['x', 'y']);
    assert.equal(b.listings(), 4);
    assert.equal(b.stopped(), 3);
  });
});
