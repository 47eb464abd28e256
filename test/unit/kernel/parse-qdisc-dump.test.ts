import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { namedQdiscs, qdiscOf, type DumpedQdisc } from '../../../src/kernel/parse-qdisc-dump.ts';
import { readDatagram } from '../../../src/kernel/netlink.ts';
import { collect } from '../../../src/kernel/observe-netlink.ts';
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

  it('marks a datagram whose messages carry NLM_F_DUMP_INTR (the table changed during the dump)', () => {
    const msg = (type: number, flags: number) => {
      const h = Buffer.alloc(20);
      h.writeUInt32LE(20, 0);
      h.writeUInt16LE(type, 4);
      h.writeUInt16LE(flags, 6);
      return h;
    };
    const fail = (why: string): never => {
      throw new Error(why);
    };
    const each = () => undefined;
    const clean = { interrupted: false };
    assert.equal(readDatagram(Buffer.concat([msg(20, 0x2), msg(20, 0x2)]), each, fail, clean), false);
    assert.equal(readDatagram(msg(3, 0x2), each, fail, clean), true);
    assert.equal(clean.interrupted, false, 'NLM_F_MULTI alone is no interruption');
    const marked = { interrupted: false };
    assert.equal(readDatagram(Buffer.concat([msg(20, 0x2), msg(20, 0x12)]), each, fail, marked), false);
    assert.equal(marked.interrupted, true, 'a message with the flag');
    const onDone = { interrupted: false };
    assert.equal(readDatagram(msg(3, 0x12), each, fail, onDone), true);
    assert.equal(onDone.interrupted, true, 'the flag on the done message only');
  });

  it('takes back only its own items from a shared list when its dump is read again', () => {
    const into: { n: number }[] = [];
    const of = (m: { payload: Buffer }) => ({ n: m.payload.readUInt8(0) });
    const a = collect('a', 1, Buffer.alloc(0), of, into);
    const b = collect('b', 1, Buffer.alloc(0), of, into);
    const m = (n: number) => ({ type: 1, payload: Buffer.from([n]) });
    a.each(m(1));
    b.each(m(2));
    a.each(m(3));
    b.each(m(4));
    a.restart?.();
    assert.deepEqual(into.map((i) => i.n), [2, 4], "b's items stay, in order");
    a.each(m(5));
    b.restart?.();
    assert.deepEqual(into.map((i) => i.n), [5]);
    a.restart?.();
    assert.deepEqual(into, []);
    const numbers: number[] = [];
    const c = collect('c', 1, Buffer.alloc(0), (x) => x.payload.readUInt8(0), numbers);
    const d = collect('d', 1, Buffer.alloc(0), (x) => x.payload.readUInt8(0), numbers);
    for (const [dump, n] of [[c, 7], [d, 7], [c, 8], [d, 9], [c, 7]] as const) dump.each(m(n));
    c.restart?.();
    assert.deepEqual([...numbers].sort(), [7, 9], "equal values: only as many taken back as were c's");
  });
});
