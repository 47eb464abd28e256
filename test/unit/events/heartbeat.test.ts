// The heartbeat loop against a fake bucket and a fake clock: a full publish at start and after a
// failure, none before the watch has caught up; an expired host publishes again; a host whose
// timeout ran out is removed once; the watch is restarted when this host's own heartbeats stop
// coming back while writing them works.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { startHeartbeat, type Heartbeat } from '../../../src/events/cluster/heartbeat.ts';

const TIMEOUT = 6000; // interval 1000 ms

function fakeKv() {
  const calls: string[] = [];
  return {
    calls,
    watching: false,
    watchDetached: false,
    beat: 'ok' as 'ok' | 'expired' | 'forgotten' | 'rewritten' | 'fail',
    rev: 100,
    async heartbeat() {
      calls.push('heartbeat');
      const r = this.beat;
      this.beat = 'ok';
      if (r === 'fail') throw new Error('no responders');
      return r;
    },
    retire: [] as string[],
    clash: [] as string[],
    async syncOwn() {
      calls.push('syncOwn');
      const retired = this.retire;
      this.retire = [];
      return { retired, restored: [], conflicts: this.clash };
    },
    missing: [] as string[],
    changed: [] as string[],
    drifted: [] as string[],
    drift() {
      return this.watching ? { missing: this.missing, changed: this.changed, conflicts: this.drifted } : null;
    },
    async reap(host: string, rev: number | null) {
      calls.push(`reap ${host} ${rev}`);
      return 2;
    },
  };
}

let clock = 0;
let hb: Heartbeat | null = null;
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

beforeEach(() => {
  clock = 0;
  mock.timers.enable({ apis: ['setInterval'] });
});
afterEach(() => {
  hb?.stop();
  mock.timers.reset();
});

/** Moves the clock and the interval timer by `ms`, letting each beat finish. */
async function advance(ms: number, kv: ReturnType<typeof fakeKv>, echo = true): Promise<void> {
  for (let t = 0; t < ms; t += 1000) {
    clock += 1000;
    mock.timers.tick(1000);
    await new Promise((r) => setImmediate(r));
    if (echo) hb?.seen({ host: 'h1', rev: kv.rev++, record: true });
  }
}

function start(kv: ReturnType<typeof fakeKv>, rewatch: () => void = () => undefined): Heartbeat {
  hb = startHeartbeat({ kv, self: 'h1', timeoutMs: TIMEOUT, own: () => ({ members: [], endpoints: [] }), rewatch, log: silent, now: () => clock });
  return hb;
}

describe('heartbeat loop', () => {
  it('publishes this host\'s keys once the watch has caught up, and again after a failed beat', async () => {
    const kv = fakeKv();
    start(kv);
    await advance(2000, kv);
    assert.deepEqual(kv.calls.filter((c) => c === 'syncOwn'), [], 'not before the watch caught up');
    kv.watching = true;
    await advance(2000, kv);
    assert.equal(kv.calls.filter((c) => c === 'syncOwn').length, 1);
    kv.beat = 'fail';
    await advance(1000, kv);
    await advance(1000, kv);
    assert.equal(kv.calls.filter((c) => c === 'syncOwn').length, 2, 'once more after the failure');
    kv.beat = 'expired';
    await advance(1000, kv);
    assert.equal(kv.calls.filter((c) => c === 'syncOwn').length, 3, 'and after finding itself expired');
  });

  it('finding itself forgotten while it ran (expired, then ledgernet cluster forget): says so at error level and publishes everything again', async () => {
    const kv = fakeKv();
    kv.watching = true;
    const errors: string[] = [];
    hb = startHeartbeat({ kv, self: 'h1', timeoutMs: TIMEOUT, own: () => ({ members: [], endpoints: [] }), rewatch: () => undefined, log: { ...silent, error: (_: object, m: string) => void errors.push(m) }, now: () => clock });
    await advance(2000, kv);
    const published = kv.calls.filter((c) => c === 'syncOwn').length;
    assert.deepEqual(errors, []);
    kv.beat = 'forgotten';
    await advance(1000, kv);
    assert.equal(kv.calls.filter((c) => c === 'syncOwn').length, published + 1);
    assert.equal(errors.length, 1);
    assert.match(errors[0]!, /forgotten by an operator \(ledgernet cluster forget\) while it ran/);
  });

  it('keys of its log missing from the bucket (or changed there) on two beats in a row: one full publish, counted; not again for the same keys; conflicts follow the bucket', async () => {
    const kv = fakeKv();
    kv.watching = true;
    const warnings: string[] = [];
    hb = startHeartbeat({ kv, self: 'h1', timeoutMs: TIMEOUT, own: () => ({ members: [], endpoints: [] }), rewatch: () => undefined, log: { ...silent, warn: (_: object, m: string) => void warnings.push(m) }, now: () => clock });
    const publishes = () => kv.calls.filter((c) => c === 'syncOwn').length;
    await advance(3000, kv);
    assert.equal(publishes(), 1, 'the first full publish');
    kv.missing = ['members.blue.h1'];
    await advance(1000, kv);
    assert.equal(publishes(), 1, 'one beat may only be the watch lagging behind a write');
    await advance(1000, kv);
    assert.equal(publishes(), 2, 'the second beat finding it missing publishes');
    assert.equal(hb.stats().repaired, 1);
    assert.match(warnings.at(-1) ?? '', /the KV bucket lacks keys of this host's log/);
    await advance(3000, kv);
    assert.equal(publishes(), 2, 'still missing after the publish (it cannot be written back): not published on every beat');
    kv.missing = [];
    await advance(1000, kv);
    kv.missing = ['endpoints.blue.h1.abc'];
    await advance(2000, kv);
    assert.equal(publishes(), 3, 'other keys missing later: published again');
    assert.equal(hb.stats().repaired, 2);
    kv.missing = [];
    await advance(1000, kv);
    kv.changed = ['endpoints.blue.h1.abc'];
    await advance(1000, kv);
    assert.equal(publishes(), 3, 'a changed value seen once: the watch may lag behind a write');
    await advance(1000, kv);
    assert.equal(publishes(), 4, 'a key the bucket holds with another value on two beats: published again');
    assert.equal(hb.stats().repaired, 3);
    assert.match(warnings.at(-1) ?? '', /holds other values for them/);
    kv.changed = [];
    kv.drifted = ['cluster network blue: block 10.0.0.0/26 is …'];
    await advance(1000, kv);
    assert.deepEqual(hb.stats().conflicts, ['cluster network blue: block 10.0.0.0/26 is …']);
    kv.drifted = [];
    await advance(1000, kv);
    assert.deepEqual(hb.stats().conflicts, [], 'resolved: gone from the conflicts');
  });

  it('removes a host not heard of for the timeout, once; nobody while this host\'s own heartbeats do not come back', async () => {
    const kv = fakeKv();
    kv.watching = true;
    const rewatches: number[] = [];
    const h = start(kv, () => void rewatches.push(clock));
    h.seen({ host: 'h2', rev: 7, record: true });
    // No echo of its own heartbeats: nothing is removed, and the watch is restarted.
    await advance(10_000, kv, false);
    assert.deepEqual(kv.calls.filter((c) => c.startsWith('reap')), []);
    assert.ok(rewatches.length >= 1, 'the watch was restarted');
    // Echoes come back: after a whole timeout in touch, h2 goes, once.
    await advance(6000, kv);
    assert.deepEqual(kv.calls.filter((c) => c.startsWith('reap')), []);
    await advance(2000, kv);
    assert.deepEqual(kv.calls.filter((c) => c.startsWith('reap')), ['reap h2 7']);
    await advance(3000, kv);
    assert.deepEqual(kv.calls.filter((c) => c.startsWith('reap')), ['reap h2 7']);
  });

  it('its figures for the metrics: in touch, hosts heard, failed beats, hosts expired, networks retired', async () => {
    const kv = fakeKv();
    kv.watching = true;
    const h = start(kv);
    assert.deepEqual(h.stats(), { inTouch: false, hostsHeard: 0, failures: 0, expired: 0, retired: 0, repaired: 0, conflicts: [] });
    h.seen({ host: 'h2', rev: 7, record: true });
    h.seen({ host: 'h3', rev: 8, record: true });
    await advance(2000, kv);
    assert.deepEqual(h.stats(), { inTouch: true, hostsHeard: 2, failures: 0, expired: 0, retired: 0, repaired: 0, conflicts: [] });
    kv.beat = 'fail';
    kv.retire = ['blue'];
    kv.clash = ['cluster network red: …'];
    kv.drifted = kv.clash; // the bucket still holds it on the beats that follow
    await advance(1000, kv);
    await advance(1000, kv);
    assert.deepEqual(h.stats().conflicts, ['cluster network red: …'], 'what the publish found');
    assert.equal(h.stats().failures, 1);
    assert.equal(h.stats().retired, 1, 'the publish after the failure retired blue');
    // h3 keeps beating; h2 does not: after the timeout it is expired, and no longer heard.
    for (let i = 0; i < 8; i++) {
      h.seen({ host: 'h3', rev: 9 + i, record: true });
      await advance(1000, kv);
    }
    assert.deepEqual(kv.calls.filter((c) => c.startsWith('reap')), ['reap h2 7']);
    assert.deepEqual(h.stats(), { inTouch: true, hostsHeard: 1, failures: 1, expired: 1, retired: 1, repaired: 0, conflicts: ['cluster network red: …'] }, 'conflicts stay while the bucket holds them');
    // Its own heartbeats stop coming back: not in touch.
    await advance(4000, kv, false);
    assert.equal(h.stats().inTouch, false);
  });

  it('finding itself expired with no watch caught up (the bucket was made again): watches again at once, publishes once the watch has caught up', async () => {
    const kv = fakeKv();
    kv.watching = true;
    const rewatches: number[] = [];
    start(kv, () => void rewatches.push(clock));
    await advance(2000, kv);
    const published = kv.calls.filter((c) => c === 'syncOwn').length;
    kv.watching = false;
    kv.beat = 'expired';
    await advance(1000, kv, false);
    assert.equal(rewatches.length, 1, 'watched again at the expiry');
    assert.equal(kv.calls.filter((c) => c === 'syncOwn').length, published, 'not from what the old watch saw');
    kv.watching = true;
    await advance(1000, kv);
    assert.equal(kv.calls.filter((c) => c === 'syncOwn').length, published + 1);
  });

  it('an outage says what follows it: the bucket answers (keys written yet or waiting for the watch), the keys written again, the watch restarted', async () => {
    const kv = fakeKv();
    kv.watching = true;
    const infos: { o: object; m: string }[] = [];
    const rewatches: number[] = [];
    hb = startHeartbeat({
      kv,
      self: 'h1',
      timeoutMs: TIMEOUT,
      own: () => ({ members: ['blue'], endpoints: [{ cluster: 'blue', endpointId: 'e1', address: '10.0.0.2', mac: '02:00:00:00:00:01' }] }),
      rewatch: () => void rewatches.push(clock),
      log: { ...silent, info: (o: object, m: string) => void infos.push({ o, m }) },
      now: () => clock,
    });
    await advance(2000, kv);
    assert.equal(infos.length, 0, 'nothing to say while all is well');
    kv.beat = 'fail';
    await advance(1000, kv, false);
    // Back, but the watch has not caught up (it was restarted): the keys wait for it, and say so.
    kv.watching = false;
    await advance(1000, kv, false);
    assert.deepEqual(infos.map((i) => [i.m, i.o]), [['cluster: the KV bucket answers again; heartbeats resume', { watchCaughtUp: false, keysPending: true }]]);
    kv.watching = true;
    await advance(1000, kv);
    assert.deepEqual(infos.slice(1).map((i) => [i.m, i.o]), [["cluster: this host's member and endpoint keys written to the KV bucket again (heartbeats had failed: NATS unreachable, or not ready at start)", { endpoints: 1, networks: 1 }]]);
    await advance(3000, kv);
    assert.equal(infos.length, 2, 'said once');
    // Its own heartbeats stop coming back while writing them works: watched again, and said.
    await advance(5000, kv, false);
    assert.ok(rewatches.length >= 1);
    assert.match(infos.at(-1)?.m ?? '', /own heartbeats do not come back through its watch of the KV bucket; watching it again/);
  });

  it('the bucket bound again while it was there all along (JetStream not ready after a restart): its own heartbeats still come back, yet it watches again and then publishes', async () => {
    const kv = fakeKv();
    kv.watching = true;
    const rewatches: number[] = [];
    start(kv, () => void rewatches.push(clock));
    await advance(4000, kv);
    const published = kv.calls.filter((c) => c === 'syncOwn').length;
    // A beat fails and the bucket is bound again: a fresh mirror no watch feeds (kv.ts heartbeat).
    kv.beat = 'fail';
    await advance(1000, kv);
    kv.watching = false;
    kv.watchDetached = true;
    // The record is still there (beats are 'ok') and the old watch still echoes them: in touch.
    await advance(3000, kv);
    assert.equal(rewatches.length, 1, 'watched again although its heartbeats came back');
    await advance(3000, kv);
    assert.equal(rewatches.length, 2, 'while no new watch has started: again every three intervals, not on every beat');
    assert.equal(kv.calls.filter((c) => c === 'syncOwn').length, published, 'nothing published from an empty mirror');
    // The new watch starts and catches up: the keys are written.
    kv.watchDetached = false;
    kv.watching = true;
    await advance(1000, kv);
    assert.equal(kv.calls.filter((c) => c === 'syncOwn').length, published + 1);
  });
});
