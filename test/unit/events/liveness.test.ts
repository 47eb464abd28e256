// Which hosts a host expires, on its own clock: only hosts not heard of for the timeout, and only
// while its own heartbeats come back through its watch and have done so for a whole timeout (so a
// NATS outage, a stuck watch or this process being stopped expires nobody).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HostLiveness } from '../../../src/events/cluster/liveness.ts';

const TIMEOUT = 6000;
const INTERVAL = 1000;

/** A liveness of h1 that saw its own heartbeat every second from 0 to `until`, and h2 and h3's records at 0. */
function running(until: number): HostLiveness {
  const l = new HostLiveness({ self: 'h1', timeoutMs: TIMEOUT, intervalMs: INTERVAL });
  l.record('h2', 5, 0);
  l.record('h3', 7, 0);
  for (let t = 0; t <= until; t += INTERVAL) l.record('h1', 100 + t, t);
  return l;
}

describe('host liveness', () => {
  it('a host not heard of for the timeout is expired, with the revision of its record as seen; one that beats is not', () => {
    const l = running(10_000);
    for (let t = 0; t <= 10_000; t += INTERVAL) l.record('h2', 5 + t, t);
    assert.deepEqual(l.expired(6000), []);
    assert.deepEqual(l.expired(6001), [{ host: 'h3', rev: 7 }]);
    assert.deepEqual(l.expired(10_000), [{ host: 'h3', rev: 7 }]);
  });

  it('nobody is expired while this host\'s own heartbeats do not come back (NATS down, watch stuck)', () => {
    const l = running(3000);
    // Own echoes stop at 3 s: from 6 s on (three intervals later) this host is out of touch.
    assert.equal(l.inTouch(6000), true);
    assert.equal(l.inTouch(6001), false);
    assert.deepEqual(l.expired(30_000), []);
  });

  it('after an outage every host gets a whole timeout again, counted from when this host is back in touch', () => {
    const l = running(3000);
    for (let t = 20_000; t <= 40_000; t += INTERVAL) l.record('h1', t, t);
    assert.deepEqual(l.expired(26_000), [], 'back in touch at 20 s: nobody before 26 s');
    assert.deepEqual(l.expired(26_001).map((e) => e.host), ['h2', 'h3']);
  });

  it('lostTouch (the watch restarted, the process was stopped): nobody is judged until its own heartbeats come back for a timeout', () => {
    const l = running(10_000);
    l.lostTouch();
    assert.deepEqual(l.expired(10_000), []);
    for (let t = 11_000; t <= 20_000; t += INTERVAL) l.record('h1', t, t);
    assert.deepEqual(l.expired(17_000), []);
    assert.deepEqual(l.expired(17_001).map((e) => e.host), ['h2', 'h3']);
  });

  it('a deleted record (another host expired it) and a host with keys but no record: judged with rev null; forgotten after removal', () => {
    const l = running(20_000);
    l.record('h2', null, 10_000);
    l.keys('h4', 12_000);
    l.keys('h3', 12_000); // h3 has a record: keys do not reset its clock
    assert.deepEqual(l.expired(16_001), [{ host: 'h2', rev: null }, { host: 'h3', rev: 7 }]);
    assert.deepEqual(l.expired(18_001), [{ host: 'h2', rev: null }, { host: 'h3', rev: 7 }, { host: 'h4', rev: null }]);
    l.forget('h3', 8); // a newer record was seen meanwhile: kept
    l.forget('h2', null);
    assert.deepEqual(l.expired(18_001).map((e) => e.host), ['h3', 'h4']);
    l.forget('h3', 7);
    assert.deepEqual(l.expired(18_001).map((e) => e.host), ['h4']);
  });

  it('a host whose record says it beats less often (a longer --cluster-host-timeout) is given 3 of its intervals; one without says nothing, the own timeout', () => {
    const l = running(50_000);
    l.record('h2', 9, 10_000, 5000); // beats every 5 s (timeout 30 s): 15 s
    l.record('h3', 11, 10_000, 500); // beats more often than this host: still the own timeout
    l.record('h4', 13, 10_000);
    assert.deepEqual(l.expired(16_001).map((e) => e.host), ['h3', 'h4']);
    assert.equal(l.heard(24_000), 1);
    assert.deepEqual(l.expired(25_000).map((e) => e.host), ['h3', 'h4']);
    assert.deepEqual(l.expired(25_001).map((e) => e.host), ['h2', 'h3', 'h4']);
    l.record('h2', null, 30_000); // deleted: its interval is still the one known
    assert.deepEqual(l.expired(44_000).map((e) => e.host), ['h3', 'h4']);
    assert.deepEqual(l.expired(45_001).map((e) => e.host), ['h2', 'h3', 'h4']);
  });

  it('a host back with a new record is alive again', () => {
    const l = running(20_000);
    l.record('h3', 50, 15_000);
    assert.deepEqual(l.expired(20_000).map((e) => e.host), ['h2']);
  });
});
