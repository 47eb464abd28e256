// Shaping changes as rtnetlink requests (kernel/tc/rtnl.ts): what tc computes for a tbf, and the
// requests' layout. That they make what `tc -batch` makes is test/integration/shaping-writes.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { find, valueEnd, cString } from '../../../src/kernel/netlink-attrs.ts';
import { encodeTcStep, tbfParms, tcDevicesOf } from '../../../src/kernel/tc/rtnl.ts';
import { tcLines, tcStepLine, tcSteps } from '../../../src/kernel/tc/render.ts';

const base = { owner: { networkId: null, endpointId: null }, reason: 'missing' } as const;
const index = (name: string) => ({ 'lnv-a': 7, 'lni-a': 9 })[name] ?? 0;
/** The request's TCA_KIND, read from the attributes after the 20-byte tcmsg. */
const kindOf = (body: Buffer) => {
  const at = find(body, 20, body.length, 1);
  return at < 0 ? null : cString(body, at, valueEnd(body, at));
};

describe('shaping changes as rtnetlink requests', () => {
  it('a tbf as tc fills it: bytes per second, a limit of 50 ms at the rate plus the burst, an Ethernet link layer', () => {
    const { parms, rate64 } = tbfParms(10_000_000, 16_000);
    assert.equal(rate64, 1_250_000);
    assert.equal(parms.readUInt32LE(8), 1_250_000, 'rate');
    assert.equal(parms.readUInt8(1), 1, 'linklayer ethernet');
    assert.equal(parms.readUInt32LE(24), 62_500 + 16_000, 'limit');
    // Over 32 bits of bytes per second the rate field is saturated (the full rate goes in TCA_TBF_RATE64).
    assert.equal(tbfParms(40_000_000_000, 50_000_000).parms.readUInt32LE(8), 0xffffffff);
  });

  it('each step is the request tc sends for its line', () => {
    const steps = tcSteps({ ...base, kind: 'redirect.set', name: 'lnv-a', to: 'lni-a', replace: true });
    assert.deepEqual(steps.map(tcStepLine), tcLines({ ...base, kind: 'redirect.set', name: 'lnv-a', to: 'lni-a', replace: true }));
    const [del, ingress, filter] = steps.map((s) => encodeTcStep(s, index));
    assert.deepEqual([del?.type, ingress?.type, filter?.type], [37, 36, 44]);
    assert.deepEqual([ingress?.body.readInt32LE(4), ingress?.body.readUInt32LE(8), ingress?.body.readUInt32LE(12)], [7, 0xffff0000, 0xfffffff1], 'ifindex, handle ffff:, parent ingress');
    assert.deepEqual([kindOf(del?.body ?? Buffer.alloc(0)), kindOf(ingress?.body ?? Buffer.alloc(0)), kindOf(filter?.body ?? Buffer.alloc(0))], ['ingress', 'ingress', 'u32']);
    assert.equal(filter?.body.readUInt32LE(16), 0x00010300, 'prio 1, protocol all');
    assert.ok(filter?.body.includes(Buffer.from('mirred\0')));
    const [tbf] = tcSteps({ ...base, kind: 'qdisc.set', name: 'lnv-a', rate: 8_000_000, mtu: 1500 }).map((s) => encodeTcStep(s, index));
    assert.deepEqual([tbf?.type, tbf?.flags, tbf?.body.readUInt32LE(12), kindOf(tbf?.body ?? Buffer.alloc(0))], [36, 0x500, 0xffffffff, 'tbf']);
  });

  it('a tbf burst holds a whole frame of the device (its MTU and the Ethernet header), both ways', () => {
    const set = (rate: number, mtu: number) => ({ ...base, kind: 'qdisc.set', name: 'lnv-a', rate, mtu }) as const;
    const burstOf = (rate: number, mtu: number) => tcSteps(set(rate, mtu)).map((s) => (s.op === 'tbf.replace' ? s.burst : null));
    assert.deepEqual(burstOf(10_000_000, 65_535), [65_549]);
    assert.deepEqual(burstOf(8_000, 65_535), [65_549], 'however low the rate');
    assert.deepEqual(burstOf(10_000_000, 1500), [16_000], 'at least 16 kB');
    assert.deepEqual(burstOf(40_000_000_000, 65_535), [50_000_000], '10 ms at the rate when that is more');
    assert.deepEqual(tcLines(set(10_000_000, 65_535)), ['qdisc replace dev lnv-a root tbf rate 10000000bit burst 65549 latency 50ms']);
    // The kernel drops a packet longer than TCA_TBF_BURST; the bucket in ticks and the limit are made from it.
    const [tbf] = tcSteps(set(10_000_000, 65_535)).map((s) => encodeTcStep(s, index));
    const body = tbf?.body ?? Buffer.alloc(0);
    const options = find(body, 20, body.length, 2);
    assert.equal(body.readUInt32LE(find(body, options, valueEnd(body, options), 6)), 65_549, 'TCA_TBF_BURST');
    assert.deepEqual(tbfParms(10_000_000, 65_549).parms.readUInt32LE(24), 62_500 + 65_549, 'limit');
  });

  it('names the redirect target among the devices to find, with the words tc prints when missing', () => {
    const [, , filter] = tcSteps({ ...base, kind: 'redirect.set', name: 'lnv-a', to: 'lni-a', replace: true });
    assert.ok(filter);
    assert.deepEqual(tcDevicesOf(filter), [['lnv-a', 'Cannot find device "lnv-a"'], ['lni-a', 'Cannot find device "lni-a"']]);
  });
});
