import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAddrs } from '../../../src/kernel/parse-addrs.ts';
import { readFixture } from '../../helpers/fixtures.ts';

const PARSE_ERROR = { name: 'DriverError', code: 'LN_ERR_KERNEL_PARSE' };

describe('parseAddrs', () => {
  it('flattens the addresses of every device, IPv4 and IPv6', () => {
    assert.deepEqual(parseAddrs(readFixture('ip/addr-show.bridge-gw.json')), [
      { dev: 'lo', family: 'inet', cidr: '127.0.0.1/8', scope: 'host' },
      { dev: 'lo', family: 'inet6', cidr: '::1/128', scope: 'host' },
      { dev: 'lnb-0123456789a', family: 'inet', cidr: '10.231.7.1/24', scope: 'global' },
      { dev: 'lnb-0123456789a', family: 'inet6', cidr: 'fd00:231:7::1/64', scope: 'global' },
      { dev: 'lnb-0123456789a', family: 'inet6', cidr: 'fe80::c15:31ff:fed5:747f/64', scope: 'link' },
    ]);
  });

  it('skips empty entries and families other than inet/inet6', () => {
    const json = JSON.stringify([
      {
        ifindex: 2,
        ifname: 'br0',
        addr_info: [{}, { family: 'mpls', local: 'x', prefixlen: 0, scope: 'global' }],
      },
    ]);
    assert.deepEqual(parseAddrs(json), []);
  });

  for (const [label, text] of [
    ['text that is not JSON', 'Cannot open network namespace "x"'],
    ['an object instead of an array', '{}'],
    ['a device without addr_info', '[{"ifindex":1,"ifname":"lo"}]'],
    ['an address that is not an object', '[{"ifname":"lo","addr_info":[null]}]'],
    ['an address without local', '[{"ifname":"lo","addr_info":[{"family":"inet","prefixlen":8,"scope":"host"}]}]'],
    [
      'a prefix length that is not a number',
      '[{"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":"8","scope":"host"}]}]',
    ],
  ] as const) {
    it(`rejects ${label} with LN_ERR_KERNEL_PARSE`, () => {
      assert.throws(() => parseAddrs(text), PARSE_ERROR);
    });
  }
});
