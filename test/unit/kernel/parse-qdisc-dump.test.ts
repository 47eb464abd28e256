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
  it('reads what tc -j qdisc show prints for the same kernel: kinds, handles, parents, tbf rates (also over 4 GB/s)', () => {
    assert.deepEqual(namedQdiscs(dumped(), names()), parseQdiscs(readFixture('netlink/qdisc-dump.tc.json')));
    assert.equal(namedQdiscs(dumped(), names()).find((q) => q.dev === 'lnf-bbbb')?.rate, 5_000_000_000);
  });

  it('leaves out a qdisc of a device the links read did not see', () => {
    const known = names();
    known.delete(3);
    assert.deepEqual(namedQdiscs(dumped(), known).map((q) => q.dev), ['lo', 'lnc-aaaa', 'lnc-bbbb', 'lnv-bbbb', 'lnv-bbbb', 'lnf-bbbb']);
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
