import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Link, Route } from '../../../src/kernel/types.ts';
import { forwardingProblem, planIpv6Forwarding } from '../../../src/reconciler/forwarding.ts';
import { NET_A, NET_B, given, networkSpec } from '../../helpers/events.ts';

const BR_A = networkSpec(NET_A).bridge;
const BR_B = networkSpec(NET_B).bridge;
const NET_I = 'c'.repeat(8) + '2'.repeat(56);
const BR_I = networkSpec(NET_I).bridge;
const link = (name: string, kind: string | null): Link => ({ name, index: 1, kind, mtu: 1500, up: true, master: null, alias: null, group: null, mac: null, peer: null, peerInOtherNetns: false }) as Link;
const links = [link('lo', null), link('eth0', null), link(BR_A, 'bridge'), link(BR_B, 'bridge'), link(BR_I, 'bridge')];
const routes: Route[] = [
  { family: 4, dst: '0.0.0.0/0', dev: 'eth0' },
  { family: 6, dst: '::/0', dev: 'eth1' },
  { family: 4, dst: '10.231.7.0/24', dev: BR_A },
];
// Network A named by Docker, B not (12 hex of its id), an --internal one with no way out anyway.
const state = given(
  { type: 'CreateNetwork', spec: networkSpec(NET_A) },
  { type: 'CreateNetwork', spec: networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24') },
  { type: 'CreateNetwork', spec: { ...networkSpec(NET_I, '10.231.9.0/24', '10.231.9.1/24'), internal: true } },
  { type: 'RecordNames', networks: [{ networkId: NET_A, name: 'web' }], endpoints: [] },
);
const problem = (off: readonly string[] | undefined, over: { links?: readonly Link[]; routes?: readonly Route[] } = {}) =>
  forwardingProblem(state, { links: over.links ?? links, routes: over.routes ?? routes, ...(off === undefined ? {} : { forwardingOff: off }) });

describe('IPv4 forwarding turned off under the networks', () => {
  it('says nothing when it is on, when the read did not look, or where it does not matter (lo, an internal network, a link of no default route)', () => {
    assert.equal(problem([]), null);
    assert.equal(problem(undefined), null, 'the model: not read');
    assert.equal(problem(['lo', BR_I, 'eth1']), null);
  });

  it("off on a network's bridge: that network, its fix per link", () => {
    const p = problem([BR_A]);
    assert.deepEqual(p?.devices, [BR_A]);
    assert.deepEqual(p?.networks, ['web']);
    assert.match(p?.message ?? '', new RegExp(`^IPv4 forwarding is off on ${BR_A} \\(net\\.ipv4\\.conf\\.<link>\\.forwarding = 0\\): what containers of web send goes no further than the host\\. `));
    assert.match(p?.message ?? '', new RegExp(`Turn it on: sysctl -w net\\.ipv4\\.conf\\.${BR_A}\\.forwarding=1 \\(or sysctl -w net\\.ipv4\\.ip_forward=1 for every interface\\)`));
  });

  it('off on the uplink (the default route\'s device): every network with a way out', () => {
    const p = problem([BR_B, 'eth0', BR_I]);
    assert.deepEqual(p?.devices, [BR_B, 'eth0']);
    assert.deepEqual(p?.networks, ['bbbbbbbb1111', 'web']);
    assert.match(p?.message ?? '', /what containers of bbbbbbbb1111 send goes no further than the host; nothing that comes in on eth0 \(replies from beyond the host, published ports from other hosts\) reaches containers of any ledgernet network\./);
    assert.match(p?.message ?? '', new RegExp(`sysctl -w net\\.ipv4\\.conf\\.${BR_B}\\.forwarding=1; sysctl -w net\\.ipv4\\.conf\\.eth0\\.forwarding=1 `));
  });

  it('a bridge not made yet is not named; a VLAN uplink (eth0.10) is spelled as sysctl wants it', () => {
    assert.equal(problem([BR_A], { links: links.filter((l) => l.name !== BR_A) }), null);
    const p = problem(['eth0.10'], { routes: [{ family: 4, dst: '0.0.0.0/0', dev: 'eth0.10' }] });
    assert.match(p?.message ?? '', /sysctl -w net\.ipv4\.conf\.eth0\/10\.forwarding=1/);
  });

  it('no ledgernet network with a way out: nothing, whatever is off', () => {
    assert.equal(forwardingProblem(given(), { links, routes, forwardingOff: ['eth0'] }), null);
  });
});

describe('IPv6 forwarding turned off under the networks', () => {
  const NET_6 = 'd'.repeat(8) + '3'.repeat(56);
  const NET_6I = 'e'.repeat(8) + '4'.repeat(56);
  const v6 = (id: string, n: number, internal = false) => ({
    ...networkSpec(id, `10.231.${n}.0/24`, `10.231.${n}.1/24`),
    internal,
    ipv6: true,
    ipv6Data: [{ pool: `fd00:231:${n}::/64`, gateway: `fd00:231:${n}::1/64`, aux: {} }],
  });
  const withV6 = given(
    { type: 'CreateNetwork', spec: networkSpec(NET_A) },
    { type: 'CreateNetwork', spec: v6(NET_6, 10) },
    { type: 'CreateNetwork', spec: v6(NET_6I, 11, true) },
    { type: 'RecordNames', networks: [{ networkId: NET_6, name: 'v6net' }], endpoints: [] },
  );
  const all = [...links, link(networkSpec(NET_6).bridge, 'bridge'), link(networkSpec(NET_6I).bridge, 'bridge')];
  const problem6 = (fwd: { all: boolean; default: boolean } | undefined, off: readonly string[] = []) =>
    forwardingProblem(withV6, { links: all, routes, forwardingOff: off, ...(fwd === undefined ? {} : { ipv6Forwarding: fwd }) });

  it('off (all = 0): the networks with IPv6 and a way out, with the sysctl that turns it on; IPv4-only and internal ones are not named', () => {
    const p = problem6({ all: false, default: true });
    assert.equal(p?.ipv6Off, true);
    assert.deepEqual(p?.devices, []);
    assert.deepEqual(p?.networks, ['v6net']);
    assert.match(p?.message ?? '', /^IPv6 forwarding is off \(net\.ipv6\.conf\.all\.forwarding = 0\): what containers of v6net send over IPv6 goes no further than the host/);
    assert.match(p?.message ?? '', /Turn it on: sysctl -w net\.ipv6\.conf\.all\.forwarding=1 net\.ipv6\.conf\.default\.forwarding=1/);
  });

  it('on (all = 1, whatever default says), or not read, or no network with IPv6 and a way out: nothing', () => {
    assert.equal(problem6({ all: true, default: false }), null);
    assert.equal(problem6(undefined), null);
    assert.equal(forwardingProblem(state, { links, routes, forwardingOff: [], ipv6Forwarding: { all: false, default: false } }), null);
  });

  it('both families off: one problem naming both, the IPv4 links and the IPv6 setting', () => {
    const p = problem6({ all: false, default: false }, [BR_A]);
    assert.deepEqual(p?.devices, [BR_A]);
    assert.equal(p?.ipv6Off, true);
    assert.deepEqual(p?.networks, ['aaaaaaaa0000', 'v6net'].sort());
    assert.match(p?.message ?? '', /^IPv4 forwarding is off on .*\. IPv6 forwarding is off /);
  });

  it('serve --ipv6-forwarding: one shared action turns it on while a network with IPv6 has a way out, naming them and what was found off', () => {
    const [a, ...rest] = planIpv6Forwarding(withV6, { ipv6Forwarding: { all: false, default: false } });
    assert.deepEqual(rest, []);
    assert.equal(a?.kind, 'sysctl.ipv6_forwarding');
    assert.deepEqual(a?.owner, { networkId: null, endpointId: null });
    assert.equal(a?.reason, 'drifted');
    assert.equal(a?.detail, 'on expected (serve --ipv6-forwarding: v6net reach beyond the host over IPv6), found net.ipv6.conf.default.forwarding = 0, net.ipv6.conf.all.forwarding = 0');
    // `default` alone off: Docker sets it too (links made later forward from the start).
    assert.match(planIpv6Forwarding(withV6, { ipv6Forwarding: { all: true, default: false } })[0]?.detail ?? '', /found net\.ipv6\.conf\.default\.forwarding = 0$/);
    // The bridge need not exist yet: a network created in the same pass gets it.
    assert.equal(planIpv6Forwarding(given({ type: 'CreateNetwork', spec: v6(NET_6, 10) }), { ipv6Forwarding: { all: false, default: true } }).length, 1);
  });

  it('serve --ipv6-forwarding: nothing when on, not read (the model), or no network with IPv6 and a way out (IPv4 only, --internal)', () => {
    assert.deepEqual(planIpv6Forwarding(withV6, { ipv6Forwarding: { all: true, default: true } }), []);
    assert.deepEqual(planIpv6Forwarding(withV6, {}), []);
    const internalOnly = given({ type: 'CreateNetwork', spec: networkSpec(NET_A) }, { type: 'CreateNetwork', spec: v6(NET_6I, 11, true) });
    assert.deepEqual(planIpv6Forwarding(internalOnly, { ipv6Forwarding: { all: false, default: false } }), []);
  });
});
