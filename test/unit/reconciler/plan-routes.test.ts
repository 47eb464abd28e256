// A network's connected subnet route deleted by hand (and, at the end, a bridge's accept_ra) is drift like the rest: the full observe
// reads the routes (kernel/observe.ts), and the plan puts a missing one back (plan.ts). Fixtures
// are of one namespace (fixtures/ip/README.md, `bridge-route-deleted`): ledgernet's bridges
// `lnb-aaaa` (its routes) and `lnb-bbbb` (both of its subnet routes deleted), and `br-other`
// (no alias of ours, its route deleted), an uplink `eth0` with the default route.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { afterLinkChanges, ipLines, parseAddrs, parseLinks, parseRoutes } from '../../../src/kernel/index.ts';
import type { KernelSnapshot, Route } from '../../../src/kernel/types.ts';
import type { Action } from '../../../src/reconciler/actions.ts';
import { describeAction } from '../../../src/reconciler/actions.ts';
import { afterActions, applyActions } from '../../../src/reconciler/apply.ts';
import type { DesiredBridge } from '../../../src/reconciler/desired.ts';
import { planObjects } from '../../../src/reconciler/plan.ts';
import { renderPlan, symbol } from '../../../src/reconciler/render.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';
import { readFixture } from '../../helpers/fixtures.ts';

const observed = (): KernelSnapshot => ({
  links: parseLinks(readFixture('ip/link-show.bridge-route-deleted.json')),
  addrs: parseAddrs(readFixture('ip/addr-show.bridge-route-deleted.json')),
  routes: [...parseRoutes(readFixture('ip/route-show.bridge-route-deleted.json'), 4), ...parseRoutes(readFixture('ip/route-show6.bridge-route-deleted.json'), 6)],
  filter: { name: 'filter', chains: {} },
  nat: { name: 'nat', chains: {} },
  filter6: null,
  routeLocalnet: {},
  qdiscs: [],
  ingressRedirects: {},
});

const bridge = (id: string, name: string, addrs: string[]): DesiredBridge => ({
  networkId: id,
  name,
  alias: `ledgernet:network:${id}`,
  mtu: 1500,
  addrs,
  routeLocalnet: false,
  linkLocal: true,
  foreignIpv4: false,
});
const A = bridge('aaaaaaaaaaaaaaaa', 'lnb-aaaa', ['10.231.80.1/24', 'fd00:0:0:1::1/64']);
const B = bridge('bbbbbbbbbbbbbbbb', 'lnb-bbbb', ['10.231.81.1/24', 'fd00:0:0:2::1/64']);

function planOf(bridges: DesiredBridge[], s: KernelSnapshot): Action[] {
  return planObjects(bridges, [], new Map(s.links.map((l) => [l.name, l])), s).actions;
}

describe('plan: a bridge subnet route deleted by hand', () => {
  it('puts back the missing IPv4 and IPv6 subnet routes of an up bridge with its addresses, and nothing else', () => {
    const actions = planOf([A, B], observed());
    assert.deepEqual(actions.map(describeAction), ['route.add 10.231.81.0/24 dev lnb-bbbb (drifted: deleted (the kernel makes it only when the address is added or the bridge comes up))', 'route.add fd00:0:0:2::/64 dev lnb-bbbb (drifted: deleted (the kernel makes it only when the address is added or the bridge comes up))']);
    assert.deepEqual(actions[0], { kind: 'route.add', dev: 'lnb-bbbb', dst: '10.231.81.0/24', src: '10.231.81.1', owner: { networkId: B.networkId, endpointId: null }, reason: 'drifted', detail: 'deleted (the kernel makes it only when the address is added or the bridge comes up)' });
  });

  it('applies them as the kernel makes them: proto kernel, IPv4 scope link from the gateway, IPv6 metric 256', () => {
    const lines = planOf([B], observed()).flatMap((a) => (a.kind === 'route.add' ? ipLines(a) : []));
    assert.deepEqual(lines, ['route replace 10.231.81.0/24 dev lnb-bbbb proto kernel scope link src 10.231.81.1', 'route replace fd00:0:0:2::/64 dev lnb-bbbb proto kernel metric 256']);
  });

  it('never plans a route for a bridge that is not ours, even under a name a network wants', () => {
    const other = bridge('cccccccccccccccc', 'br-other', ['10.231.90.1/24']);
    const actions = planOf([other], observed());
    assert.deepEqual(actions.map((a) => a.kind), ['link.conflict']);
  });

  it('is not route drift when the bridge is down or lacks its address: the link and address repair come first', () => {
    const s = observed();
    const down = { ...s, links: s.links.map((l) => (l.name === 'lnb-bbbb' ? { ...l, up: false } : l)) };
    assert.deepEqual(planOf([B], down).map(describeAction), ['link.set lnb-bbbb (drifted: up expected, down found)']);
    const noV4 = { ...s, addrs: s.addrs.filter((a) => a.cidr !== '10.231.81.1/24') };
    assert.deepEqual(planOf([B], noV4).map(describeAction), ['addr.add lnb-bbbb 10.231.81.1/24 (missing)', 'route.add fd00:0:0:2::/64 dev lnb-bbbb (drifted: deleted (the kernel makes it only when the address is added or the bridge comes up))']);
  });

  it('leaves alone a route to the subnet through another device (the operator moved it), and reports it as a conflict', () => {
    const s = observed();
    const moved: Route[] = [...(s.routes ?? []), { family: 4, dst: '10.231.81.0/24', dev: 'eth0' }, { family: 6, dst: 'fd00:0:0:2::/64', dev: null }];
    const actions = planOf([B], { ...s, routes: moved });
    assert.deepEqual(actions.map((a) => [a.kind, a.reason, symbol(a)]), [['route.conflict', 'conflict', '!'], ['route.conflict', 'conflict', '!']]);
    assert.deepEqual(actions[0], {
      kind: 'route.conflict',
      dev: 'lnb-bbbb',
      dst: '10.231.81.0/24',
      found: ['eth0'],
      owner: { networkId: B.networkId, endpointId: null },
      reason: 'conflict',
      detail:
        "the route to 10.231.81.0/24 goes through eth0, not lnb-bbbb: someone else's, left alone; the host and published ports reach network bbbbbbbbbbbb's containers through it until it is removed (ip route del 10.231.81.0/24 dev eth0), then ledgernet puts its own back",
    });
    assert.match(describeAction(actions[1]!), /^route\.conflict fd00:0:0:2::\/64 dev lnb-bbbb \(conflict: the route to fd00:0:0:2::\/64 goes through no device \(blackhole, unreachable or prohibit\), not lnb-bbbb: .*\(ip route del fd00:0:0:2::\/64\)/);
    // Ours there as well (another metric): nothing to say.
    const both: Route[] = [...moved, { family: 4, dst: '10.231.81.0/24', dev: 'lnb-bbbb' }, { family: 6, dst: 'fd00:0:0:2::/64', dev: 'lnb-bbbb' }];
    assert.deepEqual(planOf([B], { ...s, routes: both }), []);
  });

  it("names a foreign link with an address on a network's subnet (a Docker bridge network created on it afterwards) as a conflict; routes via a gateway are not", () => {
    const s = observed();
    const clash = { ...s, addrs: [...s.addrs, { dev: 'br-other', family: 'inet' as const, cidr: '10.231.81.1/24', scope: 'global' }] };
    const actions = planOf([B], clash).filter((a) => a.kind === 'route.conflict');
    assert.equal(actions.length, 1);
    assert.match(describeAction(actions[0]!), /^route\.conflict 10\.231\.81\.0\/24 dev lnb-bbbb \(conflict: interface br-other \(10\.231\.81\.1\/24\) is on network bbbbbbbbbbbb's subnet 10\.231\.81\.0\/24, and ledgernet does not own it/);
    // A broad route through a gateway (a VPN's) is no address on the subnet: nothing to say.
    const vpn = { ...s, routes: [...(s.routes ?? []), { family: 4 as const, dst: '10.0.0.0/8', dev: 'eth0' }] };
    assert.deepEqual(planOf([B], vpn).filter((a) => a.kind === 'route.conflict'), []);
  });

  it('a route conflict is applied as nothing and fails nothing: the network works, the route is only reported', async () => {
    const s = observed();
    const moved: Route[] = [...(s.routes ?? []), { family: 4, dst: '10.231.81.0/24', dev: 'eth0' }];
    const actions = planOf([B], { ...s, routes: moved }).filter((a) => a.kind === 'route.conflict');
    assert.equal(actions.length, 1);
    const r = await applyActions(actions, new FakeKernel());
    assert.deepEqual([r.applied, r.failures], [[], []]);
  });

  it('plans no route against a snapshot without routes: the model Docker calls plan against drops them', () => {
    const s = observed();
    const { routes: _routes, ...unread } = s;
    assert.deepEqual(planOf([A, B], unread), []);
    const model = afterActions(s, []);
    assert.ok(model !== null && !('routes' in model));
  });
});

describe('plan: inhibit_ipv4 (the IPv4 addresses on the bridge are the operator\'s)', () => {
  // lnb-aaaa carries 10.231.80.1/24 and fd00:0:0:1::1/64 with their routes (the fixture).
  const inhibited = (foreignIpv4: boolean): DesiredBridge => ({ ...bridge('aaaaaaaaaaaaaaaa', 'lnb-aaaa', ['fd00:0:0:1::1/64']), foreignIpv4 });

  it('keeps an IPv4 address found on the bridge, plans no route for it, and still keeps the IPv6 gateway', () => {
    assert.deepEqual(planOf([inhibited(true)], observed()).map(describeAction), []);
  });

  it('without it, the same address is an orphan and is removed', () => {
    assert.deepEqual(
      planOf([inhibited(false)], observed()).map((a) => [a.kind, 'cidr' in a ? a.cidr : '']),
      [['addr.del', '10.231.80.1/24']],
    );
  });

  it('an IPv6 address ledgernet did not put there is still removed', () => {
    const v4only = { ...bridge('aaaaaaaaaaaaaaaa', 'lnb-aaaa', []), foreignIpv4: true };
    assert.deepEqual(
      planOf([v4only], observed()).map((a) => [a.kind, 'cidr' in a ? a.cidr : '']),
      [['addr.del', 'fd00:0:0:1::1/64']],
    );
  });
});

// A bridge of ledgernet's must not take IPv6 router advertisements from its containers
// (CVE-2020-13401: a container with CAP_NET_RAW could become the host's IPv6 router). A bridge is
// made with accept_ra 0 (kernel/run-kernel.ts); one found taking them (made by an older ledgernet,
// or set by hand) is put back by the plan.
const withRa = (acceptRa: Record<string, boolean>): KernelSnapshot => ({ ...observed(), acceptRa });
const raPlan = (bridges: DesiredBridge[], s: KernelSnapshot): Action[] => planOf(bridges, s).filter((a) => a.kind === 'bridge.accept_ra');
const make = (name: string, alias: string) => ({ kind: 'bridge.create' as const, name, alias, mtu: 1500, owner: { networkId: alias, endpointId: null }, reason: 'missing' as const });

describe('plan: a bridge that takes router advertisements', () => {
  it("puts accept_ra back to 0 on ledgernet's bridges found with it on, shown as drift; never on a link that is not ours", () => {
    const actions = raPlan([A, B], withRa({ 'lnb-aaaa': true, 'lnb-bbbb': false, 'br-other': true }));
    assert.deepEqual(actions.map(describeAction), ['bridge.accept_ra lnb-aaaa (drifted: accept_ra 0 expected, found on: the host would take router advertisements from its containers)']);
    assert.match(renderPlan(actions, { color: false }), /^ *~ bridge\.accept_ra lnb-aaaa \(drifted/m);
  });

  it('not read (the links read with processes, or a bridge the read does not know): nothing planned', () => {
    assert.deepEqual(raPlan([A, B], observed()), []);
    assert.deepEqual(raPlan([A, B], withRa({})), []);
  });

  it('applied through the kernel, and the model then knows it off; a bridge made in the model is known off too', async () => {
    const s = withRa({ 'lnb-aaaa': true });
    const k = new FakeKernel();
    const actions = raPlan([A], s);
    await k.applyLinks([make('lnb-aaaa', A.alias)]);
    const done = await applyActions(actions, k);
    assert.deepEqual(done.failures, []);
    assert.deepEqual(k.calls.filter((c) => c.kind === 'setAcceptRaOff'), [{ kind: 'setAcceptRaOff', bridges: ['lnb-aaaa'] }]);
    assert.equal(afterActions(s, done.applied)?.acceptRa?.['lnb-aaaa'], false);
    const made = afterLinkChanges(withRa({}), [make('lnb-new', 'ledgernet:network:c')]);
    assert.equal(made.acceptRa?.['lnb-new'], false);
    assert.equal(afterLinkChanges(observed(), [make('lnb-new', 'x')]).acceptRa, undefined, 'not read: still not known');
  });
});
