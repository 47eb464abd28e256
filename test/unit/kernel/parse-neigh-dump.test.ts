// FDB and neighbour entries from rtnetlink dumps (kernel/parse-neigh-dump.ts) against what
// `bridge -j fdb show` and `ip -j -4 neigh show` printed for the same namespace at the same moment
// (fixtures/netlink/capture-neigh.py): a cluster network's device with its flood list, a remote
// MAC's entries and the bridge's static one, a learned entry, an IPv6 underlay's device, and
// permanent, reachable, failed, incomplete and no-ARP neighbours.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NetlinkMessage } from '../../../src/kernel/netlink.ts';
import { fdbDumpRequest, fdbOf, neighDumpRequest, neighOf } from '../../../src/kernel/parse-neigh-dump.ts';
import { parseNeighs, parseVxlanFdb } from '../../../src/kernel/parse-vxlan.ts';
import { readFixture, readFixtureLines } from '../../helpers/fixtures.ts';

const messages = (dump: 'fdb' | 'neigh'): NetlinkMessage[] =>
  readFixtureLines('netlink/neigh-dump.hex').flatMap((line) => {
    const [name, hex = ''] = line.split(' ');
    if (name !== dump) return [];
    const b = Buffer.from(hex, 'hex');
    return [{ type: b.readUInt16LE(0), payload: b.subarray(2) }];
  });
const names = () => new Map(JSON.parse(readFixture('netlink/neigh-dump.links.json')) as [number, string][]);
const some = <T>(xs: readonly (T | null)[]): T[] => xs.filter((x): x is T => x !== null);

describe('FDB and neighbour entries from the kernel dumps', () => {
  it('keeps the FDB entries bridge -j fdb show prints with a dst, or static under a master: IPv4 and IPv6 VTEPs, lower-case MACs', () => {
    const all = names();
    const read = some(messages('fdb').map((m) => fdbOf(m, all)));
    assert.deepEqual(read, parseVxlanFdb(readFixture('netlink/neigh-dump.fdb.json'), () => true));
    assert.deepEqual(read, [
      { dev: 'lnx-aaaa', mac: '02:42:0a:f0:00:12', dst: null },
      { dev: 'lnx-aaaa', mac: '02:42:0a:f0:00:12', dst: '192.168.231.2' },
      { dev: 'lnx-aaaa', mac: '00:00:00:00:00:00', dst: '192.168.231.2' },
      { dev: 'lnx-aaaa', mac: '00:00:00:00:00:00', dst: '192.168.231.3' },
      { dev: 'lnx-bbbb', mac: '00:00:00:00:00:00', dst: 'fd00:231::2' },
    ]);
  });

  it('reads the neighbours ip -4 neigh show prints (no-ARP ones hidden), permanent or not, with or without a MAC', () => {
    const all = names();
    const read = some(messages('neigh').map((m) => neighOf(m, all)));
    assert.deepEqual(read, parseNeighs(readFixture('netlink/neigh-dump.neigh.json'), () => true));
    assert.ok(read.some((n) => n.dst === '10.240.0.12' && n.permanent && n.lladdr === '02:42:0a:f0:00:12'));
    assert.ok(read.some((n) => n.dst === '10.240.0.79' && !n.permanent && n.lladdr === null));
    assert.ok(!read.some((n) => n.dst === '10.240.0.78'), 'the no-ARP entry is hidden, as ip hides it');
  });

  it('leaves out the entries of devices not named, and messages of another kind', () => {
    const only = new Map([[7, 'lnx-aaaa']]);
    assert.deepEqual(new Set(some(messages('fdb').map((m) => fdbOf(m, only))).map((f) => f.dev)), new Set(['lnx-aaaa']));
    const bridge = new Map([[4, 'lnb-aaaa']]);
    assert.deepEqual(some(messages('neigh').map((m) => neighOf(m, bridge))).map((n) => n.dst), parseNeighs(readFixture('netlink/neigh-dump.neigh.json'), (d) => d === 'lnb-aaaa').map((n) => n.dst));
    assert.equal(neighOf(messages('fdb')[0] as NetlinkMessage, names()), null, 'a bridge FDB message is no neighbour');
    assert.equal(fdbOf({ type: 16, payload: Buffer.alloc(32) }, names()), null);
    assert.equal(fdbOf({ type: 28, payload: Buffer.alloc(8) }, names()), null, 'too short');
  });

  it('asks for one device\'s neighbours: struct ndmsg with AF_INET, then NDA_IFINDEX (as ip neigh show dev D)', () => {
    assert.deepEqual([...neighDumpRequest(7)], [2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 8, 0, 7, 0, 0, 0]);
  });

  it('asks for one port: struct ifinfomsg with AF_BRIDGE and its index', () => {
    assert.deepEqual([...fdbDumpRequest(7)], [7, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });
});
