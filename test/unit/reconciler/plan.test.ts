import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decide } from '../../../src/events/domain/decide.ts';
import { fold } from '../../../src/events/domain/evolve.ts';
import { eventHash } from '../../../src/events/log/hash.ts';
import type { Command } from '../../../src/events/domain/commands.ts';
import { emptyState, type State, type StoredEvent } from '../../../src/events/domain/types.ts';
import { applyActions } from '../../../src/reconciler/apply.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { plan } from '../../../src/reconciler/plan.ts';
import { renderPlan } from '../../../src/reconciler/render.ts';
import { EP_1, EP_2, NET_A, NET_B, endpointSpec, given, networkSpec } from '../../helpers/events.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';
import { assertGolden } from '../../helpers/golden.ts';


const netA: Command = { type: 'CreateNetwork', spec: networkSpec(NET_A) };
const netB: Command = { type: 'CreateNetwork', spec: networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24') };
const ep1: Command = { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) };
const ep2: Command = { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_2, '10.231.7.3/24') };
const join1: Command = { type: 'Join', networkId: NET_A, endpointId: EP_1, sandboxKey: '/var/run/docker/netns/abc' };

async function converge(state: State, k: FakeKernel): Promise<void> {
  const actions = plan(desiredFromState(state), await k.observe());
  const res = await applyActions(actions, k);
  assert.deepEqual(res.failures, []);
}

function withForeignObjects(k: FakeKernel): FakeKernel {
  k.addLink({ name: 'lo', kind: null, mtu: 65536 });
  k.addLink({ name: 'docker0', kind: 'bridge' });
  k.addLink({ name: 'vethdocker1', kind: 'veth', master: 'docker0', peerInOtherNetns: true });
  k.addrs.push({ dev: 'docker0', cidr: '172.17.0.1/16', family: 'inet', scope: 'global' });
  k.chains.set('DOCKER-USER', { policy: null, rules: ['-j RETURN'] });
  k.chains.get('FORWARD')!.rules.push('-j DOCKER-USER');
  return k;
}

describe('plan', () => {
  it('plans nothing for nothing, and ignores objects it does not own', async () => {
    const k = withForeignObjects(new FakeKernel());
    assert.deepEqual(plan(desiredFromState(emptyState), await k.observe()), []);
  });

  it('creates a network with two endpoints (golden)', async () => {
    const k = withForeignObjects(new FakeKernel());
    const actions = plan(desiredFromState(given(netA, ep1, ep2)), await k.observe());
    assertGolden('plans/net=1,eps=2,actual=empty.json', actions);
    assertGolden('plans/net=1,eps=2,actual=empty.txt', renderPlan(actions));
  });

  it('converges: after applying the plan the next plan is empty', async () => {
    const k = withForeignObjects(new FakeKernel());
    await converge(given(netA, netB, ep1, ep2), k);
    // Docker moves the peer into the container; the host end stays, so nothing is planned.
    const state = given(netA, netB, ep1, ep2, join1);
    k.links.delete('lnp-e1e1e1e1222');
    k.links.get('lnv-e1e1e1e1222')!.peer = null;
    k.links.get('lnv-e1e1e1e1222')!.peerInOtherNetns = true;
    assert.deepEqual(plan(desiredFromState(state), await k.observe()), []);
    assert.equal(k.links.get('lnv-e1e1e1e1222')?.master, 'lnb-aaaaaaaa000');
    assert.deepEqual(k.chains.get('FORWARD')?.rules, ['-j DOCKER-USER', '-m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD']);
  });

  it('removes orphans once per veth pair, and the chain and hook when no network is left', async () => {
    const k = withForeignObjects(new FakeKernel());
    await converge(given(netA, ep1), k);
    const actions = plan(desiredFromState(emptyState), await k.observe());
    assertGolden('plans/net=0,actual=net1-ep1.json', actions);
    await applyActions(actions, k);
    assert.deepEqual([...k.links.keys()].sort(), ['docker0', 'lo', 'vethdocker1']);
    assert.equal(k.chains.has('LEDGERNET-FORWARD'), false);
    assert.deepEqual(k.chains.get('FORWARD')?.rules, ['-j DOCKER-USER']);
    assert.deepEqual(k.chains.get('DOCKER-USER')?.rules, ['-j RETURN']);
  });

  it('reports a joined endpoint whose veth vanished as lost, and recreates an unjoined one', async () => {
    const k = new FakeKernel();
    await converge(given(netA, ep1, ep2), k);
    const state = given(netA, ep1, ep2, join1);
    k.links.delete('lnv-e1e1e1e1222');
    k.links.delete('lnp-e1e1e1e1222');
    k.links.delete('lnv-e2e2e2e2333');
    k.links.delete('lnp-e2e2e2e2333');
    const actions = plan(desiredFromState(state), await k.observe());
    assert.deepEqual(
      actions.map((a) => `${a.kind} ${'name' in a ? a.name : ''}`),
      ['veth.create lnv-e2e2e2e2333', 'endpoint.lost lnv-e1e1e1e1222'],
    );
  });

  it('repairs drift: mtu, master, down link, missing address, edited chain, missing hook', async () => {
    const k = new FakeKernel();
    const state = given(netA, ep1);
    await converge(state, k);
    const veth = k.links.get('lnv-e1e1e1e1222')!;
    veth.master = null;
    veth.up = false;
    k.links.get('lnb-aaaaaaaa000')!.mtu = 1400;
    k.addrs = [];
    k.chains.get('LEDGERNET-FORWARD')!.rules = ['-j DROP'];
    k.chains.get('FORWARD')!.rules = [];
    const actions = plan(desiredFromState(state), await k.observe());
    assertGolden('plans/net=1,eps=1,actual=drifted.txt', renderPlan(actions));
    await applyActions(actions, k);
    assert.deepEqual(plan(desiredFromState(state), await k.observe()), []);
  });

  it('is sorted and deterministic', async () => {
    const k = new FakeKernel();
    const state = given(netB, netA, ep2, ep1);
    const a1 = plan(desiredFromState(state), await k.observe());
    const a2 = plan(desiredFromState(state), await k.observe());
    assert.deepEqual(a1, a2);
    const kinds = a1.map((a) => a.kind);
    assert.ok(kinds.indexOf('bridge.create') < kinds.indexOf('veth.create'));
    assert.ok(kinds.indexOf('chain.write') < kinds.indexOf('hook.add'));
  });

  it('property: from any kernel mess, apply(plan) converges and a second plan is empty', async () => {
    const cmds = [netA, netB, ep1, ep2, join1];
    await fc.assert(
      fc.asyncProperty(
        fc.subarray(cmds.slice(0, 2), { minLength: 0 }),
        fc.boolean(),
        fc.array(fc.constantFrom('del-bridge', 'del-veth', 'down', 'mtu', 'stray', 'foreign', 'noaddr', 'nohook', 'chain'), { maxLength: 4 }),
        async (nets, withEps, damage) => {
          const state = given(...nets, ...(withEps && nets.includes(netA) ? [ep1, ep2] : []));
          const k = withForeignObjects(new FakeKernel());
          await converge(given(netA, netB, ep1, ep2), k);
          for (const d of damage) {
            if (d === 'del-bridge') k.removeLink('lnb-aaaaaaaa000');
            if (d === 'del-veth') (k.links.delete('lnv-e1e1e1e1222'), k.links.delete('lnp-e1e1e1e1222'));
            if (d === 'down' && k.links.has('lnb-bbbbbbbb111')) k.links.get('lnb-bbbbbbbb111')!.up = false;
            if (d === 'mtu' && k.links.has('lnv-e2e2e2e2333')) k.links.get('lnv-e2e2e2e2333')!.mtu = 9000;
            if (d === 'stray') k.addLink({ name: 'lnb-0123456789a', kind: 'bridge', alias: `ledgernet:network:${'f'.repeat(64)}` });
            // Named like ours, but without our alias: not ours, never touched.
            if (d === 'foreign' && !k.links.has('lnb-fffffffffff')) k.addLink({ name: 'lnb-fffffffffff', kind: 'bridge' });
            if (d === 'noaddr') k.addrs = k.addrs.filter((a) => a.dev !== 'lnb-bbbbbbbb111');
            if (d === 'nohook') k.chains.get('FORWARD')!.rules = ['-j DOCKER-USER'];
            if (d === 'chain') k.chains.set('LEDGERNET-OLD', { policy: null, rules: ['-j ACCEPT'] });
          }
          const first = plan(desiredFromState(state), await k.observe());
          const res = await applyActions(first, k);
          assert.deepEqual(res.failures, []);
          assert.deepEqual(plan(desiredFromState(state), await k.observe()), []);
          assert.deepEqual(k.chains.get('DOCKER-USER')?.rules, ['-j RETURN']);
          assert.ok(k.links.has('docker0') && k.links.has('vethdocker1'));
          assert.equal(k.links.has('lnb-0123456789a'), false, 'our stray bridge is removed');
          if (damage.includes('foreign')) assert.equal(k.links.get('lnb-fffffffffff')?.alias, null, 'the foreign one is left alone');
        },
      ),
      { numRuns: 200 },
    );
  });
});
