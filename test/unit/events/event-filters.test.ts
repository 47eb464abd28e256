// `events --container/--address` (src/operator/event-filters.ts): the pure selection over events.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NewEvent, StoredEvent } from '../../../src/events/domain/types.ts';
import { EndpointFacts, eventFilter, FOLLOW_HOLD_MAX, FOLLOW_HOLD_MS, FollowFilter, parseSince } from '../../../src/events/domain/event-filters.ts';
import { ADDRESS_HISTORY, EP_1, EP_2, NET_A, endpointSpec, stamp } from '../../helpers/events.ts';
import { emptyState } from '../../../src/events/domain/types.ts';

const PEER = 'fe'.repeat(32);

describe('eventFilter', () => {
  const events = stamp(
    [
      { type: 'endpoint.created', data: { ...endpointSpec(NET_A, EP_1, '10.231.7.2/24'), addressV6: 'fd00:231:0:0::2/64' } },
      { type: 'endpoint.created', data: endpointSpec(NET_A, EP_2, '10.231.7.3/24') },
      { type: 'peer.endpoint.added', data: { cluster: 'sage', host: 'h2', vtep: '192.0.2.2', endpointId: PEER, address: '10.242.0.66', mac: '02:42:0a:f2:00:42' } },
      { type: 'peer.endpoint.removed', data: { cluster: 'sage', host: 'h2', endpointId: PEER } },
    ] as NewEvent[],
    emptyState,
  );
  const facts = new EndpointFacts().add(events);
  const pick = (q: Parameters<typeof eventFilter>[0]) => events.filter((e) => eventFilter(q)(e, new Map(), facts)).map((e) => e.seq);

  it('an IPv6 address in any form matches the endpoint that had it', () => {
    assert.deepEqual(pick({ address: 'fd00:231::2' }), [1]);
    assert.deepEqual(pick({ address: 'FD00:0231:0000::0002/64' }), [1]);
  });

  it("a cluster peer's endpoint: its added and removed events", () => {
    assert.deepEqual(pick({ address: '10.242.0.66' }), [3, 4]);
  });

  it('no endpoint had it: nothing; a container never named: nothing', () => {
    assert.deepEqual(pick({ address: '10.231.7.9' }), []);
    assert.deepEqual(pick({ container: 'web-1' }), []);
  });

  it('refuses what cannot match anything', () => {
    assert.throws(() => eventFilter({ address: 'web-1' }), /--address "web-1" is not an IPv4 or IPv6 address/);
    assert.throws(() => eventFilter({ network: '' }), /--network needs a network id/);
  });
});

describe('FollowFilter (--follow with filters)', () => {
  // web's history: 1 network.created, 2 network.named web, 3 EP a created, 4 joined, 5 named web-1,
  // 6 deleted, 7 EP b created, 8 named job-7 (test/helpers/events.ts).
  const history = stamp(ADDRESS_HISTORY.events(), emptyState);
  const at = (e: StoredEvent, ms: number): StoredEvent => ({ ...e, at: new Date(Date.parse(e.at) + ms).toISOString() });
  const follower = (q: Parameters<typeof eventFilter>[0]) => {
    const f = new FollowFilter<number>(eventFilter(q), new Map(), new EndpointFacts());
    return (...batch: StoredEvent[]) => f.take(batch.map((e) => ({ e, item: e.seq })));
  };

  it("an endpoint's lines before its container was named are shown when the naming comes, once, before it", () => {
    const take = follower({ container: 'web-1' });
    assert.deepEqual(take(...history.slice(0, 2)), []);
    assert.deepEqual(take(...history.slice(2, 4)), [], 'not named yet: nothing to show');
    assert.deepEqual(take(history[4]!), [3, 4, 5]);
    assert.deepEqual(take(history[5]!), [6]);
    assert.deepEqual(take(...history.slice(6)), [], "job-7's endpoint is not web-1's; nothing shown twice");
  });

  it('a first reading in parts (first, with the names and facts of all of it) shows and keeps what one take of it would', () => {
    // Read whole: history up to web-1's Join (3, 4 kept: not named yet), then its naming comes.
    // Another endpoint's lines 20 ms later, and a line a minute older than the newest, not kept.
    const first = [at(history[0]!, -FOLLOW_HOLD_MS - 1), ...history.slice(1, 4)];
    const later = history.slice(4);
    for (const q of [{ container: 'web-1' }, { network: 'web' }, { address: '10.231.79.2' }]) {
      const whole = new FollowFilter<number>(eventFilter(q), new Map(), new EndpointFacts());
      const want = [whole.take(first.map((e) => ({ e, item: e.seq }))), whole.take(later.map((e) => ({ e, item: e.seq })))];
      const names = new Map<string, string>();
      const facts = new EndpointFacts().add(first);
      for (const e of first) if (e.type === 'network.named') names.set(e.data.networkId, e.data.name);
      const parted = new FollowFilter<number>(eventFilter(q), names, facts);
      const newest = Date.parse(first.at(-1)!.at);
      const shown = [...parted.first(first.slice(0, 2).map((e) => ({ e, item: e.seq })), newest), ...parted.first(first.slice(2).map((e) => ({ e, item: e.seq })), newest)];
      assert.deepEqual([shown, parted.take(later.map((e) => ({ e, item: e.seq })))], want, JSON.stringify(q));
    }
  });

  it("a network's lines before its name came, for --network NAME", () => {
    const take = follower({ network: 'web' });
    assert.deepEqual(take(history[0]!), []);
    assert.deepEqual(take(history[1]!), [1, 2]);
    assert.deepEqual(take(history[2]!), [3]);
  });

  it('lines kept longer than FOLLOW_HOLD_MS (by their own time) before the naming are not shown late', () => {
    const take = follower({ container: 'web-1' });
    take(...history.slice(0, 3));
    take(at(history[3]!, FOLLOW_HOLD_MS - 1_000));
    assert.deepEqual(take(at(history[4]!, FOLLOW_HOLD_MS + 10)), [4, 5], 'the created line (older than the hold) is gone, the joined one is shown');
  });

  it('in one batch (the first read of the log): as a read of the whole log selects them', () => {
    assert.deepEqual(follower({ container: 'job-7' })(...history), [7, 8]);
    assert.deepEqual(follower({ address: '10.231.79.2' })(...history), [3, 4, 5, 6, 7, 8]);
  });

  it(`keeps at most FOLLOW_HOLD_MAX lines, the oldest endpoints' going first`, () => {
    const take = follower({ container: 'c' });
    const ids = Array.from({ length: FOLLOW_HOLD_MAX + 500 }, (_, i) => i.toString(16).padStart(64, '0'));
    const created = stamp(ids.map((id) => ({ type: 'endpoint.created', data: endpointSpec(NET_A, id, '10.231.7.2/24') }) as NewEvent), emptyState);
    assert.deepEqual(take(...created), []);
    const named = (id: string, seq: number) => ({ ...created[0]!, seq, type: 'endpoint.named', data: { networkId: NET_A, endpointId: id, containerId: 'cc'.repeat(32), name: 'c' } }) as StoredEvent;
    const last = created.length;
    assert.deepEqual(take(named(ids[0]!, last + 1)), [last + 1], "the first endpoint's line was let go");
    assert.deepEqual(take(named(ids.at(-1)!, last + 2)), [last, last + 2], "the last one's is shown when it is named");
  });

  it('a first reading in parts keeps at most FOLLOW_HOLD_MAX lines after each part, not all of its last minute', () => {
    // A log whose last minute holds more lines than that (events --follow on a busy host's log
    // held 400,000 of them, 440 MB, until its first look for new events).
    const ids = Array.from({ length: FOLLOW_HOLD_MAX + 500 }, (_, i) => i.toString(16).padStart(64, '0'));
    const created = stamp(ids.map((id) => ({ type: 'endpoint.created', data: endpointSpec(NET_A, id, '10.231.7.2/24') }) as NewEvent), emptyState);
    const f = new FollowFilter<number>(eventFilter({ container: 'c' }), new Map(), new EndpointFacts().add(created));
    const newest = Date.parse(created.at(-1)!.at);
    for (let i = 0; i < created.length; i += 1_000) {
      assert.deepEqual(f.first(created.slice(i, i + 1_000).map((e) => ({ e, item: e.seq })), newest), []);
      assert.ok(f.holding <= FOLLOW_HOLD_MAX, `${f.holding} lines kept after ${i + 1_000} read`);
    }
    const named = { ...created[0]!, seq: created.length + 1, type: 'endpoint.named', data: { networkId: NET_A, endpointId: ids.at(-1)!, containerId: 'cc'.repeat(32), name: 'c' } } as StoredEvent;
    assert.deepEqual(f.take([{ e: named, item: named.seq }]), [created.length, created.length + 1], "the last endpoint's line is still shown when it is named");
  });
});

describe('parseSince', () => {
  it('a seq, or a time that starts with its date; what Date.parse took as a day of 2001 is refused by name', () => {
    assert.deepEqual(parseSince('120'), { seq: 120 });
    assert.deepEqual(parseSince('2026-11-23T13:00:00Z'), { time: '2026-11-23T13:00:00.000Z' });
    assert.deepEqual(parseSince('2026-11-23'), { time: '2026-11-23T00:00:00.000Z' });
    assert.equal(parseSince(undefined), null);
    for (const bad of ['10.5', ' 12', '-5', '+3', 'x 1', '', '0x10', '1e3']) {
      assert.throws(() => parseSince(bad), (e: Error) => e.message === `--since must be a seq (e.g. 120) or a time (e.g. 2026-11-23T13:00:00Z), got ${bad}`, JSON.stringify(bad));
    }
  });

  it('a time without a zone is UTC, as a date alone and every printed time are, whatever the local zone', () => {
    const tz = process.env['TZ'];
    process.env['TZ'] = 'America/New_York'; // Node applies a change of TZ at once
    try {
      assert.deepEqual(parseSince('2026-12-06T12:17:05'), { time: '2026-12-06T12:17:05.000Z' });
      assert.deepEqual(parseSince('2026-12-06 12:17'), { time: '2026-12-06T12:17:00.000Z' });
      assert.deepEqual(parseSince('2026-12-06T12:17:05.250'), { time: '2026-12-06T12:17:05.250Z' });
      assert.deepEqual(parseSince('2026-12-06'), { time: '2026-12-06T00:00:00.000Z' });
      assert.deepEqual(parseSince('2026-12-06T12:17:05+01:00'), { time: '2026-12-06T11:17:05.000Z' }, 'a zone named is kept');
      assert.deepEqual(parseSince('2026-12-06T12:17:05-0500'), { time: '2026-12-06T17:17:05.000Z' });
    } finally {
      if (tz === undefined) delete process.env['TZ'];
      else process.env['TZ'] = tz;
    }
  });
});
