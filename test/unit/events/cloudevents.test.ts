import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  cloudEventMessage,
  describeElided,
  describeEvent,
  elidedFromCloudEvent,
  fromCloudEvent,
  headerRoom,
  receivedEvent,
  hostFilter,
  hostToken,
  isSubjectOf,
  parseCloudEventType,
  subjectFor,
  toCloudEvent,
  type LedgernetCloudEvent,
} from '../../../src/events/audit/cloudevents.ts';
import { eventHash } from '../../../src/events/log/hash.ts';
import { ChainVerifier } from '../../../src/events/audit/verify-chain.ts';
import { GENESIS_HASH, type NewEvent } from '../../../src/events/domain/types.ts';
import { sampleHistory, stamp } from '../../helpers/chain.ts';
import { ADDRESS_HISTORY, NET_A } from '../../helpers/events.ts';

const wire = (ce: LedgernetCloudEvent): unknown => JSON.parse(JSON.stringify(ce));

describe('CloudEvents mapping', () => {
  it('maps a stored event to CloudEvents 1.0 with seq, prevhash and hash extensions', () => {
    const [ev] = sampleHistory();
    assert.ok(ev);
    assert.deepEqual(toCloudEvent(ev), {
      specversion: '1.0',
      id: 'host1:1',
      source: 'ledgernet://host1',
      type: 'io.ledgernet.network.created.v1',
      time: '2026-11-23T13:02:11.123Z',
      subject: `network/${NET_A}`,
      datacontenttype: 'application/json',
      data: ev.data,
      seq: 1,
      prevhash: GENESIS_HASH,
      hash: ev.hash,
    });
  });

  it('names types and subjects as DESIGN.md says', () => {
    const programmed = sampleHistory()[3];
    assert.ok(programmed);
    assert.equal(toCloudEvent(programmed).type, 'io.ledgernet.endpoint.external.programmed.v2');
    assert.deepEqual(parseCloudEventType('io.ledgernet.endpoint.external.programmed.v1'), { type: 'endpoint.external.programmed', v: 1 });
    assert.equal(parseCloudEventType('io.ledgernet.bogus.made.v1'), null);
    assert.equal(subjectFor('host1', 'endpoint.joined'), 'ledgernet.host1.events.endpoint.joined');
    assert.equal(subjectFor('ci.example.com', 'network.created'), 'ledgernet.ci_2eexample_2ecom.events.network.created');
    assert.equal(hostFilter('h'), 'ledgernet.h.events.>');
    assert.equal(hostFilter(), 'ledgernet.*.events.>');
    const rec = stamp('h', [{ type: 'reconcile.applied', data: { trigger: 'timer', actions: [], failures: [] } }])[0];
    assert.ok(rec);
    assert.equal(toCloudEvent(rec).subject, 'reconciler');
  });

  it('is lossless: the stored event is rebuilt from the wire JSON and its hash recomputes', () => {
    for (const ev of sampleHistory('ci.example.com')) {
      const back = fromCloudEvent(wire(toCloudEvent(ev)));
      assert.deepEqual(back, ev);
      assert.equal(eventHash(back as typeof ev), ev.hash);
    }
  });

  it('says why a message is not a ledgernet CloudEvent', () => {
    assert.equal(fromCloudEvent('hello'), 'not a JSON object');
    assert.equal(fromCloudEvent({ specversion: '0.3' }), 'specversion is not 1.0');
    const ce = wire(toCloudEvent(sampleHistory()[0]!)) as Record<string, unknown>;
    assert.match(String(fromCloudEvent({ ...ce, type: 'com.example.x' })), /not a ledgernet event type/);
    assert.match(String(fromCloudEvent({ ...ce, seq: '1' })), /seq/);
  });

  it('prints one readable line per event', () => {
    const lines = sampleHistory().map((e) => describeEvent(e));
    assert.equal(lines[0], '2026-11-23T13:02:11Z host1 network aaaaaaaa0000 created 10.231.7.0/24');
    assert.equal(lines[1], '2026-11-23T13:02:12Z host1 endpoint e1e1e1e12222 created on network aaaaaaaa0000 10.231.7.2/24');
    assert.equal(lines[3], '2026-11-23T13:02:14Z host1 endpoint e1e1e1e12222 ports programmed 8080->80/tcp');
    assert.equal(lines[5], '2026-11-23T13:02:16Z host1 network aaaaaaaa0000 deleted');
  });

  it("labels ids with Docker's names it was given", () => {
    const names = new Map([['a'.repeat(8) + '0'.repeat(56), 'web'], ['e1'.repeat(4) + '2'.repeat(56), 'web-1']]);
    const lines = sampleHistory().map((e) => describeEvent(e, names));
    assert.equal(lines[1], '2026-11-23T13:02:12Z host1 endpoint e1e1e1e12222(web-1) created on network aaaaaaaa0000(web) 10.231.7.2/24');
    assert.equal(lines[5], '2026-11-23T13:02:16Z host1 network aaaaaaaa0000(web) deleted');
  });
});

describe('the message of an event (cloudEventMessage)', () => {
  const ev = sampleHistory()[0]!;
  const whole = JSON.stringify(toCloudEvent(ev));

  it('is the CloudEvent as JSON while it fits the limit (with room for the headers)', () => {
    const m = cloudEventMessage(ev, Buffer.byteLength(whole) + headerRoom(ev.id));
    assert.equal(m.elided, null);
    assert.equal(m.body, whole);
    assert.deepEqual(fromCloudEvent(JSON.parse(m.body)), ev);
  });

  it('leaves the data out when it does not fit, naming its size; the rest of the envelope is kept', () => {
    const m = cloudEventMessage(ev, Buffer.byteLength(whole) + headerRoom(ev.id) - 1);
    const dataBytes = Buffer.byteLength(JSON.stringify(ev.data));
    assert.equal(m.elided, dataBytes);
    const got = JSON.parse(m.body) as Record<string, unknown>;
    assert.equal(got['data'], undefined);
    assert.equal(got['datacontenttype'], undefined);
    assert.equal(got['dataelided'], dataBytes);
    const { data: _d, ...envelope } = ev;
    assert.deepEqual(elidedFromCloudEvent(got), { ...envelope, elided: dataBytes });
    assert.equal(elidedFromCloudEvent(JSON.parse(whole)), null, 'a whole event is not elided');
    assert.match(fromCloudEvent(got) as string, /its data was left out/);
    assert.match(describeElided(elidedFromCloudEvent(got) as Exclude<ReturnType<typeof elidedFromCloudEvent>, string | null>), /^\S+ host1 network\.created host1:1: published without its data \(\d+ bytes, over the stream's message limit\); `ledgernet events --since 1` on host1 shows it/);
  });

  it('an event without its data keeps the ids its subject names (network, endpoint, pool with slashes, address, cluster host), so filters find it', () => {
    const events = stamp('host1', [
      ...ADDRESS_HISTORY.events(),
      { type: 'pool.requested', data: { poolId: 'ledgernet/10.99.0.0/24', pool: '10.99.0.0/24', subPool: null, v6: false, auto: false } },
      { type: 'address.requested', data: { poolId: 'ledgernet/10.99.0.0/24', address: '10.99.0.5', kind: 'dynamic', auto: true, name: null } },
      { type: 'address.released', data: { poolId: 'ledgernet/10.99.0.0/24', address: '10.99.0.5' } },
      { type: 'peer.endpoint.added', data: { cluster: 'blue', host: 'h2', networkId: NET_A, endpointId: 'ab'.repeat(32), address: '10.240.0.9', mac: '02:42:0a:f0:00:09', vtep: '192.0.2.2' } } as NewEvent,
    ]);
    let seen = 0;
    for (const ev of events) {
      const got = receivedEvent(JSON.parse(cloudEventMessage(ev, 0).body));
      assert.ok(typeof got !== 'string' && 'elided' in got, `${ev.type} is received as elided`);
      const subject = toCloudEvent(ev).subject;
      for (const [k, v] of Object.entries(got.data as Record<string, string>)) {
        assert.equal(v, (ev.data as Record<string, unknown>)[k], `${ev.type}: ${k} from ${subject}`);
        seen += 1;
      }
      if (subject.startsWith('pool/')) assert.equal((got.data as { poolId?: string }).poolId, (ev.data as { poolId: string }).poolId, subject);
      if (subject.includes('/endpoint/')) assert.equal((got.data as { endpointId?: string }).endpointId, (ev.data as { endpointId: string }).endpointId, subject);
    }
    assert.ok(seen > events.length, `${seen} ids for ${events.length} events`);
  });

  it('counts UTF-8 bytes, not characters: a name of multi-byte characters near the limit is left out', () => {
    const named = stamp('host1', [{ type: 'network.named', data: { networkId: NET_A, name: 'ü'.repeat(400) } }])[0]!;
    const body = JSON.stringify(toCloudEvent(named));
    assert.ok(Buffer.byteLength(body) - body.length === 400);
    assert.equal(cloudEventMessage(named, body.length + headerRoom(named.id) + 10).elided, Buffer.byteLength(JSON.stringify(named.data)));
    assert.equal(cloudEventMessage(named, Buffer.byteLength(body) + headerRoom(named.id)).elided, null);
  });
});

describe('ChainVerifier', () => {
  const ces = (host = 'host1') => sampleHistory(host).map((e) => wire(toCloudEvent(e)) as Record<string, unknown>);
  const run = (msgs: unknown[], v = new ChainVerifier()) => {
    for (const [i, m] of msgs.entries()) {
      const p = v.push(m, `stream seq ${i + 1}`);
      if (p) return p;
    }
    return null;
  };

  it('accepts complete chains of several hosts, interleaved', () => {
    const a = ces('a');
    const b = ces('b');
    const v = new ChainVerifier();
    assert.equal(run(a.flatMap((m, i) => [m, b[i]]), v), null);
    assert.equal(v.events, 12);
    assert.equal(v.hosts, 2);
  });

  it('names a removed event as a gap', () => {
    const msgs = ces();
    msgs.splice(2, 1);
    assert.deepEqual(run(msgs), { kind: 'gap', message: 'gap: host1:3 is missing before event host1:4 (stream seq 3)' });
    assert.equal(run(ces().slice(2))?.kind, 'gap', 'the first events are missing');
  });

  it('names a duplicate', () => {
    const msgs = ces();
    msgs.splice(3, 0, msgs[1] as Record<string, unknown>);
    const p = run(msgs);
    assert.equal(p?.kind, 'duplicate');
    assert.match(p?.message ?? '', /event host1:2 \(stream seq 4\) is a duplicate/);
  });

  it('names an altered event: data changed, hash kept', () => {
    const msgs = ces();
    msgs[0] = { ...msgs[0], data: { ...(msgs[0]!['data'] as object), mtu: 9000 } };
    assert.deepEqual(run(msgs), { kind: 'altered', message: 'event host1:1 (stream seq 1) was altered: its content does not match its hash' });
  });

  it('takes an event published without its data (over the message limit) as linking the chain, counts and names it; its hash must still link', () => {
    const all = sampleHistory();
    const slim = (i: number) => wire(cloudEventMessage(all[i]!, 300).event) as Record<string, unknown>;
    const msgs = ces();
    msgs[1] = slim(1);
    assert.equal('data' in msgs[1]!, false);
    const v = new ChainVerifier();
    assert.equal(run(msgs, v), null);
    assert.equal(v.events, 6);
    assert.deepEqual(v.elided, ['host1:2']);
    // Its hash is not checked against content it does not carry, but a forged one breaks the next link.
    const forged = ces();
    forged[1] = { ...slim(1), hash: 'f'.repeat(64) };
    assert.equal(run(forged)?.kind, 'broken-link');
    // A malformed size is not an event.
    const bad = ces();
    bad[1] = { ...slim(1), dataelided: 'big' };
    assert.equal(run(bad)?.kind, 'malformed');
    assert.match(run(bad)?.message ?? '', /dataelided is not a byte count/);
  });

  it('names a replaced event: rehashed, but the next one does not link to it', () => {
    const orig = sampleHistory();
    const forged = stamp('host1', [{ type: 'network.deleted', data: { networkId: NET_A } }], { seq: 1, hash: orig[0]!.hash });
    const msgs = ces();
    msgs[1] = wire(toCloudEvent(forged[0]!)) as Record<string, unknown>;
    const p = run(msgs);
    assert.equal(p?.kind, 'broken-link');
    assert.match(p?.message ?? '', /event host1:3 \(stream seq 3\) does not link to host1:2/);
  });

  it('starts anywhere with firstSeq null (--since TIME), at a given seq otherwise', () => {
    assert.equal(run(ces().slice(3), new ChainVerifier({ firstSeq: null })), null);
    assert.equal(run(ces().slice(3), new ChainVerifier({ firstSeq: 4 })), null);
    assert.equal(run(['not json'])?.kind, 'malformed');
  });

  it('names an event on another host\'s subject (the subject the publisher uses, or the one before the escape)', () => {
    const v = new ChainVerifier();
    const [e1, e2] = sampleHistory('web_1');
    assert.equal(v.push(wire(toCloudEvent(e1!)), 'stream seq 1', 'ledgernet.web_5f1.events.network.created'), null);
    const p = v.push(wire(toCloudEvent(e2!)), 'stream seq 2', 'ledgernet.web_2e1.events.endpoint.created');
    assert.equal(p?.kind, 'misfiled');
    assert.equal(p?.message, 'event web_1:2 (stream seq 2) of host web_1 is on subject ledgernet.web_2e1.events.endpoint.created, not ledgernet.web_5f1.events.endpoint.created');
    const old = new ChainVerifier();
    assert.equal(old.push(wire(toCloudEvent(sampleHistory('web.1')[0]!)), 'stream seq 1', 'ledgernet.web_1.events.network.created'), null, 'the old lossy subject');
  });

  it('a host upgraded from before the escape: its history split across both subjects, or published again on the new one, is one history', () => {
    const all = sampleHistory('web.1');
    const oldSubject = (e: (typeof all)[number]) => `ledgernet.web_1.events.${e.type}`;
    const push = (v: ChainVerifier, e: (typeof all)[number], subject: string, i: number) => v.push(wire(toCloudEvent(e)), `stream seq ${i}`, subject);
    // Split: 1-4 on the old subject, 5-6 on the new one.
    const split = new ChainVerifier();
    for (const [i, e] of all.entries()) assert.equal(push(split, e, i < 4 ? oldSubject(e) : subjectFor('web.1', e.type), i + 1), null);
    assert.equal(split.events, 6);
    // Published again from the first (an upgrade that did not look under the old subject): a copy, not counted.
    const again = new ChainVerifier();
    let at = 0;
    for (const e of all.slice(0, 4)) assert.equal(push(again, e, oldSubject(e), ++at), null);
    for (const e of all) assert.equal(push(again, e, subjectFor('web.1', e.type), ++at), null, `copy of ${e.id}`);
    assert.equal(again.events, 6, 'each event counted once');
    assert.equal(again.hosts, 1);
    // After the copy the host goes on on the new subject: an event again is a duplicate.
    assert.equal(push(again, all[2]!, subjectFor('web.1', all[2]!.type), ++at)?.kind, 'duplicate');
    // A copy that is not the same history is not accepted.
    const other = stamp('web.1', all.map((e) => ({ type: e.type, data: e.data }) as NewEvent).reverse());
    const differs = new ChainVerifier();
    at = 0;
    for (const e of all.slice(0, 4)) assert.equal(push(differs, e, oldSubject(e), ++at), null);
    const problems = other.slice(0, 4).map((e) => push(differs, e, subjectFor('web.1', e.type), ++at));
    assert.deepEqual(problems.slice(0, 3), [null, null, null]);
    assert.equal(problems[3]?.kind, 'duplicate');
    assert.match(problems[3]?.message ?? '', /event web\.1:4 \(stream seq 8\) is a duplicate: web\.1 was already at seq 4, on the subject of before the escape, with another event/);
    // Not from the first event: a duplicate, as before.
    const partial = new ChainVerifier();
    at = 0;
    for (const e of all.slice(0, 4)) assert.equal(push(partial, e, oldSubject(e), ++at), null);
    assert.equal(push(partial, all[1]!, subjectFor('web.1', all[1]!.type), ++at)?.kind, 'duplicate');
  });
});

/** The inverse of hostToken (what docs/events.md tells observers to do), or null for a token it never makes. */
function hostFromToken(token: string): string | null {
  if (token === '_') return '';
  if (!/^(?:[A-Za-z0-9-]|_[0-9a-f]{2})+$/.test(token)) return null;
  const bytes = token.match(/_[0-9a-f]{2}|[^_]/g)!.map((t) => (t.length === 3 ? parseInt(t.slice(1), 16) : t.charCodeAt(0)));
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(new Uint8Array(bytes));
  } catch {
    return null;
  }
}

// A NATS subject token: not empty, no `.` (separator), no `*` or `>` (wildcards), no whitespace;
// the escape keeps to the recommended alphabet.
const VALID_TOKEN = /^[A-Za-z0-9_-]+$/;

describe('host name → subject token', () => {
  const hosts = fc.oneof(
    fc.string({ unit: fc.constantFrom('w', 'e', 'b', '1', '.', '_', '-', '*', '>', ' ', '%', 'é', '😀') }),
    fc.string({ unit: 'grapheme' }),
    fc.string({ unit: 'binary-ascii' }),
  );

  it('keeps names with nothing to escape, escapes `_` and everything outside A-Za-z0-9-', () => {
    assert.equal(hostToken('host1'), 'host1');
    assert.equal(hostToken('web-01-EU'), 'web-01-EU');
    assert.equal(hostToken('web.1'), 'web_2e1');
    assert.equal(hostToken('web_1'), 'web_5f1');
    assert.equal(hostToken('a*b>c d'), 'a_2ab_3ec_20d');
    assert.equal(hostToken('köln'), 'k_c3_b6ln');
    assert.equal(hostToken(''), '_');
    assert.throws(() => hostToken('a\ud800'), /not valid Unicode/);
  });

  it('is one-to-one and always a valid subject token (property)', () => {
    fc.assert(
      fc.property(hosts, (h) => {
        const t = hostToken(h);
        assert.match(t, VALID_TOKEN);
        assert.equal(hostFromToken(t), h);
      }),
      { numRuns: 5000 },
    );
    fc.assert(
      fc.property(hosts, hosts, (a, b) => {
        fc.pre(a !== b);
        assert.notEqual(hostToken(a), hostToken(b));
      }),
      { numRuns: 5000 },
    );
  });

  it('knows whose subject is whose, in streams written before the escape too', () => {
    assert.ok(isSubjectOf('ledgernet.web_2e1.events.network.created', 'web.1', 'network.created'));
    assert.ok(isSubjectOf('ledgernet.web_1.events.network.created', 'web.1', 'network.created'), 'the old subject');
    assert.ok(!isSubjectOf('ledgernet.web_2e1.events.network.created', 'web_1', 'network.created'));
    assert.ok(!isSubjectOf('ledgernet.web_2e1.events.network.deleted', 'web.1', 'network.created'));
  });
});
