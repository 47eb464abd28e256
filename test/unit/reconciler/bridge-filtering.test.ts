import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BridgeNf, Link } from '../../../src/kernel/types.ts';
import { iccProblem } from '../../../src/reconciler/bridge-filtering.ts';
import { NET_A, NET_B, given, networkSpec } from '../../helpers/events.ts';

const NET_6 = 'd'.repeat(8) + '3'.repeat(56);
const link = (name: string): Link => ({ name, index: 1, kind: 'bridge', mtu: 1500, up: true, master: null, alias: null, group: null, mac: null, peer: null, peerInOtherNetns: false }) as Link;
const closed = { 'ledgernet.icc': 'false' };
// A: icc=false, named by Docker; B: icc as Docker's alias says (false), not named; 6: icc=false with
// IPv6 too; C (below): icc on.
const state = given(
  { type: 'CreateNetwork', spec: { ...networkSpec(NET_A), options: closed } },
  { type: 'CreateNetwork', spec: { ...networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24'), options: { 'com.docker.network.bridge.enable_icc': 'false' } } },
  { type: 'CreateNetwork', spec: { ...networkSpec(NET_6, '10.231.9.0/24', '10.231.9.1/24'), options: closed, ipv6: true, ipv6Data: [{ pool: 'fd00:231:9::/64', gateway: 'fd00:231:9::1/64', aux: {} }] } },
  { type: 'RecordNames', networks: [{ networkId: NET_A, name: 'web' }, { networkId: NET_6, name: 'dual' }], endpoints: [] },
);
const links = [NET_A, NET_B, NET_6].map((id) => link(networkSpec(id).bridge));
const problem = (bridgeNf: BridgeNf | undefined, over: { links?: readonly Link[] } = {}) =>
  iccProblem(state, { links: over.links ?? links, ...(bridgeNf === undefined ? {} : { bridgeNf }) });

describe('icc=false that bridge filtering does not enforce', () => {
  it('says nothing when both are on, or when the read did not look', () => {
    assert.equal(problem({ iptables: true, ip6tables: true }), null);
    assert.equal(problem(undefined), null);
  });

  it('bridge-nf-call-iptables 0: every icc=false network (ours or Docker\'s alias), its fix', () => {
    const p = problem({ iptables: false, ip6tables: true });
    assert.deepEqual(p?.networks, ['bbbbbbbb1111', 'dual', 'web']);
    assert.deepEqual(p?.settings, ['net.bridge.bridge-nf-call-iptables']);
    assert.match(p?.message ?? '', /^containers of bbbbbbbb1111, dual, web \(icc=false\) reach each other: .*Turn it on: sysctl -w net\.bridge\.bridge-nf-call-iptables=1, and keep it in \/etc\/sysctl\.d\//);
  });

  it('only -ip6tables 0: the networks with IPv6, over IPv6', () => {
    const p = problem({ iptables: true, ip6tables: false });
    assert.deepEqual(p?.networks, ['dual']);
    assert.match(p?.message ?? '', /^containers of dual \(icc=false\) reach each other over IPv6: .*sysctl -w net\.bridge\.bridge-nf-call-ip6tables=1,/);
  });

  it('br_netfilter not loaded (no setting): the modprobe first', () => {
    const p = problem({ iptables: null, ip6tables: null });
    assert.deepEqual(p?.settings, ['net.bridge.bridge-nf-call-iptables', 'net.bridge.bridge-nf-call-ip6tables']);
    assert.match(p?.message ?? '', /the br_netfilter module, which is not loaded\. Load it: modprobe br_netfilter, then sysctl -w net\.bridge\.bridge-nf-call-iptables=1 net\.bridge\.bridge-nf-call-ip6tables=1/);
  });

  it('no icc=false network, or its bridge not made: nothing, whatever is off', () => {
    const open = given({ type: 'CreateNetwork', spec: networkSpec(NET_A) });
    assert.equal(iccProblem(open, { links, bridgeNf: { iptables: null, ip6tables: null } }), null);
    assert.equal(problem({ iptables: false, ip6tables: false }, { links: [] }), null);
  });
});
