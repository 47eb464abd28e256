// The VXLAN objects of a cluster network against the real kernel: two "hosts" (namespaces made
// here, joined by a veth underlay), each with a bridge and a "container" namespace on it. The
// planner's changes are applied with applyVxlan, read back with observeVxlan (the next plan is
// empty), and the containers ping each other across the tunnel; removing the peer removes its
// entries. Needs root; everything is deleted after.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { applyVxlan, observeVxlan, observeVxlanLinks } from '../../src/kernel/vxlan.ts';
import { parseLinks } from '../../src/kernel/parse-links.ts';
import { openNetlink } from '../../src/kernel/netlink.ts';
import { collect } from '../../src/kernel/observe-netlink.ts';
import { neighDumpRequest, RTM_GETNEIGH } from '../../src/kernel/parse-neigh-dump.ts';
import { planVxlans, type DesiredVxlan } from '../../src/reconciler/cluster.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';
const tag = `${process.pid % 10000}${randomBytes(2).toString('hex')}`;
const ns = (n: string) => `lnvx${tag}-${n}`;
const BRIDGE = 'lnb-c1a5732e001';
const VX = 'lnx-c1a5732e001';

async function ip(...args: string[]): Promise<string> {
  return (await execa('ip', args)).stdout;
}

function desired(me: 1 | 2): DesiredVxlan {
  const peer = me === 1 ? 2 : 1;
  const mac = `02:42:0a:f0:00:1${peer}`;
  return {
    networkId: 'c1a5732e001',
    cluster: 'blue',
    name: VX,
    alias: 'ledgernet:vxlan:c1a5732e001',
    vni: 5123,
    local: `192.168.231.${me}`,
    mtu: 1450,
    bridge: BRIDGE,
    fdb: [
      { mac: '00:00:00:00:00:00', dst: `192.168.231.${peer}` },
      { mac, dst: null },
      { mac, dst: `192.168.231.${peer}` },
    ],
    neighs: [{ dst: `10.240.0.1${peer}`, lladdr: mac }],
  };
}

async function plan(me: 1 | 2, want: DesiredVxlan) {
  const links = parseLinks(await ip('-n', ns(`h${me}`), '-j', '-d', 'link', 'show'));
  const seen = await observeVxlan(new Set([VX]), new Set([BRIDGE]), { netns: ns(`h${me}`) });
  return planVxlans([want], { links, ...seen });
}

describe('VXLAN objects in throwaway namespaces', { skip }, () => {
  before(async () => {
    for (const n of ['h1', 'h2', 'c1', 'c2']) await ip('netns', 'add', ns(n));
    await ip('-n', ns('h1'), 'link', 'add', 'ul', 'type', 'veth', 'peer', 'name', 'ul', 'netns', ns('h2'));
    for (const me of [1, 2] as const) {
      const h = ns(`h${me}`);
      await ip('-n', h, 'addr', 'add', `192.168.231.${me}/24`, 'dev', 'ul');
      await ip('-n', h, 'link', 'set', 'ul', 'up');
      // The bridge answers the gateway address on both hosts with one MAC, as ledgernet's would.
      await ip('-n', h, 'link', 'add', BRIDGE, 'address', '02:4c:00:00:00:01', 'mtu', '1450', 'type', 'bridge');
      await ip('-n', h, 'addr', 'add', '10.240.0.1/24', 'dev', BRIDGE);
      await ip('-n', h, 'link', 'set', BRIDGE, 'up');
      await ip('-n', h, 'link', 'add', 'v0', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns(`c${me}`));
      await ip('-n', h, 'link', 'set', 'v0', 'master', BRIDGE, 'up');
      const c = ns(`c${me}`);
      await ip('-n', c, 'link', 'set', 'eth0', 'address', `02:42:0a:f0:00:1${me}`, 'up');
      await ip('-n', c, 'addr', 'add', `10.240.0.1${me}/24`, 'dev', 'eth0');
    }
  });

  after(async () => {
    for (const n of ['h1', 'h2', 'c1', 'c2']) await execa('ip', ['netns', 'del', ns(n)], { reject: false });
    assert.doesNotMatch(await ip('netns', 'list'), new RegExp(`lnvx${tag}`));
  });

  it('planned, applied, read back: converged, and the containers reach each other across the tunnel', async () => {
    for (const me of [1, 2] as const) {
      const changes = await plan(me, desired(me));
      assert.equal(changes[0]?.kind, 'vxlan.create');
      await applyVxlan(changes, { netns: ns(`h${me}`) });
      assert.deepEqual(await plan(me, desired(me)), [], 'the next plan is empty');
    }
    const link = parseLinks(await ip('-n', ns('h1'), '-j', '-d', 'link', 'show', VX))[0];
    assert.deepEqual([link?.kind, link?.master, link?.mtu, link?.alias], ['vxlan', BRIDGE, 1450, 'ledgernet:vxlan:c1a5732e001']);
    const ping = await execa('ip', ['netns', 'exec', ns('c1'), 'busybox', 'ping', '-c', '2', '-W', '2', '10.240.0.12'], { reject: false });
    assert.equal(ping.exitCode, 0, ping.stdout + ping.stderr);
  });

  it('read through rtnetlink as ip and bridge print it: devices, underlay MTU, FDB and neighbours, what is not ours left out', async () => {
    const h = ns('h2');
    // Beside the converged objects: a learned entry and a static one of the bridge on the port,
    // a reachable and a no-ARP neighbour, a second VXLAN device (not asked for) with entries of
    // its own, a neighbour on a bridge not asked for.
    await ip('-n', h, 'link', 'add', 'lnx-other', 'type', 'vxlan', 'id', '77', 'dstport', '4789', 'local', '192.168.231.2', 'nolearning');
    await ip('-n', h, 'link', 'set', 'lnx-other', 'mtu', '1400', 'up');
    await execa('bridge', ['-n', h, 'fdb', 'append', '00:00:00:00:00:00', 'dev', 'lnx-other', 'dst', '192.168.231.9', 'self', 'permanent']);
    await execa('bridge', ['-n', h, 'fdb', 'add', '02:42:0a:f0:00:77', 'dev', VX, 'master', 'dynamic']);
    await execa('bridge', ['-n', h, 'fdb', 'add', '02:42:0a:f0:00:78', 'dev', VX, 'master', 'static']);
    await ip('-n', h, 'neigh', 'add', '10.240.0.77', 'lladdr', '02:42:0a:f0:00:77', 'dev', BRIDGE, 'nud', 'reachable');
    await ip('-n', h, 'neigh', 'add', '10.240.0.78', 'lladdr', '02:42:0a:f0:00:78', 'dev', BRIDGE, 'nud', 'noarp');
    await ip('-n', h, 'link', 'add', 'lnb-other', 'type', 'bridge');
    await ip('-n', h, 'neigh', 'add', '10.240.9.1', 'lladdr', '02:42:0a:f0:09:01', 'dev', 'lnb-other', 'nud', 'permanent');
    // The kernel itself filters a bridge's neighbour dump: only that device's entries come back.
    const nl = await openNetlink(h, 10_000);
    if (nl) {
      const index = (JSON.parse(await ip('-n', h, '-j', 'link', 'show', 'lnb-other')) as { ifindex: number }[])[0]?.ifindex ?? 0;
      const devices: number[] = [];
      await nl.dump([collect('neighbours of lnb-other', RTM_GETNEIGH, neighDumpRequest(index), (m) => (m.type === 28 ? m.payload.readInt32LE(4) : null), devices)]);
      assert.deepEqual(devices, [index], 'one entry, of lnb-other alone (the other bridge has two)');
    }
    const sort = <T>(xs: T[]) => xs.map((x) => JSON.stringify(x)).sort();
    for (const [vxlans, bridges] of [[[VX, 'lnx-other'], [BRIDGE]], [[VX], [BRIDGE, 'lnb-other', 'lnb-missing']], [['lnx-missing'], []]] as const) {
      const netlink = await observeVxlan(new Set(vxlans), new Set(bridges), { netns: h });
      const processes = await observeVxlan(new Set(vxlans), new Set(bridges), { netns: h, via: 'processes' });
      assert.deepEqual(sort(netlink.fdb), sort(processes.fdb), `FDB of ${vxlans.join(', ')}`);
      assert.deepEqual(sort(netlink.neighs), sort(processes.neighs), `neighbours of ${bridges.join(', ')}`);
      if ((vxlans as readonly string[]).includes(VX)) {
        assert.ok(netlink.fdb.some((f) => f.mac === '02:42:0a:f0:00:78' && f.dst === null), 'the static entry of the bridge is read');
        assert.ok(!netlink.fdb.some((f) => f.mac === '02:42:0a:f0:00:77'), 'the learned one is not');
        assert.ok(netlink.neighs.some((n) => n.dst === '10.240.0.77' && !n.permanent), 'a reachable neighbour is read, not permanent');
      }
    }
    await ip('-n', h, 'addr', 'add', 'fd00:231::2/64', 'dev', 'ul', 'nodad');
    assert.equal((await observeVxlanLinks('fd00:231:0::2', { netns: h })).underlayMtu, 1500, 'an IPv6 VTEP written another way');
    for (const address of ['192.168.231.2', '192.168.231.9']) {
      assert.deepEqual(await observeVxlanLinks(address, { netns: h }), await observeVxlanLinks(address, { netns: h, via: 'processes' }), `links, underlay ${address}`);
    }
    const read = await observeVxlanLinks('192.168.231.2', { netns: h });
    assert.deepEqual(read.links.map((l) => [l.name, l.master, l.mtu]), [[VX, BRIDGE, 1450], ['lnx-other', null, 1400]]);
    assert.equal(read.underlayMtu, 1500);
    for (const dev of ['lnx-other', 'lnb-other']) await ip('-n', h, 'link', 'del', dev);
    await execa('bridge', ['-n', h, 'fdb', 'del', '02:42:0a:f0:00:78', 'dev', VX, 'master']);
    await ip('-n', h, 'neigh', 'del', '10.240.0.78', 'dev', BRIDGE);
  });

  it('the peer gone: its FDB and neighbour entries are removed, the device stays', async () => {
    const alone: DesiredVxlan = { ...desired(1), fdb: [], neighs: [] };
    await applyVxlan(await plan(1, alone), { netns: ns('h1') });
    assert.deepEqual(await plan(1, alone), []);
    const seen = await observeVxlan(new Set([VX]), new Set([BRIDGE]), { netns: ns('h1') });
    assert.deepEqual(seen.fdb, []);
    assert.deepEqual(seen.neighs.filter((n) => n.permanent), []);
  });
});
