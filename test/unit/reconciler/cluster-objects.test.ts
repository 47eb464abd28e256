// Cluster networks beyond the data path, the pure parts: a drifted VXLAN device, the VXLAN objects
// in the dry-run's +/~/- form, the INPUT accept of the peers' VXLAN in both firewall backends
// (present while a cluster network has peers, gone with the last one), and the network's MTU.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DriverError } from '../../../src/errors.ts';
import type { Command } from '../../../src/events/domain/commands.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { lookup } from '../../../src/events/domain/types.ts';
import { vxlanFdbLines, vxlanIpLines, type VxlanChange } from '../../../src/kernel/iproute/vxlan.ts';
import { vxlanSteps } from '../../../src/kernel/iproute/vxlan-rtnl.ts';
import { parseLinks } from '../../../src/kernel/parse-links.ts';
import { renderAcceptOnly, renderChains } from '../../../src/kernel/iptables/render.ts';
import { renderTable } from '../../../src/kernel/nftables/render.ts';
import { peerVteps, planVxlans, type DesiredVxlan } from '../../../src/reconciler/cluster.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { planJson, renderPlan } from '../../../src/reconciler/render.ts';
import { given, NET_A, NET_B, networkSpec } from '../../helpers/events.ts';
import { readFixture } from '../../helpers/fixtures.ts';

const DEFAULTS = { range: '10.231.0.0/16', size: 24 };
const pool = (mtu?: number): Command => ({
  type: 'RequestPool',
  request: { pool: '10.240.0.0/24', subPool: null, v6: false, defaults: DEFAULTS, occupied: [], cluster: { name: 'blue', vni: 5000, blockLen: 26, ...(mtu ? { mtu } : {}) } },
});
const blue = (options: Record<string, string> = {}): Command => ({
  type: 'CreateNetwork',
  spec: { ...networkSpec(NET_A, '10.240.0.0/24', '10.240.0.1/24'), options: { 'ledgernet.cluster': 'blue', ...options } },
});
const member = (host: string, vtep: string | null): Command => ({
  type: 'PeerChange',
  change: { op: 'member', cluster: 'blue', host, member: vtep === null ? null : { host, vtep } },
  self: 'h1',
});

const FLOOD = '00:00:00:00:00:00';
const want: DesiredVxlan = {
  networkId: NET_A,
  cluster: 'blue',
  name: 'lnx-aaaaaaaa000',
  alias: `ledgernet:vxlan:${NET_A}`,
  vni: 5000,
  local: '10.231.200.1',
  mtu: 1450,
  bridge: 'lnb-aaaaaaaa000',
  fdb: [],
  neighs: [],
};
const link = { name: want.name, index: 9, kind: 'vxlan', master: want.bridge, mtu: 1450, up: true, alias: want.alias, group: 'default', mac: null, peer: null, peerInOtherNetns: false };

describe('cluster: a drifted VXLAN device', () => {
  it('another MTU, off its bridge, down: one vxlan.set that says what was found; its port gets its flags again', () => {
    const [set, ...rest] = planVxlans([want], { links: [{ ...link, mtu: 1500, master: null, up: false }], fdb: [], neighs: [] });
    assert.equal(rest.length, 0);
    assert.deepEqual(set, {
      kind: 'vxlan.set',
      name: want.name,
      mtu: 1450,
      master: want.bridge,
      owner: { networkId: NET_A, endpointId: null },
      reason: 'drifted',
      detail: 'mtu 1450 expected, 1500 found, master lnb-aaaaaaaa000 expected, none found, up expected, down found',
    });
    assert.deepEqual(vxlanIpLines(set as VxlanChange), ['link set dev lnx-aaaaaaaa000 mtu 1450 master lnb-aaaaaaaa000 up']);
    assert.deepEqual(vxlanFdbLines(set as VxlanChange), ['link set dev lnx-aaaaaaaa000 neigh_suppress on learning off']);
    assert.deepEqual(planVxlans([want], { links: [link], fdb: [], neighs: [] }), [], 'as wanted: nothing');
  });
});

describe('cluster: a VXLAN device made with another tunnel (this host\'s VTEP changed)', () => {
  // Read from a real `ip -j -d link show` (fixtures/netlink/vxlan-link-dump.ip-d.json): lnx-aaaa,
  // VNI 5123, local 192.168.231.1, port 4789, mtu 1450, on lnb-aaaa, up.
  const observed = parseLinks(readFixture('netlink/vxlan-link-dump.ip-d.json'));
  const owner = { networkId: NET_A, endpointId: null };
  const mac = '02:42:0a:f0:00:12';
  const base: DesiredVxlan = {
    ...want,
    name: 'lnx-aaaa',
    alias: 'ledgernet:vxlan:aaaa',
    bridge: 'lnb-aaaa',
    vni: 5123,
    local: '192.168.231.1',
    fdb: [{ mac: FLOOD, dst: '192.168.231.2' }, { mac, dst: null }, { mac, dst: '192.168.231.2' }],
    neighs: [{ dst: '10.240.0.12', lladdr: mac }],
  };
  // Its entries as they stand: the device's FDB and the bridge's neighbour, all wanted.
  const actual = {
    links: observed,
    fdb: base.fdb.map((f) => ({ dev: 'lnx-aaaa', ...f })),
    neighs: [{ dev: 'lnb-aaaa', dst: '10.240.0.12', lladdr: mac, permanent: true }],
  };

  it('as made: nothing', () => {
    assert.deepEqual(planVxlans([base], actual), []);
  });

  it('another local address: deleted, then created again on its bridge with every FDB entry; the neighbours stay; shown as such in the dry-run', () => {
    const moved = { ...base, local: '192.168.231.11', fdb: base.fdb.map((f) => ({ ...f, dst: f.dst && '192.168.231.2' })) };
    const plan = planVxlans([moved], actual);
    const why = 'local 192.168.231.11 expected, 192.168.231.1 found';
    assert.deepEqual(plan, [
      { kind: 'vxlan.delete', name: 'lnx-aaaa', owner, reason: 'drifted', detail: `${why}: deleted, then created again` },
      { kind: 'vxlan.create', name: 'lnx-aaaa', alias: 'ledgernet:vxlan:aaaa', vni: 5123, local: '192.168.231.11', mtu: 1450, master: 'lnb-aaaa', owner, reason: 'drifted', detail: `${why}: created again, with its FDB entries` },
      ...moved.fdb.map((f) => ({ kind: 'fdb.add', dev: 'lnx-aaaa', mac: f.mac, dst: f.dst, owner, reason: 'missing' })),
    ]);
    assert.equal(
      renderPlan(plan),
      [
        'network aaaaaaaa0000',
        `  - vxlan.delete lnx-aaaa (drifted: ${why}: deleted, then created again)`,
        `  ~ vxlan.create lnx-aaaa (drifted: ${why}: created again, with its FDB entries)`,
        '  + fdb.add lnx-aaaa 00:00:00:00:00:00 dst 192.168.231.2 (missing)',
        '  + fdb.add lnx-aaaa 02:42:0a:f0:00:12 (bridge port) (missing)',
        '  + fdb.add lnx-aaaa 02:42:0a:f0:00:12 dst 192.168.231.2 (missing)',
        'plan: 3 to add, 1 to change, 1 to remove (5 actions)',
        '',
      ].join('\n'),
    );
    // Applied in this order, by rtnetlink and by the batches alike: the old device goes first.
    assert.deepEqual(vxlanSteps(plan).map((s) => s.step.op), ['link.del', 'vxlan.add', 'link.set', 'port.flags', 'fdb.add', 'fdb.add', 'fdb.add']);
    assert.deepEqual(vxlanIpLines(plan[1] as VxlanChange), [
      'link add name lnx-aaaa mtu 1450 group 1280198004 type vxlan id 5123 dstport 4789 local 192.168.231.11 nolearning',
      'link set dev lnx-aaaa alias ledgernet:vxlan:aaaa group default master lnb-aaaa up',
    ]);
  });

  it('another VNI, or an IPv6 VTEP written another way: the VNI is a drift, the spelling is not', () => {
    const plan = planVxlans([{ ...base, vni: 5200 }], actual);
    assert.deepEqual(plan.slice(0, 2).map((c) => `${c.kind} ${c.detail ?? ''}`), [
      'vxlan.delete vni 5200 expected, 5123 found: deleted, then created again',
      'vxlan.create vni 5200 expected, 5123 found: created again, with its FDB entries',
    ]);
    // lnx-bbbb (VNI 5124, local fd00:231::1), as if on its bridge; wanted with fd00:0231:0::1.
    const links = observed.map((l) => (l.name === 'lnx-bbbb' ? { ...l, alias: 'ledgernet:vxlan:bbbb', master: 'lnb-aaaa', up: true, mtu: 1450 } : l));
    const want6 = { ...base, name: 'lnx-bbbb', alias: 'ledgernet:vxlan:bbbb', vni: 5124, local: 'fd00:0231:0::1', fdb: [], neighs: [] };
    assert.deepEqual(planVxlans([want6], { links, fdb: [], neighs: [] }), []);
  });

  it('a device read without its tunnel (the plain link, the model): not judged on it', () => {
    const plain = observed.map(({ vxlan: _, ...l }) => l);
    assert.deepEqual(planVxlans([{ ...base, local: '192.168.231.11', fdb: [], neighs: [] }], { links: plain, fdb: [], neighs: [] }), []);
  });
});

describe('cluster: the VXLAN objects in reconcile --dry-run', () => {
  const owner = { networkId: NET_A, endpointId: null };
  const changes: VxlanChange[] = [
    { kind: 'vxlan.create', name: want.name, alias: want.alias, vni: 5000, local: want.local, mtu: 1450, master: want.bridge, owner, reason: 'missing' },
    { kind: 'fdb.add', dev: want.name, mac: '00:00:00:00:00:00', dst: '10.231.200.2', owner, reason: 'missing' },
    { kind: 'fdb.add', dev: want.name, mac: '02:42:0a:f0:00:41', dst: null, owner, reason: 'missing' },
    { kind: 'neigh.set', dev: want.bridge, dst: '10.240.0.65', lladdr: '02:42:0a:f0:00:42', owner, reason: 'drifted', detail: 'lladdr 02:42:0a:f0:00:42 expected, 02:42:0a:f0:00:41 found' },
    { kind: 'fdb.del', dev: want.name, mac: '02:42:0a:f0:00:43', dst: '10.231.200.3', owner, reason: 'orphan' },
    { kind: 'neigh.del', dev: want.bridge, dst: '10.240.0.66', owner, reason: 'orphan' },
    { kind: 'vxlan.delete', name: 'lnx-bbbbbbbb111', owner: { networkId: NET_B, endpointId: null }, reason: 'orphan' },
  ];

  it('grouped under their network, each with +, ~ or - and the reason', () => {
    assert.equal(
      renderPlan(changes),
      [
        'network aaaaaaaa0000',
        '  + vxlan.create lnx-aaaaaaaa000 (missing)',
        '  + fdb.add lnx-aaaaaaaa000 00:00:00:00:00:00 dst 10.231.200.2 (missing)',
        '  + fdb.add lnx-aaaaaaaa000 02:42:0a:f0:00:41 (bridge port) (missing)',
        '  ~ neigh.set lnb-aaaaaaaa000 10.240.0.65 lladdr 02:42:0a:f0:00:42 (drifted: lladdr 02:42:0a:f0:00:42 expected, 02:42:0a:f0:00:41 found)',
        '  - fdb.del lnx-aaaaaaaa000 02:42:0a:f0:00:43 dst 10.231.200.3 (orphan)',
        '  - neigh.del lnb-aaaaaaaa000 10.240.0.66 (orphan)',
        'network bbbbbbbb1111',
        '  - vxlan.delete lnx-bbbbbbbb111 (orphan)',
        'plan: 3 to add, 1 to change, 3 to remove (7 actions)',
        '',
      ].join('\n'),
    );
    const json = planJson(changes);
    assert.deepEqual(json.summary, { add: 3, change: 1, remove: 3, conflict: 0 });
    assert.equal(json.actions[1]?.object, 'lnx-aaaaaaaa000 00:00:00:00:00:00 dst 10.231.200.2');
  });
});

describe('cluster: UDP 4789 from the peers\' VTEPs accepted in INPUT', () => {
  const withPeers = given(pool(), blue(), member('h3', '10.231.200.3'), member('h2', '10.231.200.2'));

  it('the VTEPs of the members of this host\'s cluster networks, sorted; none once a member left or the network is gone', () => {
    assert.deepEqual(peerVteps(withPeers), ['10.231.200.2', '10.231.200.3']);
    assert.deepEqual(peerVteps(given(pool(), blue(), member('h3', '10.231.200.3'), member('h2', '10.231.200.2'), member('h3', null))), ['10.231.200.2']);
    assert.deepEqual(peerVteps(given(pool(), blue(), member('h2', '10.231.200.2'), { type: 'DeleteNetwork', networkId: NET_A })), []);
    assert.equal(desiredFromState(given(pool(), blue())).firewall.vxlanPeers, undefined, 'no peers: no field, no rule');
  });

  it('iptables: one tagged accept per VTEP, first in LEDGERNET-INPUT (hooked first in INPUT); the nftables backend keeps them in iptables too', () => {
    const policy = desiredFromState(withPeers).firewall;
    const input = renderChains(policy).find((c) => c.table === 'filter' && c.name === 'LEDGERNET-INPUT');
    const rules = [
      '-s 10.231.200.2/32 -p udp -m udp --dport 4789 -m comment --comment "ledgernet:vxlan" -j ACCEPT',
      '-s 10.231.200.3/32 -p udp -m udp --dport 4789 -m comment --comment "ledgernet:vxlan" -j ACCEPT',
    ];
    assert.deepEqual(input?.rules, rules);
    assert.deepEqual(input?.hooks.map((h) => `${h.from} ${h.placement}`), ['INPUT early']);
    assert.deepEqual(renderAcceptOnly(policy, 'nftables').find((c) => c.name === 'LEDGERNET-INPUT')?.rules, rules);
    const none = desiredFromState(given(pool(), blue())).firewall;
    assert.equal(renderChains(none).find((c) => c.name === 'LEDGERNET-INPUT'), undefined);
    assert.equal(renderAcceptOnly(none, 'nftables').find((c) => c.name === 'LEDGERNET-INPUT'), undefined);
  });

  it('nftables: the input chain accepts them, one rule per VTEP', () => {
    const input = renderTable(desiredFromState(withPeers).firewall)?.chains.get('input');
    assert.deepEqual(input?.rules, ['10.231.200.2', '10.231.200.3'].map((v) => [
      { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: v } },
      { match: { op: '==', left: { payload: { protocol: 'udp', field: 'dport' } }, right: 4789 } },
      { accept: null },
    ]));
  });
});

describe('cluster: the network\'s MTU fits the tunnel', () => {
  const mtuOf = (...cmds: Command[]) => lookup(given(...cmds).networks, NET_A)?.mtu;

  it('by default the tunnel\'s (underlay − 50, recorded on the pool); a smaller one given is kept; without a recorded MTU as given', () => {
    assert.equal(mtuOf(pool(1450), blue()), 1450);
    assert.equal(mtuOf(pool(1450), blue({ 'com.docker.network.driver.mtu': '1400' })), 1400);
    assert.equal(mtuOf(pool(), blue()), 1500);
    assert.equal(mtuOf({ type: 'CreateNetwork', spec: networkSpec(NET_A) }), 1500, 'not a cluster network: untouched');
  });

  it('a larger one is refused, naming both and the option to give', () => {
    assert.throws(
      () => decide(blue({ 'com.docker.network.driver.mtu': '1500' }), given(pool(1450))),
      (e: unknown) =>
        e instanceof DriverError &&
        e.message === 'cluster network blue: MTU 1500 is larger than its VXLAN tunnel carries on this host (1450: the underlay\'s MTU 1500 less 50 bytes of VXLAN headers); give -o com.docker.network.driver.mtu=1450 or less, or leave it out',
    );
  });
});
