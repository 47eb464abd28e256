// A pass for Docker plans only the networks its intents touched (reconciler/scoped.ts). Property:
// for random states, intents and kernel messes, the scoped plan equals the full plan of the same
// state against the same model (so no network's work is missed and shared objects, the firewall's
// chains and hooks, come out the same), over the fake kernel, with both firewall backends; and the
// reconcile loop plans Docker's passes scoped and still converges.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Command } from '../../../src/events/domain/commands.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { evolve } from '../../../src/events/domain/evolve.ts';
import { emptyState, type NetworkSpec, type PortBinding, type State } from '../../../src/events/domain/types.ts';
import { iptablesFirewall, nftablesFirewall } from '../../../src/kernel/index.ts';
import type { FirewallBackend, KernelSnapshot } from '../../../src/kernel/types.ts';
import type { Action } from '../../../src/reconciler/actions.ts';
import { afterActions, applyActions } from '../../../src/reconciler/apply.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { Reconciler, type PassResult } from '../../../src/reconciler/loop.ts';
import { plan } from '../../../src/reconciler/plan.ts';
import { ScopedPlanner } from '../../../src/reconciler/scoped.ts';
import { endpointSpec, networkSpec, stamp } from '../../helpers/events.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';
import { withIpv6 } from '../../helpers/firewall-states.ts';

const netId = (i: number) => `${i}`.repeat(8) + 'a'.repeat(56);
const epId = (i: number) => `e${i}`.repeat(4) + 'b'.repeat(56);
const subnet = (n: number) => `10.77.${n}`;

/** Five networks with different policies: default, icc off + allow-list + IPv6, internal, rates, custom bridge + routed. */
function netSpec(n: number): NetworkSpec {
  const base = networkSpec(netId(n), `${subnet(n)}.0/24`, `${subnet(n)}.1/24`);
  switch (n) {
    case 1:
      return withIpv6({ ...base, options: { 'ledgernet.icc': 'false', 'ledgernet.allow': 'tcp/80,icmp' } }, 70 + n);
    case 2:
      return { ...base, internal: true };
    case 3:
      return { ...base, options: { 'ledgernet.ingress_rate': '10mbit', 'ledgernet.egress_rate': '5mbit' } };
    case 4:
      return { ...base, bridge: 'lnx-custom4', options: { 'ledgernet.bridge': 'lnx-custom4', 'com.docker.network.bridge.gateway_mode_ipv4': 'routed' } };
    default:
      return base;
  }
}

const tcp = (hostPort: number, port: number, hostIp = ''): PortBinding => ({ proto: 6, port, hostIp, hostPort, hostPortEnd: hostPort });
const PORTMAPS: readonly (readonly PortBinding[])[] = [[], [tcp(8080, 80)], [tcp(9000, 90), tcp(9001, 91)], [tcp(8443, 443, '127.0.0.1')]];

type Intent =
  | { op: 'net'; n: number }
  | { op: 'delnet'; n: number }
  | { op: 'ep'; e: number; n: number }
  | { op: 'join' | 'leave' | 'revoke' | 'delep' | 'lost'; e: number }
  | { op: 'program'; e: number; ports: number };

const NETS = 5;
const EPS = 8;
const intent: fc.Arbitrary<Intent> = fc.oneof(
  fc.record({ op: fc.constant('net' as const), n: fc.nat(NETS - 1) }),
  fc.record({ op: fc.constant('delnet' as const), n: fc.nat(NETS - 1) }),
  fc.record({ op: fc.constant('ep' as const), e: fc.nat(EPS - 1), n: fc.nat(NETS - 1) }),
  fc.record({ op: fc.constant('ep' as const), e: fc.nat(EPS - 1), n: fc.nat(NETS - 1) }),
  fc.record({ op: fc.constantFrom('join' as const, 'leave' as const, 'revoke' as const, 'delep' as const, 'lost' as const), e: fc.nat(EPS - 1) }),
  fc.record({ op: fc.constant('program' as const), e: fc.nat(EPS - 1), ports: fc.nat(PORTMAPS.length - 1) }),
);

function command(state: State, i: Intent): Command | null {
  if (i.op === 'net') return { type: 'CreateNetwork', spec: netSpec(i.n) };
  if (i.op === 'delnet') return { type: 'DeleteNetwork', networkId: netId(i.n) };
  if (i.op === 'ep') return { type: 'CreateEndpoint', spec: endpointSpec(netId(i.n), epId(i.e), `${subnet(i.n)}.${i.e + 2}/24`) };
  const ep = state.endpoints[epId(i.e)];
  if (!ep) return null;
  const ids = { networkId: ep.networkId, endpointId: ep.endpointId };
  switch (i.op) {
    case 'join':
      return { type: 'Join', ...ids, sandboxKey: `/var/run/docker/netns/${i.e}` };
    case 'leave':
      return { type: 'Leave', ...ids };
    case 'revoke':
      return { type: 'RevokeExternal', ...ids };
    case 'delep':
      return { type: 'DeleteEndpoint', ...ids };
    case 'lost':
      return { type: 'MarkLost', endpointId: ep.endpointId, reason: 'test' };
    case 'program':
      return { type: 'ProgramExternal', ...ids, portmap: PORTMAPS[i.ports] ?? [] };
  }
}

/** Folds the events of each intent one at a time, as the store does (immer: unchanged objects stay the same). */
function run(state: State, intents: readonly Intent[]): State {
  let s = state;
  for (const i of intents) {
    const cmd = command(s, i);
    if (!cmd) continue;
    let events;
    try {
      events = decide(cmd, s);
    } catch {
      continue; // refused, as Docker would be told
    }
    s = stamp(events, s).reduce(evolve, s);
  }
  return s;
}

type Mess = 'del-veth' | 'foreign-bridge' | 'foreign-veth' | 'stray' | 'down' | 'noaddr';

function mess(k: FakeKernel, m: Mess, state: State): void {
  const ep = Object.values(state.endpoints)[0];
  const net = Object.values(state.networks)[0];
  if (m === 'del-veth' && ep) k.removeLink(ep.veth);
  if (m === 'foreign-bridge' && !k.links.has(netSpec(0).bridge)) k.addLink({ name: netSpec(0).bridge, kind: 'bridge' });
  if (m === 'foreign-veth' && !k.links.has(endpointSpec(netId(0), epId(7)).veth)) k.addLink({ name: endpointSpec(netId(0), epId(7)).veth, kind: 'dummy' });
  if (m === 'stray') k.addLink({ name: 'lnb-0123456789a', kind: 'bridge', alias: `ledgernet:network:${'f'.repeat(64)}` });
  if (m === 'down' && net && k.links.has(net.bridge)) k.links.get(net.bridge)!.up = false;
  if (m === 'noaddr' && net) k.addrs = k.addrs.filter((a) => a.dev !== net.bridge);
}

interface Round {
  readonly intents: readonly Intent[];
  /** A full read first (the repair timer), after this mess. */
  readonly timer: readonly Mess[] | null;
  /** Leave these planned actions undone (held back), by index. */
  readonly hold: readonly number[];
  /** Make the kernel refuse the first change of this kind. */
  readonly fail: 'bridge.create' | 'veth.create' | 'chain.write' | null;
}

const round: fc.Arbitrary<Round> = fc.record({
  intents: fc.array(intent, { minLength: 1, maxLength: 3 }),
  timer: fc.option(fc.array(fc.constantFrom<Mess>('del-veth', 'foreign-bridge', 'foreign-veth', 'stray', 'down', 'noaddr'), { maxLength: 2 }), { freq: 5 }),
  hold: fc.array(fc.nat(30), { maxLength: 2 }),
  fail: fc.option(fc.constantFrom('bridge.create' as const, 'veth.create' as const, 'chain.write' as const), { freq: 8 }),
});

/** The kernel as nftables sees it on a host without the table yet. */
async function observe(k: FakeKernel, fw: FirewallBackend): Promise<KernelSnapshot> {
  const s = await k.observe();
  return fw.name === 'nftables' ? { ...s, nftables: null } : s;
}

const stats = { scoped: 0, declined: 0 };

/** Runs rounds the way the loop does, and checks every scoped plan against the full plan. */
async function check(fw: FirewallBackend, start: readonly Intent[], rounds: readonly Round[]): Promise<void> {
  const k = new FakeKernel();
  const planner = new ScopedPlanner();
  let state = run(emptyState, start);
  let model: KernelSnapshot | null = null;
  const pass = async (planned: readonly Action[], snapshot: KernelSnapshot, hold: readonly number[]) => {
    const held = new Set(hold.map((i) => planned[i]).filter((a) => a !== undefined));
    const done = await applyActions(
      planned.filter((a) => !held.has(a)),
      k,
      fw,
    );
    const refused = done.failures.some((f) => f.action.kind !== 'link.conflict');
    model = refused ? null : afterActions(snapshot, done.applied, fw);
    planner.settle(model, planned, done.applied);
  };
  const first = await observe(k, fw);
  await pass(planner.full(state, first, fw), first, []);
  for (const r of rounds) {
    if (r.timer) {
      for (const m of r.timer) mess(k, m, state);
      const snap = await observe(k, fw);
      await pass(planner.full(state, snap, fw), snap, []);
    }
    state = run(state, r.intents);
    const snapshot: KernelSnapshot = model ?? (await observe(k, fw));
    const scoped: Action[] | null = model ? planner.scoped(state, model, fw) : null;
    if (model && scoped) {
      stats.scoped++;
      assert.deepEqual(scoped, plan(desiredFromState(state), model, fw), 'the scoped plan is the full plan');
    } else if (model) stats.declined++;
    if (r.fail) {
      const kind = r.fail;
      k.failNext((c) => c.kind === kind);
    }
    await pass(scoped ?? planner.full(state, snapshot, fw), snapshot, r.hold);
  }
}

describe('scoped plans', () => {
  for (const fw of [iptablesFirewall, nftablesFirewall]) {
    it(`property (${fw.name}): a scoped plan equals the full plan against the same model`, async () => {
      stats.scoped = 0;
      stats.declined = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(intent, { maxLength: 12 }), fc.array(round, { minLength: 1, maxLength: 8 }), (start, rounds) => check(fw, start, rounds)),
        { numRuns: 200 },
      );
      assert.ok(stats.scoped > 5 * stats.declined, `most passes against the model were scoped (${stats.scoped} scoped, ${stats.declined} planned in full)`);
    });
  }

  it('a container on one of many networks: Docker\'s passes plan its network only, and the kernel converges', async () => {
    const k = new FakeKernel();
    let state = run(emptyState, Array.from({ length: NETS }, (_, n) => ({ op: 'net' as const, n })));
    const passes: PassResult[] = [];
    const silent = { info() {}, warn() {}, error() {}, debug() {} };
    const r = new Reconciler({ kernel: k, getState: () => state, log: silent, onLost: async () => undefined, onPass: (p) => passes.push(p), intervalMs: 0 });
    await r.requestPass('startup');
    const ep = 3;
    const steps: Intent[] = [{ op: 'ep', e: ep, n: 0 }, { op: 'join', e: ep }, { op: 'program', e: ep, ports: 1 }, { op: 'revoke', e: ep }, { op: 'leave', e: ep }, { op: 'delep', e: ep }];
    const planned: string[][] = [];
    for (const s of steps) {
      state = run(state, [s]);
      const p = await r.requestPass('NetworkDriver.X');
      assert.deepEqual(p.failures, []);
      planned.push(p.applied.map((a) => a.kind));
      // Whatever the pass planned, a full read finds nothing left to do.
      assert.deepEqual(plan(desiredFromState(state), await k.observe()), [], `after ${s.op}`);
    }
    assert.deepEqual(r.reads, { full: 1, model: steps.length });
    assert.deepEqual(passes.map((p) => p.scoped ?? false), [false, ...steps.map(() => true)], 'the start-up pass plans everything, Docker\'s only their network');
    assert.deepEqual(planned[0], ['veth.create']);
    assert.ok(planned[2]?.includes('chain.write'), 'a published port rewrites the network\'s firewall');
    assert.deepEqual(planned[5], ['link.delete']);
    await r.stop();
  });
});
