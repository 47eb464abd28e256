// Cluster networks' VXLAN objects, the pure parts: parsing real `bridge -j fdb show` and
// `ip -j neigh show` captures, the command lines, and the planner.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { vxlanFdbLines, vxlanIpLines } from '../../../src/kernel/iproute/vxlan.ts';
import { parseNeighs, parseVxlanFdb } from '../../../src/kernel/parse-vxlan.ts';
import { planVxlans, type DesiredVxlan } from '../../../src/reconciler/cluster.ts';
import { readFixture as fixture } from '../../helpers/fixtures.ts';

const isVx = (d: string) => d.startsWith('lnx-');

describe('VXLAN: parse', () => {
  it('keeps the VXLAN device\'s entries that name a VTEP, and the bridge\'s static ones, not the device\'s own MAC', () => {
    assert.deepEqual(parseVxlanFdb(fixture('ip/bridge-fdb-show.vxlan.json'), isVx), [
      { dev: 'lnx-abc', mac: '02:42:0a:f0:00:41', dst: '10.231.200.2' },
      { dev: 'lnx-abc', mac: '00:00:00:00:00:00', dst: '10.231.200.2' },
      { dev: 'lnx-abc', mac: '00:00:00:00:00:00', dst: '10.231.200.3' },
    ]);
    assert.deepEqual(parseVxlanFdb('[{"mac":"02:00:00:00:00:12","ifname":"lnx-abc","flags":[],"master":"lnb-x","state":"static"}]', isVx), [
      { dev: 'lnx-abc', mac: '02:00:00:00:00:12', dst: null },
    ]);
    assert.deepEqual(parseVxlanFdb('', isVx), []);
  });

  it('neighbour entries: permanent or not, on the devices asked for', () => {
    assert.deepEqual(parseNeighs(fixture('ip/neigh-show.vxlan.json'), isVx), [{ dev: 'lnx-abc', dst: '10.240.0.65', lladdr: '02:42:0a:f0:00:41', permanent: true }]);
    assert.deepEqual(parseNeighs(fixture('ip/neigh-show.vxlan.json'), (d) => d === 'd0').map((n) => n.permanent), [false, false]);
  });
});

const owner = { networkId: 'n', endpointId: null };
const want: DesiredVxlan = {
  networkId: 'n',
  cluster: 'blue',
  name: 'lnx-0123456789a',
  alias: 'ledgernet:vxlan:n',
  vni: 5000,
  local: '10.231.200.1',
  mtu: 1450,
  bridge: 'lnb-0123456789a',
  fdb: [
    { mac: '00:00:00:00:00:00', dst: '10.231.200.2' },
    { mac: '02:42:0a:f0:00:41', dst: null },
    { mac: '02:42:0a:f0:00:41', dst: '10.231.200.2' },
  ],
  neighs: [{ dst: '10.240.0.65', lladdr: '02:42:0a:f0:00:41' }],
};

describe('VXLAN: lines', () => {
  it('the device: created labelled in its group, enslaved; its port answers ARP itself and learns nothing', () => {
    const create = { kind: 'vxlan.create', name: want.name, alias: want.alias, vni: 5000, local: want.local, mtu: 1450, master: want.bridge, owner, reason: 'missing' } as const;
    assert.deepEqual(vxlanIpLines(create), [
      'link add name lnx-0123456789a mtu 1450 group 1280198004 type vxlan id 5000 dstport 4789 local 10.231.200.1 nolearning',
      'link set dev lnx-0123456789a alias ledgernet:vxlan:n group default master lnb-0123456789a up',
    ]);
    assert.deepEqual(vxlanFdbLines(create), ['link set dev lnx-0123456789a neigh_suppress on learning off']);
  });

  it('the flood list appends, a remote MAC replaces; neighbours are permanent', () => {
    const fdb = (mac: string, dst: string | null) => vxlanFdbLines({ kind: 'fdb.add', dev: 'lnx-x', mac, dst, owner, reason: 'missing' });
    assert.deepEqual(fdb('00:00:00:00:00:00', '10.0.0.2'), ['fdb append 00:00:00:00:00:00 dev lnx-x dst 10.0.0.2 self permanent']);
    assert.deepEqual(fdb('02:42:0a:f0:00:41', '10.0.0.2'), ['fdb replace 02:42:0a:f0:00:41 dev lnx-x dst 10.0.0.2 self permanent']);
    assert.deepEqual(fdb('02:42:0a:f0:00:41', null), ['fdb replace 02:42:0a:f0:00:41 dev lnx-x master static']);
    assert.deepEqual(vxlanIpLines({ kind: 'neigh.set', dev: 'lnb-x', dst: '10.240.0.65', lladdr: '02:42:0a:f0:00:41', owner, reason: 'missing' }), [
      'neigh replace 10.240.0.65 lladdr 02:42:0a:f0:00:41 dev lnb-x nud permanent',
    ]);
  });
});

describe('VXLAN: plan', () => {
  const link = { name: want.name, index: 9, kind: 'vxlan', master: want.bridge, mtu: 1450, up: true, alias: want.alias, group: 'default', mac: null, peer: null, peerInOtherNetns: false };

  it('nothing there: the device, every entry and every neighbour', () => {
    const plan = planVxlans([want], { links: [], fdb: [], neighs: [] });
    assert.deepEqual(plan.map((c) => c.kind), ['vxlan.create', 'fdb.add', 'fdb.add', 'fdb.add', 'neigh.set']);
  });

  it('converged: nothing; a learned neighbour of a local container is not touched', () => {
    const fdb = want.fdb.map((f) => ({ dev: want.name, ...f }));
    const neighs = [
      { dev: want.bridge, dst: '10.240.0.65', lladdr: '02:42:0a:f0:00:41', permanent: true },
      { dev: want.bridge, dst: '10.240.0.130', lladdr: '02:42:0a:f0:00:82', permanent: false },
    ];
    assert.deepEqual(planVxlans([want], { links: [link], fdb, neighs }), []);
  });

  it('a remote endpoint gone and a member moved: their entries go, the new ones come', () => {
    const next: DesiredVxlan = { ...want, fdb: [{ mac: '00:00:00:00:00:00', dst: '10.231.200.3' }], neighs: [] };
    const fdb = want.fdb.map((f) => ({ dev: want.name, ...f }));
    const neighs = [{ dev: want.bridge, dst: '10.240.0.65', lladdr: '02:42:0a:f0:00:41', permanent: true }];
    const plan = planVxlans([next], { links: [link], fdb, neighs });
    assert.deepEqual(
      plan.map((c) => `${c.kind} ${'mac' in c ? `${c.mac} ${c.dst ?? 'bridge'}` : 'dst' in c ? c.dst : c.name}`),
      ['fdb.add 00:00:00:00:00:00 10.231.200.3', 'fdb.del 00:00:00:00:00:00 10.231.200.2', 'fdb.del 02:42:0a:f0:00:41 bridge', 'fdb.del 02:42:0a:f0:00:41 10.231.200.2', 'neigh.del 10.240.0.65'],
    );
  });

  it('a link that is not ours under the device\'s name is left alone', () => {
    assert.deepEqual(planVxlans([want], { links: [{ ...link, alias: null }], fdb: [], neighs: [] }), []);
  });
});

describe('VXLAN: desired', () => {
  it('one device per cluster network on its cluster pool: members flood, remote endpoints get entries and neighbours', async () => {
    const { given, NET_A, networkSpec } = await import('../../helpers/events.ts');
    const { desiredVxlans } = await import('../../../src/reconciler/cluster.ts');
    const state = given(
      { type: 'RequestPool', request: { pool: '10.240.0.0/24', subPool: null, v6: false, defaults: { range: '10.231.0.0/16', size: 24 }, occupied: [], cluster: { name: 'blue', vni: 5000, blockLen: 26 } } },
      { type: 'CreateNetwork', spec: { ...networkSpec(NET_A, '10.240.0.0/24', '10.240.0.1/24'), options: { 'ledgernet.cluster': 'blue' } } },
    );
    const peers = {
      blue: {
        members: { h2: { host: 'h2', vtep: '10.231.200.2' } },
        endpoints: { e1: { host: 'h2', vtep: '10.231.200.2', endpointId: 'e1', address: '10.240.0.65', mac: '02:42:0a:f0:00:41' } },
      },
    };
    const [vx, ...rest] = desiredVxlans(state, peers, { vtep: '10.231.200.1', mtu: 1500 });
    assert.equal(rest.length, 0);
    assert.deepEqual({ ...vx, fdb: undefined, neighs: undefined }, { ...want, name: `lnx-${NET_A.slice(0, 11)}`, alias: `ledgernet:vxlan:${NET_A}`, networkId: NET_A, bridge: `lnb-${NET_A.slice(0, 11)}`, fdb: undefined, neighs: undefined });
    assert.deepEqual(vx?.fdb, want.fdb);
    assert.deepEqual(vx?.neighs, want.neighs);
    assert.deepEqual(desiredVxlans(given(), peers, { vtep: '10.231.200.1', mtu: 1500 }), [], 'no cluster network, no device');
  });
});
