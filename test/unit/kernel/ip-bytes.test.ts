// The kernel layer may import nothing of the domain (DESIGN.md's layer table), so its netlink
// encoder reads addresses with a parser of its own (ipBytes). It must agree with the domain's
// one parser (parseIp) on every text: the same addresses accepted, the same bytes, the same
// texts refused. Generated texts, both families, valid and broken.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseIp } from '../../../src/events/domain/cidr.ts';
import { ipBytes } from '../../../src/kernel/iproute/rtnl.ts';

const agree = (s: string) => {
  const d = parseIp(s);
  const k = ipBytes(s);
  if (d === null || k === null) {
    assert.equal(k === null, d === null, `${JSON.stringify(s)}: domain ${d ? 'accepts' : 'refuses'}, kernel ${k ? 'accepts' : 'refuses'}`);
    return;
  }
  assert.equal(k.family, d.family, s);
  assert.equal(BigInt(`0x${k.bytes.toString('hex')}`), d.value, s);
};

const octet = fc.oneof(fc.integer({ min: 0, max: 255 }).map(String), fc.constantFrom('00', '010', '256', '1000', '', '-1', ' 1'));
const group = fc.oneof(fc.integer({ min: 0, max: 0xffff }).map((n) => n.toString(16)), fc.constantFrom('0', '00000', 'g', 'FFFF', '1.2.3.4', ''));

describe('ipBytes agrees with parseIp', () => {
  it('on known texts', () => {
    for (const s of ['10.0.0.1', '0.0.0.0', '255.255.255.255', '010.0.0.1', '1.2.3', '1.2.3.4.5', '::', '::1', 'fd00:231:0::2', 'fd00:231::2', '::ffff:10.0.0.1', '1::2::3', ':::', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7::', '::1:2:3:4:5:6:7', 'fe80::1%eth0', ' 10.0.0.1', '10.0.0.1/24', '', 'x']) agree(s);
  });

  it('on generated IPv4-like texts', () => {
    fc.assert(fc.property(fc.array(octet, { minLength: 1, maxLength: 6 }), (parts) => agree(parts.join('.'))), { numRuns: 3000 });
  });

  it('on generated IPv6-like texts', () => {
    const text = fc.tuple(fc.array(group, { maxLength: 9 }), fc.array(group, { maxLength: 9 }), fc.boolean()).map(([a, b, gap]) => (gap ? `${a.join(':')}::${b.join(':')}` : [...a, ...b].join(':')));
    fc.assert(fc.property(text, agree), { numRuns: 5000 });
  });
});
