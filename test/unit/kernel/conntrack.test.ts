// The ctnetlink dump (kernel/conntrack.ts) read from a real capture (fixtures/netlink/ct-dump.hex,
// with `conntrack -L` of the same moment), and which entries each flush picks.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { flushMatches, parseConntrackEntry, tupleAddress, type ConntrackEntry, type ConntrackTuple } from '../../../src/kernel/conntrack.ts';
import { find } from '../../../src/kernel/netlink-attrs.ts';
import { readFixtureLines } from '../../helpers/fixtures.ts';

const entries = (): ConntrackEntry[] =>
  readFixtureLines('netlink/ct-dump.hex').map((line) => {
    const b = Buffer.from(line.split(' ')[1] ?? '', 'hex');
    const e = parseConntrackEntry({ type: b.readUInt16LE(0), payload: b.subarray(2) });
    assert.ok(e, line);
    return e;
  });

const PROTO: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, sctp: 132 };
const text = (t: ConntrackTuple) => `${t.src} ${t.dst} ${t.proto} ${t.sport ?? '-'} ${t.dport ?? '-'}`;

/** `conntrack -L`'s lines as the same text: both tuples, IPv6 expanded as the parser spells it. */
function listed(): string[] {
  return readFixtureLines('netlink/ct-dump.conntrack.txt').map((line) => {
    const proto = PROTO[line.split(/\s+/)[0] ?? ''] ?? -1;
    const v = (k: string, i: number) => [...line.matchAll(new RegExp(`\\b${k}=(\\S+)`, 'g'))][i]?.[1];
    const tuple = (i: number) => `${tupleAddress(v('src', i) ?? '')} ${tupleAddress(v('dst', i) ?? '')} ${proto} ${v('sport', i) ?? '-'} ${v('dport', i) ?? '-'}`;
    return `${tuple(0)} | ${tuple(1)}`;
  });
}

describe('a ctnetlink dump', () => {
  it('reads both tuples of every entry, both families, as conntrack -L lists them', () => {
    const got = entries().map((e) => `${text(e.orig)} | ${e.reply ? text(e.reply) : ''}`);
    assert.deepEqual(got.sort(), listed().sort());
    assert.deepEqual(entries().map((e) => e.family).sort((a, b) => a - b), [2, 2, 2, 2, 2, 10]);
  });

  it('deletes an entry by its original tuple as sent, its id, and its zone', () => {
    for (const e of entries()) {
      const body = e.deleteBody;
      assert.equal(body[0], e.family);
      assert.ok(find(body, 4, body.length, 1) >= 0, 'CTA_TUPLE_ORIG');
      assert.ok(find(body, 4, body.length, 12) >= 0, 'CTA_ID');
      assert.equal(find(body, 4, body.length, 2), -1, 'no reply tuple');
    }
    const zoned = entries().filter((e) => find(e.deleteBody, 4, e.deleteBody.length, 18) >= 0);
    assert.deepEqual(zoned.map((e) => e.orig.dport), [6000], 'only the zone 5 entry carries CTA_ZONE');
  });

  it('is no entry when another message comes', () => {
    assert.equal(parseConntrackEntry({ type: 3, payload: Buffer.alloc(4) }), null);
    assert.equal(parseConntrackEntry({ type: 0x0100, payload: Buffer.alloc(4) }), null, 'a NEW without tuples');
  });
});

describe('which entries a flush picks', () => {
  const picked = (f: Parameters<typeof flushMatches>[1]) => entries().filter((e) => flushMatches(e, f)).map((e) => text(e.orig)).sort();

  it('by port: the protocol and original destination port, on any host address or the one given', () => {
    assert.deepEqual(picked({ kind: 'port', proto: 'udp', port: 5000 }), [
      '10.99.250.2 10.99.250.1 17 40000 5000',
      'fd00:0099:0000:0000:0000:0000:0000:0002 fd00:0099:0000:0000:0000:0000:0000:0001 17 40000 5000',
    ]);
    assert.deepEqual(picked({ kind: 'port', proto: 'udp', port: 5000, hostIp: '10.99.250.1' }), ['10.99.250.2 10.99.250.1 17 40000 5000']);
    assert.deepEqual(picked({ kind: 'port', proto: 'udp', port: 5000, hostIp: 'fd00:99::1' }), [
      'fd00:0099:0000:0000:0000:0000:0000:0002 fd00:0099:0000:0000:0000:0000:0000:0001 17 40000 5000',
    ]);
    assert.deepEqual(picked({ kind: 'port', proto: 'udp', port: 5000, hostIp: '10.99.250.9' }), []);
    assert.deepEqual(picked({ kind: 'port', proto: 'sctp', port: 7000 }), ['10.99.250.2 10.99.250.1 132 40002 7000']);
    assert.deepEqual(picked({ kind: 'port', proto: 'tcp', port: 5000 }), [], 'not another protocol');
    assert.deepEqual(picked({ kind: 'port', proto: 'udp', port: 40000 }), [], 'not a source port');
  });

  it('by address: any of the four, original or reply', () => {
    assert.deepEqual(picked({ kind: 'address', address: '10.77.0.2' }), ['10.77.0.2 10.99.250.2 1 - -', '10.99.250.2 10.99.250.1 17 40000 5000']);
    assert.deepEqual(picked({ kind: 'address', address: '10.77.0.3' }), ['10.99.250.2 10.77.0.3 6 41000 80']);
    assert.deepEqual(picked({ kind: 'address', address: 'fd00:77::2' }), [
      'fd00:0099:0000:0000:0000:0000:0000:0002 fd00:0099:0000:0000:0000:0000:0000:0001 17 40000 5000',
    ]);
    assert.deepEqual(picked({ kind: 'address', address: '10.77.0.9' }), []);
    assert.deepEqual(picked({ kind: 'address', address: 'not an address' }), []);
  });

  it('spells addresses as the tuples do', () => {
    assert.equal(tupleAddress('10.1.2.3'), '10.1.2.3');
    assert.equal(tupleAddress('FD00::2'), 'fd00:0000:0000:0000:0000:0000:0000:0002');
    assert.equal(tupleAddress('::1'), '0000:0000:0000:0000:0000:0000:0000:0001');
    assert.equal(tupleAddress('fd00:1:2:3:4:5:6:7'), 'fd00:0001:0002:0003:0004:0005:0006:0007');
    assert.equal(tupleAddress('fd00::1::2'), null);
    assert.equal(tupleAddress('fd00:1'), null);
    assert.equal(tupleAddress('10.1.2'), null);
  });
});
