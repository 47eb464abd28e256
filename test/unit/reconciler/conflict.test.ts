// Foreign links (issue 9, finding 3): a link that does not carry the wanted `ledgernet:` alias
// is never changed or deleted, whatever its name; the network or endpoint that wants the name is
// reported in conflict instead. Pure plan over the fake kernel.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from '../../../src/events/domain/commands.ts';
import { emptyState, type State } from '../../../src/events/domain/types.ts';
import type { Link } from '../../../src/kernel/types.ts';
import { CREATE_GROUP, actionKey, type Action } from '../../../src/reconciler/actions.ts';
import { ipLines, isLinkChange } from '../../../src/kernel/index.ts';
import { applyActions } from '../../../src/reconciler/apply.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { isOwnedLink, plan } from '../../../src/reconciler/plan.ts';
import { planJson, renderPlan } from '../../../src/reconciler/render.ts';
import { EP_1, EP_2, NET_A, NET_B, endpointSpec, given, networkSpec } from '../../helpers/events.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';

const CUSTOM = 'wg0';
const BR_B = 'lnb-bbbbbbbb111';
const VETH_1 = 'lnv-e1e1e1e1222';
const PEER_1 = 'lnp-e1e1e1e1222';
const netA: Command = { type: 'CreateNetwork', spec: { ...networkSpec(NET_A), bridge: CUSTOM } };
const netB: Command = { type: 'CreateNetwork', spec: networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24') };
const ep1: Command = { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) };
const ep2: Command = { type: 'CreateEndpoint', spec: endpointSpec(NET_B, EP_2, '10.231.8.2/24') };
const join1: Command = { type: 'Join', networkId: NET_A, endpointId: EP_1, sandboxKey: '/var/run/docker/netns/abc' };
const egress: Command = {
  type: 'CreateNetwork',
  spec: { ...networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24'), options: { 'ledgernet.egress_rate': '4mbit' } },
};

const planFor = async (state: State, k: FakeKernel) => plan(desiredFromState(state), await k.observe());
const summary = (actions: readonly Action[]) => actions.map((a) => `${a.kind} ${actionKey(a)} (${a.reason})`);
/** Without the firewall: with its only network in conflict, ledgernet's chains are simply removed. */
const linkWork = (actions: readonly Action[]) => summary(actions.filter((a) => !('table' in a)));

async function converge(state: State, k: FakeKernel): Promise<void> {
  const res = await applyActions(await planFor(state, k), k);
  assert.deepEqual(res.failures, []);
  assert.deepEqual(await planFor(state, k), [], 'converged');
}

/** Every trace of ledgernet in the kernel: link names that are ours, rules naming a link. */
function rulesNaming(k: FakeKernel, name: string): string[] {
  return [...k.chains.values(), ...k.nat.values(), ...k.filter6.values()].flatMap((c) => c.rules).filter((r) => r.includes(` ${name} `));
}

/** The operator's link, exactly as it was made: nothing of ours on it. */
function assertUntouched(k: FakeKernel, name: string, index: number, alias: string | null = null): void {
  const l = k.links.get(name);
  assert.ok(l, `${name} still exists`);
  assert.equal(l.index, index, `${name} was not recreated`);
  assert.equal(l.alias, alias, `${name} keeps its alias`);
  assert.equal(l.group, 'default');
  assert.equal(l.master, null);
  assert.deepEqual(k.addrs.filter((a) => a.dev === name), [], `no address on ${name}`);
  assert.equal(k.localnet.get(name), undefined, `no route_localnet on ${name}`);
  assert.deepEqual(rulesNaming(k, name), [], `no rule names ${name}`);
  assert.ok(![...k.links.values()].some((o) => o.master === name), `nothing enslaved to ${name}`);
}

/** Our bridge vanished (removed by hand, or a reboot) and the operator's link took its name. */
function foreignTakesOver(k: FakeKernel, link: Partial<Link> = {}): number {
  k.links.delete(CUSTOM);
  k.addrs = k.addrs.filter((a) => a.dev !== CUSTOM);
  for (const l of k.links.values()) if (l.master === CUSTOM) l.master = null;
  k.addLink({ name: CUSTOM, kind: 'wireguard', ...link });
  return k.links.get(CUSTOM)!.index;
}

describe('foreign links: a custom bridge name taken after CreateNetwork', () => {
  it('reports a conflict, and leaves the link, its address, master and rules alone', async () => {
    const k = new FakeKernel();
    const state = given(netA, netB, ep1, ep2, join1);
    await converge(given(netA, netB, ep1, ep2), k);
    // Docker moved the peer into the container.
    k.links.delete(PEER_1);
    k.links.get(VETH_1)!.peer = null;
    k.links.get(VETH_1)!.peerInOtherNetns = true;
    const index = foreignTakesOver(k);

    const actions = await planFor(state, k);
    assert.deepEqual(summary(actions.filter((a) => a.owner.networkId === NET_A)), ['link.conflict wg0 (conflict)']);
    const conflict = actions.find((a) => a.kind === 'link.conflict');
    assert.ok(conflict?.kind === 'link.conflict');
    assert.deepEqual(conflict.found, { index, kind: 'wireguard', alias: null });
    assert.match(conflict.detail ?? '', /wireguard link wg0 \(ifindex \d+, no ifalias\) is not ledgernet's and is left alone/);
    assert.match(conflict.detail ?? '', /renamed or deleted, or the network is removed \(docker network rm aaaaaaaa0000\)/);
    // The rules of the network in conflict go; the other network's stay.
    const forward = actions.find((a) => a.kind === 'chain.write' && a.table === 'filter' && a.chain === 'LEDGERNET-FORWARD');
    assert.ok(forward?.kind === 'chain.write');
    assert.ok(!forward.rules.some((r) => r.includes(CUSTOM)), 'no rule for wg0');
    assert.ok(forward.rules.some((r) => r.includes(`-j LEDGERNET-EARLY-${BR_B.charAt(4)}`)));
    const deleted = actions.flatMap((a) => (a.kind === 'chain.delete' ? [a.chain] : []));
    assert.deepEqual(deleted.sort(), ['LEDGERNET-ING-aaaaaaaa0000', 'LEDGERNET-LAN-aaaaaaaa0000'], "A's own chains go, B's stay");

    const res = await applyActions(actions, k);
    assert.deepEqual(res.failures.map((f) => f.action.kind), ['link.conflict']);
    assertUntouched(k, CUSTOM, index);
    assert.equal(k.links.get(VETH_1)?.master, null, 'the veth is not enslaved to the foreign link');
    assert.equal(k.links.get(BR_B)?.alias, `ledgernet:network:${NET_B}`, 'the other network is untouched');
    // Stable: the next pass plans the conflict again and nothing else.
    assert.deepEqual(summary(await planFor(state, k)), ['link.conflict wg0 (conflict)']);

    // The dry-run line says which link blocks which network and what to do.
    const text = renderPlan(await planFor(state, k));
    assert.match(text, /^network aaaaaaaa0000\n {2}! link\.conflict wg0 \(conflict: wireguard link wg0 .*\(docker network rm aaaaaaaa0000\)\)$/m);
    assert.match(text, /1 conflict left alone \(1 action\)/);
    assert.deepEqual(planJson(await planFor(state, k)).summary, { add: 0, change: 0, remove: 0, conflict: 1 });

    // The operator deletes the link: the network converges again (bridge, address, master, rules).
    k.links.delete(CUSTOM);
    await converge(state, k);
    assert.equal(k.links.get(CUSTOM)?.alias, `ledgernet:network:${NET_A}`);
    assert.equal(k.links.get(VETH_1)?.master, CUSTOM);
    assert.deepEqual(k.addrs.filter((a) => a.dev === CUSTOM).map((a) => a.cidr), ['10.231.7.1/24']);
    assert.ok(rulesNaming(k, CUSTOM).length > 0);
  });

  it('a link with someone else\'s alias is foreign too; removing the network never deletes it', async () => {
    const k = new FakeKernel();
    await converge(given(netA, ep1), k);
    const index = foreignTakesOver(k, { kind: 'bridge', alias: 'operator: LAN bridge' });
    assert.deepEqual(linkWork(await planFor(given(netA, ep1), k)), ['link.conflict wg0 (conflict)']);
    // docker network rm: our veth pair goes (deleting one end), the foreign bridge stays.
    const actions = await planFor(emptyState, k);
    assert.deepEqual(linkWork(actions), [`link.delete ${PEER_1} (orphan)`]);
    await applyActions(actions, k);
    assertUntouched(k, CUSTOM, index, 'operator: LAN bridge');
    assert.deepEqual(await planFor(emptyState, k), []);
  });

  it('new endpoints are not created on a network in conflict; their veths are not enslaved', async () => {
    const k = new FakeKernel();
    await converge(given(netA), k);
    const index = foreignTakesOver(k, { kind: 'dummy' });
    const actions = await planFor(given(netA, ep1), k);
    assert.deepEqual(linkWork(actions), ['link.conflict wg0 (conflict)']);
    assert.ok(actions.every((a) => a.kind === 'link.conflict' || a.reason === 'orphan'), 'only our own chains are removed');
    await applyActions(actions, k);
    assert.equal(k.links.has(VETH_1), false);
    assertUntouched(k, CUSTOM, index);
  });

  it('a joined endpoint whose veth vanished on a network in conflict is still reported lost', async () => {
    const k = new FakeKernel();
    await converge(given(netA, ep1), k);
    foreignTakesOver(k);
    k.links.delete(VETH_1);
    k.links.delete(PEER_1);
    const actions = await planFor(given(netA, ep1, join1), k);
    assert.deepEqual(linkWork(actions), [`endpoint.lost ${VETH_1} (vanished)`, 'link.conflict wg0 (conflict)']);
  });

  it('a leftover of ours (another ledgernet alias) under the name is replaced, in one pass', async () => {
    const k = new FakeKernel();
    await converge(given(netA), k);
    foreignTakesOver(k, { kind: 'bridge', alias: `ledgernet:network:${'f'.repeat(64)}` });
    const actions = await planFor(given(netA), k);
    const create = actions.find((a) => a.kind === 'bridge.create');
    assert.ok(create?.kind === 'bridge.create');
    assert.deepEqual(create.replaces, [CUSTOM]);
    assert.equal(ipLines(create)[0], `link del dev ${CUSTOM}`);
    assert.ok(!actions.some((a) => a.kind === 'link.delete'), 'not deleted twice');
    const res = await applyActions(actions, k);
    assert.deepEqual(res.failures, []);
    assert.deepEqual(await planFor(given(netA), k), []);
    assert.equal(k.links.get(CUSTOM)?.alias, `ledgernet:network:${NET_A}`);
  });
});

describe('foreign links: names like ours without our alias', () => {
  it('lnb-/lnv-/lnp-/lni- links without a ledgernet alias are not orphans; ones with it are', async () => {
    const k = new FakeKernel();
    k.addLink({ name: 'lnb-0123456789a', kind: 'bridge' });
    k.addLink({ name: 'lnv-0123456789a', kind: 'veth', alias: 'someone else' });
    k.addLink({ name: 'lnp-0123456789a', kind: 'dummy' });
    k.addLink({ name: 'lni-0123456789a', kind: 'ifb' });
    k.addLink({ name: 'lnb-fedcba98765', kind: 'bridge', alias: `ledgernet:network:${'f'.repeat(64)}` });
    k.addLink({ name: 'oddname', kind: 'dummy', alias: `ledgernet:endpoint:${'f'.repeat(64)}` });
    assert.deepEqual(summary(await planFor(emptyState, k)), ['link.delete lnb-fedcba98765 (orphan)', 'link.delete oddname (orphan)']);
    assert.equal(isOwnedLink(k.links.get('lnb-0123456789a')!), false);
  });

  it('a host-side veth name held by a foreign link: the endpoint is in conflict, the link untouched', async () => {
    const k = new FakeKernel();
    k.addLink({ name: VETH_1, kind: 'dummy' });
    const index = k.links.get(VETH_1)!.index;
    const state = given(netB, { type: 'CreateEndpoint', spec: endpointSpec(NET_B, EP_1, '10.231.8.2/24') });
    const actions = await planFor(state, k);
    const conflict = actions.find((a) => a.kind === 'link.conflict');
    assert.deepEqual(conflict?.owner, { networkId: NET_B, endpointId: EP_1 });
    assert.match(conflict?.detail ?? '', /endpoint e1e1e1e12222 \(network bbbbbbbb1111\) cannot be set up/);
    assert.ok(!actions.some((a) => a.kind !== 'link.conflict' && 'name' in a && a.name === VETH_1));
    await applyActions(actions, k);
    assertUntouched(k, VETH_1, index);
    assert.equal(k.links.get(BR_B)?.kind, 'bridge', 'the network itself is set up');
  });

  it('the container-side name or the ifb name held by a foreign link: conflict, nothing redirected to it', async () => {
    const k = new FakeKernel();
    k.addLink({ name: 'lnp-e2e2e2e2333', kind: 'dummy' });
    const peerIndex = k.links.get('lnp-e2e2e2e2333')!.index;
    const peerActions = await planFor(given(netB, ep2), k);
    assert.deepEqual(summary(peerActions.filter((a) => a.owner.endpointId === EP_2)), ['link.conflict lnp-e2e2e2e2333 (conflict)']);
    await applyActions(peerActions, k);
    assertUntouched(k, 'lnp-e2e2e2e2333', peerIndex);

    const k2 = new FakeKernel();
    k2.addLink({ name: 'lni-e2e2e2e2333', kind: 'dummy' });
    const ifbIndex = k2.links.get('lni-e2e2e2e2333')!.index;
    const state = given(egress, ep2);
    const actions = await planFor(state, k2);
    assert.ok(actions.some((a) => a.kind === 'link.conflict' && a.name === 'lni-e2e2e2e2333'));
    assert.ok(!actions.some((a) => a.kind === 'redirect.set' || a.kind === 'ifb.create'));
    await applyActions(actions, k2);
    assertUntouched(k2, 'lni-e2e2e2e2333', ifbIndex);
    assert.deepEqual(k2.ingress.get('lnv-e2e2e2e2333') ?? [], []);
  });
});

describe('crash recovery: a link created but not yet labelled', () => {
  it('creates links in ledgernet\'s group and labels them (back to group default) in the next line', () => {
    const state = given(egress, ep2);
    const lines = plan(desiredFromState(state), {
      links: [],
      addrs: [],
      filter: { name: 'filter', chains: {} },
      nat: { name: 'nat', chains: {} },
      filter6: null,
      routeLocalnet: {},
      qdiscs: [],
      ingressRedirects: {},
    })
      .filter((a) => isLinkChange(a))
      .flatMap(ipLines);
    const adds = lines.filter((l) => l.startsWith('link add'));
    assert.equal(adds.length, 3);
    for (const l of adds) assert.ok(l.includes(` group ${CREATE_GROUP} `), l);
    for (const l of lines.filter((x) => / alias /.test(x))) assert.match(l, / alias ledgernet:\S+ group default( |$)/);
  });

  it('adopts links left unlabelled by a crash between `link add` and `link set … alias`', async () => {
    const state = given(egress, ep2);
    const k = new FakeKernel();
    const first = await planFor(state, k);
    // Only the `link add` lines ran: the daemon died before the next ones.
    k.crashAfterLinkAdd(first.filter((a) => isLinkChange(a)));
    assert.ok([...k.links.values()].every((l) => l.alias === null && l.group === CREATE_GROUP));
    const again = await planFor(state, k);
    assert.ok(!again.some((a) => a.kind === 'link.conflict' || a.kind === 'link.delete' || a.kind.endsWith('.create')), summary(again).join('\n'));
    assert.deepEqual(
      again.filter((a) => a.kind === 'link.set' && a.alias !== undefined).map((a) => actionKey(a)).sort(),
      [BR_B, 'lni-e2e2e2e2333', 'lnp-e2e2e2e2333', 'lnv-e2e2e2e2333'],
    );
    const res = await applyActions(again, k);
    assert.deepEqual(res.failures, []);
    assert.deepEqual(await planFor(state, k), []);
    assert.ok([...k.links.values()].every((l) => l.alias?.startsWith('ledgernet:') && l.group === 'default'));
  });

  it('an unlabelled leftover that nothing wants is an orphan; an operator link in the default group is not', async () => {
    const k = new FakeKernel();
    k.addLink({ name: 'lnb-0123456789a', kind: 'bridge', group: CREATE_GROUP });
    k.addLink({ name: 'lnb-fedcba98765', kind: 'bridge' });
    assert.deepEqual(summary(await planFor(emptyState, k)), ['link.delete lnb-0123456789a (orphan)']);
  });
});
