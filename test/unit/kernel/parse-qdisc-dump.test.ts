import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { namedQdiscs, qdiscOf, type DumpedQdisc } from '../../../src/kernel/parse-qdisc-dump.ts';
import { readDatagram } from '../../../src/kernel/netlink.ts';
import { parseQdiscs } from '../../../src/kernel/parse-tc.ts';
import { readFixture, readFixtureLines } from '../../helpers/fixtures.ts';

const dumped = (): DumpedQdisc[] =>
  readFixtureLines('netlink/qdisc-dump.hex').flatMap((hex) => {
    const b = Buffer.from(hex, 'hex');
    const q = qdiscOf({ type: b.readUInt16LE(0), payload: b.subarray(2) });
    return q === null ? [] : [q];
  });
const names = () => new Map(JSON.parse(readFixture('netlink/qdisc-dump.links.json')) as [number, string][]);

describe('qdiscs from the kernel dump', () => {
  it('reads what tc -j -r qdisc show prints for the same kernel: kinds, handles, parents, tbf rates (also over 4 GB/s), bursts and limits', () => {
    assert.deepEqual(namedQdiscs(dumped(), names()), parseQdiscs(readFixture('netlink/qdisc-dump.tc.json')));
    const tbf = (dev: string) => {
      const q = namedQdiscs(dumped(), names()).find((x) => x.dev === dev && x.root);
      return q && [q.rate, q.burst, q.limit];
    };
    // As written (capture-qdiscs.py); the burst comes back from the bucket in ticks, in whole microseconds at the rate.
    assert.deepEqual(tbf('lnv-aaaa'), [1_250_000, 16_000, 78_500], '10mbit, burst 16000');
    assert.deepEqual(tbf('lnf-bbbb'), [5_000_000_000, 49_995_000, 300_000_000], '40gbit, burst 50000000');
    assert.deepEqual(tbf('lnv-cccc'), [1_250_000, 65_548, 128_049], '10mbit, burst 65549');
    assert.deepEqual(tbf('lnv-dddd'), [1_000_000, 20_971_520, 30_971_520], 'by hand: 8mbit burst 20mb latency 10s');
    assert.deepEqual(tbf('lnv-bbbb'), [null, null, null], 'noqueue');
  });

  it('leaves out a qdisc of a device the links read did not see', () => {
    const known = names();
    known.delete(3);
    assert.deepEqual(namedQdiscs(dumped(), known).map((q) => q.dev), ['lo', 'lnc-aaaa', 'lnc-bbbb', 'lnv-bbbb', 'lnv-bbbb', 'lnf-bbbb', 'lnc-cccc', 'lnv-cccc', 'lnc-dddd', 'lnv-dddd']);
  });

  it('splits a datagram into messages, stops at the end of the dump and fails on an error answer', () => {
    const msg = (type: number, payload: Buffer) => {
      const h = Buffer.alloc(16);
      h.writeUInt32LE(16 + payload.length, 0);
      h.writeUInt16LE(type, 4);
      return Buffer.concat([h, payload, Buffer.alloc((4 - (payload.length % 4)) % 4)]);
    };
    const fail = (why: string): never => {
      throw new Error(why);
    };
    const seen: number[] = [];
    const each = (m: { type: number; payload: Buffer }) => seen.push(m.type, m.payload.length);
    assert.equal(readDatagram(Buffer.concat([msg(36, Buffer.alloc(21)), msg(36, Buffer.alloc(4))]), each, fail), false);
    assert.deepEqual(seen, [36, 21, 36, 4]);
    assert.equal(readDatagram(msg(3, Buffer.alloc(4)), each, fail), true);
    const error = Buffer.alloc(4);
    error.writeInt32LE(-22);
    assert.throws(() => readDatagram(msg(2, error), each, fail), /errno 22/);
    assert.throws(() => readDatagram(Buffer.from([64, 0, 0, 0, 36, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), each, fail), /64 bytes/);
  });
});
