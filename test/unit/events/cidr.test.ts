import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { canonicalIp, formatIp, overlaps, parseIp, parsePrefix, within } from '../../../src/events/cidr.ts';

describe('cidr helpers', () => {
  it('parses and canonicalises addresses of both families', () => {
    assert.equal(canonicalIp('10.231.0.7'), '10.231.0.7');
    assert.equal(canonicalIp('fd00:0231:0000:0000:0000:0000:0000:0001'), 'fd00:231::1');
    assert.equal(canonicalIp('::ffff:10.0.0.1'), '::ffff:a00:1');
    assert.equal(canonicalIp('1:0:0:1:0:0:0:1'), '1:0:0:1::1');
    assert.equal(canonicalIp('::'), '::');
    for (const bad of ['10.0.0.256', '1:2', '1::2::3', 'fd00::g', '', '10.0.0']) assert.equal(canonicalIp(bad), null, bad);
  });

  it('masks prefixes and tells overlap from containment', () => {
    const a = parsePrefix('10.231.7.9/24');
    const b = parsePrefix('10.231.7.128/25');
    const c = parsePrefix('10.231.8.0/24');
    assert.ok(a && b && c);
    assert.equal(parsePrefix('10.231.7.9/24', true), null);
    assert.ok(overlaps(a, b) && within(b, a) && !within(a, b) && !overlaps(a, c));
    assert.equal(parsePrefix('10.0.0.0/33'), null);
  });

  it('round-trips any IPv6 value through text', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (v) => {
        assert.equal(parseIp(formatIp(6, v))?.value, v);
      }),
    );
  });
});
