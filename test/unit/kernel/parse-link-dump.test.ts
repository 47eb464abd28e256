import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addrOf, addrsOf, ipv6Text, linkOf, namedLinks, namesOf, readGroupNames, type DumpedAddr, type DumpedLink } from '../../../src/kernel/parse-link-dump.ts';
import type { NetlinkMessage } from '../../../src/kernel/netlink.ts';
import { parseAddrs, parseLinks, parseSysctl } from '../../../src/kernel/index.ts';
import { readFixture, readFixtureLines } from '../../helpers/fixtures.ts';

const messages = (file: string, prefix = ''): NetlinkMessage[] =>
  readFixtureLines(file).map((line) => {
    const b = Buffer.from(line.slice(prefix.length), 'hex');
    return { type: b.readUInt16LE(0), payload: b.subarray(2) };
  });
const some = <T>(xs: (T | null)[]): T[] => xs.filter((x): x is T => x !== null);
const groups = new Map([[0, 'default']]);
const dumped = (): DumpedLink[] => some(messages('netlink/link-dump.hex').map((m) => linkOf(m, groups)));

describe('links and addresses from the kernel dumps', () => {
  it('reads every link as ip -j -d link show prints it: kind, master, mtu, up, alias, group, MAC, peer (also in another namespace), address generation', () => {
    assert.deepEqual(namedLinks(dumped(), namesOf(dumped())), parseLinks(readFixture('netlink/link-dump.ip-d.json')));
  });

  it("reads a link's altnames (IFLA_PROP_LIST) as ip -j -d link show prints them; none on a link without", () => {
    const links = some(messages('netlink/altname-dump.hex', 'link ').map((m) => linkOf(m, groups)));
    const named = namedLinks(links, namesOf(links));
    assert.deepEqual(named, parseLinks(readFixture('netlink/altname-dump.ip-d.json')));
    assert.deepEqual(named.find((l) => l.name === 'op0')?.altnames, ['lnb-0123456789a', 'br-lan']);
    assert.equal('altnames' in (named.find((l) => l.name === 'lnb-aaaa') ?? {}), false);
  });

  it('reads route_localnet of every link with IPv4 settings, as sysctl does', () => {
    const sysctl = parseSysctl(readFixture('netlink/link-dump.sysctl.txt'));
    const bridges = dumped().filter((d) => d.kind === 'bridge');
    assert.deepEqual(
      Object.fromEntries(bridges.map((d) => [d.name, d.routeLocalnet])),
      { 'lnb-aaaa': sysctl['net.ipv4.conf.lnb-aaaa.route_localnet'] === '1', 'lnb-bbbb': sysctl['net.ipv4.conf.lnb-bbbb.route_localnet'] === '1' },
    );
    assert.deepEqual(bridges.map((d) => d.routeLocalnet), [false, true]);
  });

  it("reads each bridge's accept_ra (0, 1, 2) as sysctl does; not for other links", () => {
    const sysctl = parseSysctl(readFixture('netlink/accept-ra-dump.sysctl.txt'));
    const links = some(messages('netlink/accept-ra-dump.hex', 'link ').map((m) => linkOf(m, groups)));
    const bridges = links.filter((d) => d.kind === 'bridge');
    assert.deepEqual(
      Object.fromEntries(bridges.map((d) => [d.name, d.acceptRa])),
      Object.fromEntries(bridges.map((d) => [d.name, sysctl[`net.ipv6.conf.${d.name}.accept_ra`] !== '0'])),
    );
    assert.deepEqual(bridges.map((d) => d.acceptRa), [false, true, true]);
    assert.deepEqual(links.filter((d) => d.kind !== 'bridge').map((d) => d.acceptRa), [null, null, null]);
  });

  it('reads IPv4 forwarding of every link, as sysctl does (on for the namespace, off on two links)', () => {
    const sysctl = parseSysctl(readFixture('netlink/forwarding-dump.sysctl.txt'));
    const links = some(messages('netlink/forwarding-dump.hex', 'link ').map((m) => linkOf(m, groups)));
    assert.deepEqual(
      Object.fromEntries(links.map((d) => [d.name, d.forwarding])),
      Object.fromEntries(links.map((d) => [d.name, sysctl[`net.ipv4.conf.${d.name}.forwarding`] === '1'])),
    );
    assert.deepEqual(links.filter((d) => d.forwarding === false).map((d) => d.name).sort(), ['lnb-bbbb', 'up0']);
  });

  it("reads each VXLAN device's tunnel as ip -j -d link show prints it: VNI, local address (IPv4, IPv6, none), port", () => {
    const links = some(messages('netlink/vxlan-link-dump.hex', 'link ').map((m) => linkOf(m, groups)));
    const named = namedLinks(links, namesOf(links));
    assert.deepEqual(named, parseLinks(readFixture('netlink/vxlan-link-dump.ip-d.json')));
    assert.deepEqual(named.flatMap((l) => (l.vxlan ? [[l.name, l.vxlan]] : [])), [
      ['lnx-aaaa', { vni: 5123, local: '192.168.231.1', port: 4789 }],
      ['lnx-bbbb', { vni: 5124, local: 'fd00:231::1', port: 4789 }],
      ['lnx-cccc', { vni: 77, local: null, port: 8472 }],
    ]);
    assert.ok(named.every((l) => (l.kind === 'vxlan') === (l.vxlan !== undefined)), 'only VXLAN devices carry one');
  });

  it('reads the addresses of the links asked for, as ip -j addr show prints them, in its order', () => {
    const links = namedLinks(dumped(), namesOf(dumped()));
    const addrs: DumpedAddr[] = some(messages('netlink/addr-dump.hex').map(addrOf));
    assert.deepEqual(addrsOf(links, addrs), parseAddrs(readFixture('netlink/addr-dump.ip.json')));
    const bridge = links.filter((l) => l.name === 'lnb-aaaa');
    assert.deepEqual(addrsOf(bridge, addrs).map((a) => `${a.family} ${a.cidr} ${a.scope}`), ['inet 10.231.80.1/24 global', 'inet6 fd00:0:0:1::1/64 global', 'inet6 fe80::5c49:38ff:fe78:384a/64 link']);
  });

  it('names a device group as ip does: from its file, else the number', () => {
    const named = new Map([[0, 'default'], [7, 'seven']]);
    const d = dumped();
    const lnv = messages('netlink/link-dump.hex').map((m) => linkOf(m, named)).find((x) => x?.name === 'lnv-aaaa');
    assert.equal(lnv?.group, '1280198004');
    assert.equal(d.find((x) => x.name === 'lo')?.group, 'default');
    assert.equal(readGroupNames('/nonexistent').get(0), 'default');
  });

  it('writes IPv6 addresses as glibc inet_ntop does', () => {
    const text = (groups6: number[]) => {
      const b = Buffer.alloc(16);
      groups6.forEach((g, i) => b.writeUInt16BE(g, i * 2));
      return ipv6Text(b);
    };
    assert.equal(text([0xfe80, 0, 0, 0, 0x1, 0x2, 0x3, 0x4]), 'fe80::1:2:3:4');
    assert.equal(text([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1]), '2001:db8::1:0:0:1');
    assert.equal(text([0x2001, 0xdb8, 0, 1, 1, 1, 1, 1]), '2001:db8:0:1:1:1:1:1');
    assert.equal(text([0, 0, 0, 0, 0, 0, 0, 0]), '::');
    assert.equal(text([0, 0, 0, 0, 0, 0, 0, 1]), '::1');
    assert.equal(text([0xfd00, 0, 0, 0, 0, 0, 0, 0]), 'fd00::');
    assert.equal(text([0, 0, 0, 0, 0, 0xffff, 0x0a01, 0x0203]), '::ffff:10.1.2.3');
  });
});
