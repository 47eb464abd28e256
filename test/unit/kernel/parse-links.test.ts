import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseLinks, parsePlainLinks, type LinkDetail } from '../../../src/kernel/parse-links.ts';
import { readFixture } from '../../helpers/fixtures.ts';

const NET_ALIAS = 'ledgernet:network:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';
const EP_ALIAS = 'ledgernet:endpoint:abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789';
const PARSE_ERROR = { name: 'DriverError', code: 'LN_ERR_KERNEL_PARSE' };

describe('parseLinks', () => {
  it('reads a bridge with an alias and a veth pair, one end enslaved and up', () => {
    const links = parseLinks(readFixture('ip/link-show.bridge-veth.json'));
    assert.deepEqual(
      links.map((l) => l.name),
      ['lo', 'lnb-0123456789a', 'lnc-abcdef01234', 'lnv-abcdef01234'],
    );
    const [lo, bridge, inner, host] = links;
    assert.deepEqual(lo, {
      name: 'lo',
      index: 1,
      kind: null,
      master: null,
      mtu: 65536,
      up: true,
      alias: null,
      group: 'default',
      mac: '00:00:00:00:00:00',
      peer: null,
      peerInOtherNetns: false,
    });
    assert.deepEqual(bridge, {
      name: 'lnb-0123456789a',
      index: 2,
      kind: 'bridge',
      master: null,
      mtu: 1450,
      up: true,
      alias: NET_ALIAS,
      group: 'default',
      mac: 'e2:28:4b:85:82:a8',
      peer: null,
      peerInOtherNetns: false,
      addrGenMode: 'eui64',
    });
    assert.deepEqual(host, {
      name: 'lnv-abcdef01234',
      index: 4,
      kind: 'veth',
      master: 'lnb-0123456789a',
      mtu: 1500,
      up: true,
      alias: EP_ALIAS,
      group: 'default',
      mac: 'e2:28:4b:85:82:a8',
      peer: 'lnc-abcdef01234',
      peerInOtherNetns: false,
    });
    assert.equal(inner?.up, false);
    assert.equal(inner?.master, null);
    assert.equal(inner?.peer, 'lnv-abcdef01234');
  });

  it('marks a veth whose peer was moved to another namespace', () => {
    const links = parseLinks(readFixture('ip/link-show.veth-peer-in-netns.json'));
    const host = links.find((l) => l.name === 'lnv-abcdef01234');
    assert.ok(host);
    assert.equal(host.kind, 'veth');
    assert.equal(host.peer, null);
    assert.equal(host.peerInOtherNetns, true);
    assert.equal(host.master, 'lnb-0123456789a');
    assert.equal(host.alias, EP_ALIAS);
    assert.equal(links.some((l) => l.name.startsWith('lnc-')), false);
  });

  it('shows the host end gone once the peer namespace is deleted', () => {
    const links = parseLinks(readFixture('ip/link-show.peer-netns-deleted.json'));
    assert.deepEqual(
      links.map((l) => l.name),
      ['lo', 'lnb-0123456789a'],
    );
  });

  it('reads a veth peer printed as null and links without an address', () => {
    const json = JSON.stringify([
      { ifindex: 7, ifname: 'v0', link: null, flags: [], mtu: 1500, linkinfo: { info_kind: 'veth' } },
      { ifindex: 8, ifname: 'wg0', flags: ['UP'], mtu: 1420, linkinfo: {} },
    ]);
    const [v0, wg0] = parseLinks(json);
    assert.equal(v0?.peer, null);
    assert.equal(v0?.peerInOtherNetns, false);
    assert.equal(wg0?.kind, null);
    assert.equal(wg0?.mac, null);
  });

  it('gives no peer to a non-veth link that has a `link` field', () => {
    const json = JSON.stringify([
      { ifindex: 9, ifname: 'vl', link: 'eth0', flags: [], mtu: 1500, linkinfo: { info_kind: 'vlan' } },
    ]);
    assert.equal(parseLinks(json)[0]?.peer, null);
  });

  it("reads a link's altnames (a foreign ifb holding a bridge's name as an altname); none on a link without", () => {
    const links = parseLinks(readFixture('netlink/altname-dump.ip-d.json'));
    const op0 = links.find((l) => l.name === 'op0');
    assert.deepEqual([op0?.kind, op0?.alias, op0?.altnames], ['ifb', 'operator: my link', ['lnb-0123456789a', 'br-lan']]);
    assert.equal('altnames' in (links.find((l) => l.name === 'lnb-aaaa') ?? {}), false);
  });

  it('reads an empty list', () => {
    assert.deepEqual(parseLinks('[]'), []);
  });

  for (const [label, text] of [
    ['text that is not JSON', 'Device "x" does not exist.'],
    ['truncated JSON', readFixture('ip/link-show.bridge-veth.json').slice(0, 200)],
    ['an object instead of an array', '{"ifname":"lo"}'],
    ['an entry that is not an object', '[1]'],
    ['a name that is not a string', '[{"ifindex":1,"ifname":3,"flags":[],"mtu":1}]'],
    ['a missing mtu', '[{"ifindex":1,"ifname":"lo","flags":[]}]'],
    ['flags that are not strings', '[{"ifindex":1,"ifname":"lo","flags":[1],"mtu":1}]'],
    ['a linkinfo that is not an object', '[{"ifindex":1,"ifname":"lo","flags":[],"mtu":1,"linkinfo":"x"}]'],
    ['an alias that is not a string', '[{"ifindex":1,"ifname":"lo","flags":[],"mtu":1,"ifalias":5}]'],
  ] as const) {
    it(`rejects ${label} with LN_ERR_KERNEL_PARSE`, () => {
      assert.throws(() => parseLinks(text), PARSE_ERROR);
    });
  }
});

describe('parsePlainLinks', () => {
  // `ip -j link show` (no -d) of the bridge-veth scenario, MACs and ifindexes as in the -d capture.
  const plain = () => readFixture('ip/link-show-plain.bridge-veth.json');
  const detailed = () => parseLinks(readFixture('ip/link-show.bridge-veth.json'));
  const known = (links: readonly { index: number; name: string; kind: string | null; addrGenMode?: string }[]) => {
    const m = new Map(links.map((l): [string, LinkDetail] => [`${l.index} ${l.name}`, { kind: l.kind, ...(l.addrGenMode === undefined ? {} : { addrGenMode: l.addrGenMode }) }]));
    return (index: number, name: string) => m.get(`${index} ${name}`);
  };

  it('gives the same links as `ip -d` when every kind is known (peers of veths included)', () => {
    assert.deepEqual(parsePlainLinks(plain(), known(detailed())), detailed());
  });

  it('gives null when one link is not known by its ifindex and name (new, renamed, or an index used again)', () => {
    const links = detailed();
    assert.equal(parsePlainLinks(plain(), known(links.filter((l) => l.name !== 'lnc-abcdef01234'))), null);
    assert.equal(parsePlainLinks(plain(), known(links.map((l) => (l.name === 'lnv-abcdef01234' ? { ...l, index: 40 } : l)))), null);
    assert.equal(parsePlainLinks(plain(), known(links.map((l) => (l.index === 2 ? { ...l, name: 'lnb-other' } : l)))), null);
  });

  it('takes the kind from what it is told: a peer only for a veth', () => {
    const links = parsePlainLinks(plain(), (index) => ({ kind: index === 4 ? 'vlan' : null }));
    assert.equal(links?.find((l) => l.name === 'lnv-abcdef01234')?.peer, null);
    assert.equal(links?.find((l) => l.name === 'lnb-0123456789a')?.addrGenMode, undefined);
  });

  it('rejects text that is not the expected JSON with LN_ERR_KERNEL_PARSE', () => {
    assert.throws(() => parsePlainLinks('[{"ifname":"lo"}]', () => ({ kind: null })), PARSE_ERROR);
    assert.throws(() => parsePlainLinks('Device "x" does not exist.', () => ({ kind: null })), PARSE_ERROR);
  });
});
