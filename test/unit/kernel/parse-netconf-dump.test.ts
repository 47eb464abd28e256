import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ipv6Forwarding, netconfOf, type DumpedNetconf } from '../../../src/kernel/parse-netconf-dump.ts';
import type { NetlinkMessage } from '../../../src/kernel/netlink.ts';
import { parseSysctl } from '../../../src/kernel/index.ts';
import { readFixture, readFixtureLines } from '../../helpers/fixtures.ts';

const messages = (): NetlinkMessage[] =>
  readFixtureLines('netlink/netconf-dump.hex').map((line) => {
    const b = Buffer.from(line.slice('netconf '.length), 'hex');
    return { type: b.readUInt16LE(0), payload: b.subarray(2) };
  });
const entries = (): DumpedNetconf[] => messages().map(netconfOf).filter((e): e is DumpedNetconf => e !== null);

describe('IPv6 forwarding from the kernel netconf dump', () => {
  it('reads net.ipv6.conf.all and .default forwarding as sysctl printed them (all off, default on)', () => {
    const sysctl = parseSysctl(readFixture('netlink/netconf-dump.sysctl.txt'));
    assert.deepEqual(ipv6Forwarding(entries()), {
      all: sysctl['net.ipv6.conf.all.forwarding'] === '1',
      default: sysctl['net.ipv6.conf.default.forwarding'] === '1',
    });
    assert.deepEqual(ipv6Forwarding(entries()), { all: false, default: true });
  });

  it('reads one entry per link besides the two of the namespace, each with its own setting', () => {
    const links = entries().filter((e) => e.ifindex > 0);
    const sysctl = parseSysctl(readFixture('netlink/netconf-dump.sysctl.txt'));
    const perLink = Object.entries(sysctl).filter(([k]) => !/\.(all|default)\./.test(k));
    assert.equal(links.length, perLink.length);
    // Two links were off when the dump was made (lo, and up0 turned off by hand), the others on.
    assert.deepEqual(links.map((e) => e.forwarding).sort(), perLink.map(([, v]) => v === '1').sort());
  });

  it('is null when the dump lacks the namespace-wide entries, and skips other messages', () => {
    assert.equal(ipv6Forwarding(entries().filter((e) => e.ifindex !== -1)), null);
    assert.equal(netconfOf({ type: 16, payload: Buffer.alloc(16) }), null);
    const ipv4 = Buffer.from(messages()[0]?.payload ?? []);
    ipv4.writeUInt8(2, 0);
    assert.equal(netconfOf({ type: 80, payload: ipv4 }), null);
  });
});
