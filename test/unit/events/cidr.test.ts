import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { canonicalIp, capturesHost, formatIp, overlaps, parseAddrLen, parseIp, parseLegacyAddrLen, parsePrefix, within } from '../../../src/events/domain/cidr.ts';

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

  it('is strict: no leading zeros, no zone, no spaces; the legacy reader takes what old versions let in', () => {
    for (const bad of ['10.77.0.0/0024', '10.77.0.0/024', '010.77.0.0/24', 'fd00:77::%eth0/64', ' 10.0.0.0/24', '10.0.0.0/24 ', '10.0.0.0/+24', '10.0.0.0/']) {
      assert.equal(parsePrefix(bad), null, bad);
      assert.equal(parseAddrLen(bad), null, bad);
    }
    assert.equal(parseIp('10.0.0.01'), null);
    assert.equal(parseAddrLen('10.77.0.9/24')?.value, parseIp('10.77.0.9')?.value);
    assert.equal(parseLegacyAddrLen('10.77.0.1/0024')?.len, 24);
    assert.equal(parseLegacyAddrLen('fd00:77::1%eth0/64')?.prefix.len, 64);
    assert.equal(parseLegacyAddrLen('garbage/24'), null);
  });

  it('refuses subnets that would capture the host: too wide, 0/8, loopback, link-local, multicast, reserved, ::/8', () => {
    const why = (s: string) => capturesHost(parsePrefix(s) ?? assert.fail(s));
    for (const ok of ['10.0.0.0/8', '10.231.7.0/24', '172.16.0.0/12', '192.168.0.0/16', 'fd00::/16', 'fd00:231::/64', '2001:db8::/32']) {
      assert.equal(why(ok), null, ok);
    }
    for (const [bad, msg] of [
      ['0.0.0.0/0', /wider than \/8/],
      ['8.0.0.0/7', /wider than \/8/],
      ['0.0.0.0/24', /this network/],
      ['127.0.0.0/8', /loopback/],
      ['169.254.0.0/24', /link-local/],
      ['239.0.0.0/8', /multicast/],
      ['255.255.255.0/24', /reserved and broadcast/],
      ['::/0', /wider than \/16/],
      ['::1/128', /unspecified, loopback/],
      ['fe80::/64', /link-local/],
      ['ff02::/16', /multicast/],
    ] as const) {
      assert.match(why(bad) ?? '', msg, bad);
    }
  });
});
