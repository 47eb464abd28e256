// The reconcile loop's timer (issue 10): retryable failures are retried with backoff (1 s,
// doubling, capped by the interval), terminal ones are not retried by the timer until the desired
// state changes; passes for Docker run at once. A fake clock (node:test mock timers) and the
// fake kernel.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import type { Command } from '../../../src/events/domain/commands.ts';
import type { State } from '../../../src/events/domain/types.ts';
import type { ChangeFailure, LinkChange } from '../../../src/kernel/types.ts';
import { actionKey, describeAction } from '../../../src/reconciler/actions.ts';
import { Reconciler, type PassResult } from '../../../src/reconciler/loop.ts';
import { backoffMs } from '../../../src/reconciler/retry.ts';
import { EP_1, NET_A, NET_B, endpointSpec, given, networkSpec } from '../../helpers/events.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';

const INTERVAL = 30_000;
const netA: Command = { type: 'CreateNetwork', spec: networkSpec(NET_A) };
const netB: Command = { type: 'CreateNetwork', spec: networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24') };
const BRIDGE_A = networkSpec(NET_A).bridge;

/** The fake kernel whose bridge creation keeps failing with `message` while `failing`. */
class FlakyKernel extends FakeKernel {
  failing = false;
  message = 'RTNETLINK answers: Device or resource busy';
  override async applyLinks(changes: readonly LinkChange[]): Promise<{ failures: ChangeFailure[] }> {
    const bridgeA = (c: { readonly kind: string }) => c.kind === 'bridge.create' && 'name' in c && c.name === BRIDGE_A;
    if (this.failing && changes.some(bridgeA)) this.failNext(bridgeA);
    const r = await super.applyLinks(changes);
    return { failures: r.failures.map((f) => (f.message.includes('(injected)') ? { ...f, message: this.message } : f)) };
  }
  private sent = 0;
  /** The link changes sent since the last call, as `kind name`. */
  changesSinceLast(): string {
    const batches = this.calls.slice(this.sent);
    this.sent = this.calls.length;
    return batches.flatMap((c) => (c.kind === 'applyLinks' ? c.changes.map((x) => `${x.kind} ${actionKey(x)}`) : [])).join('\n');
  }
}

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };
const settle = async () => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};

let kernel: FlakyKernel;
let state: State;
let r: Reconciler;
let passes: PassResult[];

beforeEach(() => {
  mock.timers.enable({ apis: ['setTimeout'] });
  kernel = new FlakyKernel();
  state = given(netA);
  passes = [];
  r = new Reconciler({ kernel, getState: () => state, log: silent, onLost: async () => undefined, onPass: (p) => passes.push(p), intervalMs: INTERVAL });
  r.start();
});

afterEach(async () => {
  await r.stop();
  mock.timers.reset();
});

/** Advances the fake clock by `ms` and lets the pass it started (if any) finish; returns how many ran. */
async function advance(ms: number): Promise<number> {
  const before = passes.length;
  mock.timers.tick(ms);
  await settle();
  return passes.length - before;
}

describe('reconcile loop: backoff and terminal failures', () => {
  it('backoff: 1 s, 2 s, 4 s … capped by the interval or 60 s', () => {
    assert.deepEqual([1, 2, 3, 4, 7, 20].map((n) => backoffMs(n, 600_000)), [1000, 2000, 4000, 8000, 60_000, 60_000]);
    assert.equal(backoffMs(9, 30_000), 30_000);
  });

  it('a retryable failure is retried after 1 s, then 2 s, then 4 s; once converged, the interval again', async () => {
    kernel.failing = true;
    assert.equal((await r.requestPass('startup')).failures.length > 0, true);
    assert.equal(await advance(999), 0);
    assert.equal(await advance(1), 1, 'retried after 1 s');
    assert.equal(await advance(1999), 0);
    assert.equal(await advance(1), 1, 'then after 2 s');
    assert.equal(await advance(3999), 0);
    kernel.failing = false;
    assert.equal(await advance(1), 1, 'then after 4 s');
    assert.deepEqual(passes.at(-1)?.failures, [], 'converged');
    assert.equal(kernel.links.get(BRIDGE_A)?.kind, 'bridge');
    assert.equal(await advance(INTERVAL - 1), 0, 'no failure: back to the interval');
    assert.equal(await advance(1), 1);
  });

  it('a pass that cannot read the kernel keeps the timer going, with backoff', async () => {
    const observe = kernel.observe.bind(kernel);
    let broken = true;
    kernel.observe = async () => {
      if (broken) throw new Error('Cannot open netlink socket');
      return observe();
    };
    const failed = r.requestPass('startup').then(() => 'resolved', () => 'rejected');
    await settle();
    await advance(50); // the loop reads the kernel a second time before it gives up
    assert.equal(await failed, 'rejected');
    broken = false;
    assert.equal(await advance(999), 0);
    assert.equal(await advance(1), 1, 'retried after 1 s');
  });

  it('a pass for Docker runs at once during a backoff', async () => {
    kernel.failing = true;
    await r.requestPass('startup');
    await advance(1000);
    await advance(2000);
    const before = passes.length;
    kernel.failing = false;
    const res = await r.requestPass('NetworkDriver.CreateNetwork');
    assert.equal(passes.length, before + 1);
    assert.deepEqual(res.failures, []);
  });

  it('a terminal failure is not retried by the timer until the desired state changes; a Docker pass tries again', async () => {
    kernel.failing = true;
    kernel.message = 'RTNETLINK answers: Operation not permitted';
    const first = await r.requestPass('startup');
    assert.ok(first.failures.some((f) => f.action.kind === 'bridge.create'));
    assert.match(kernel.changesSinceLast(), new RegExp(`bridge.create ${BRIDGE_A}`));
    // The bridge's own address and settings failed after it (retryable): one retry after 1 s,
    // which leaves the refused bridge alone and reports it again.
    assert.equal(await advance(1000), 1);
    assert.doesNotMatch(kernel.changesSinceLast(), new RegExp(BRIDGE_A), 'the refused bridge is not tried again');
    assert.deepEqual(passes.at(-1)?.failures.map((f) => f.action.kind), ['bridge.create']);
    assert.match(passes.at(-1)?.failures[0]?.message ?? '', /Operation not permitted/);
    assert.equal(await advance(2000), 0, 'no backoff for a terminal failure');
    assert.equal(await advance(INTERVAL - 1000), 1);
    assert.doesNotMatch(kernel.changesSinceLast(), new RegExp(BRIDGE_A), 'nor at the interval');

    await r.requestPass('NetworkDriver.Join');
    assert.match(kernel.changesSinceLast(), new RegExp(`bridge.create ${BRIDGE_A}`), 'a pass for Docker tries again');
  });

  it('a new desired state lets the timer try a terminal failure again', async () => {
    kernel.failing = true;
    kernel.message = 'RTNETLINK answers: Operation not permitted';
    await r.requestPass('startup');
    await advance(1000);
    kernel.changesSinceLast();
    state = given(netA, netB);
    kernel.failing = false;
    assert.equal(await advance(INTERVAL), 1);
    assert.match(kernel.changesSinceLast(), new RegExp(`bridge.create ${BRIDGE_A}`));
    assert.deepEqual(passes.at(-1)?.failures, []);
  });
});

describe('reconcile loop: Docker\'s calls plan against the kernel model (issue 11)', () => {
  const observes = () => kernel.calls.filter((c) => c.kind === 'observe').length;

  it('after a full read, a pass for Docker reads nothing and writes only its delta', async () => {
    await r.requestPass('startup');
    assert.match(kernel.changesSinceLast(), /bridge.create lnb-aaaaaaaa000/);
    const read = observes();
    state = given(netA, netB);
    const p = await r.requestPass('NetworkDriver.CreateNetwork');
    assert.deepEqual(p.failures, []);
    assert.equal(observes(), read, 'no observe on Docker\'s path');
    const written = kernel.changesSinceLast();
    assert.match(written, new RegExp(`bridge.create ${networkSpec(NET_B).bridge}`));
    assert.doesNotMatch(written, /lnb-aaaaaaaa000/, 'nothing of the other network is written again');
    assert.equal(kernel.links.get(networkSpec(NET_B).bridge)?.kind, 'bridge');
    assert.deepEqual(r.reads, { full: 1, model: 1 });
  });

  it('the repair timer and a kernel notice read the whole kernel', async () => {
    await r.requestPass('startup');
    await advance(INTERVAL);
    assert.equal(observes(), 2, 'the timer reads');
    r.kernelChanged();
    await r.requestPass('NetworkDriver.CreateEndpoint');
    assert.equal(observes(), 3, 'after drift, Docker\'s next pass reads too');
    await r.requestPass('NetworkDriver.DeleteEndpoint');
    assert.equal(observes(), 3, 'and then the model is trusted again');
  });

  it('drift noticed while a pass runs leaves no model behind: the next pass for Docker reads', async () => {
    await r.requestPass('startup');
    state = given(netA, netB);
    const running = r.requestPass('NetworkDriver.CreateNetwork');
    r.kernelChanged(); // what main.ts does on a drift notice, here while the pass applies
    await running;
    assert.equal(observes(), 1, 'the pass itself planned against the model');
    await r.requestPass('NetworkDriver.CreateEndpoint');
    assert.equal(observes(), 2, 'the pass after it did not trust a model made before the drift');
  });

  it('an echo of our own apply or a change to a link no longer wanted keeps the model', async () => {
    let clock = 0;
    await r.stop();
    r = new Reconciler({ kernel, getState: () => state, log: silent, onLost: async () => undefined, intervalMs: INTERVAL, now: () => clock });
    await r.requestPass('startup');
    state = given(netA, netB);
    await r.requestPass('NetworkDriver.CreateNetwork');
    const bridgeB = networkSpec(NET_B).bridge;
    assert.equal(r.noticed(bridgeB, 'down'), 'echo', 'the bridge the pass created showed down on the way');
    assert.equal(r.noticed('lnv-00000000000', 'deleted'), 'unwanted');
    await r.requestPass('NetworkDriver.CreateEndpoint');
    assert.equal(observes(), 1, 'no read on Docker\'s path');
    clock += 1_000;
    assert.equal(r.noticed(bridgeB, 'down'), 'drift', 'long after the pass, a wanted bridge set down is drift');
    await r.requestPass('NetworkDriver.CreateEndpoint');
    assert.equal(observes(), 2);
  });

  it('a bridge deleted by one pass: its notices (down, address gone, deleted) are echoes, also while the next pass runs', async () => {
    state = given(netA, netB);
    await r.requestPass('startup');
    state = given(netB);
    await r.requestPass('NetworkDriver.DeleteNetwork');
    // Docker's next call comes before the kernel has finished deleting the bridge.
    state = given(netB, { type: 'CreateEndpoint', spec: endpointSpec(NET_B, EP_1, '10.231.8.2/24') });
    await r.requestPass('NetworkDriver.CreateEndpoint');
    for (const kind of ['down', 'addr-deleted', 'deleted'] as const) assert.notEqual(r.noticed(BRIDGE_A, kind), 'drift', kind);
    assert.equal(r.noticed(networkSpec(NET_B).bridge, 'addr-deleted'), 'drift', 'what no pass did is drift');
  });

  it('an intent appended while the timer\'s pass reads the kernel is left to its own pass (not counted as the timer\'s repair)', async () => {
    await r.requestPass('startup');
    let append: (() => void) | null = () => {
      state = given(netA, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) });
    };
    const read = kernel.observe.bind(kernel);
    kernel.observe = async () => {
      const snap = await read();
      append?.(); // CreateEndpoint is journaled while the kernel is being read
      append = null;
      return snap;
    };
    const timer = r.requestPass('timer');
    const docker = r.requestPass('NetworkDriver.CreateEndpoint');
    const veth = endpointSpec(NET_A, EP_1).veth;
    assert.deepEqual((await timer).applied.map((a) => a.kind), [], 'the timer\'s pass planned the state it began with');
    const mine = await docker;
    assert.equal(mine.trigger, 'NetworkDriver.CreateEndpoint');
    assert.ok(mine.applied.some((a) => a.kind === 'veth.create' && actionKey(a) === veth), mine.applied.map(describeAction).join());
    assert.equal(kernel.links.get(veth)?.master, BRIDGE_A);
  });

  it('a pass planned against a stale model that fails reads the kernel and plans again before answering', async () => {
    await r.requestPass('startup');
    // Someone deletes the bridge and no notice arrives: the model still has it.
    kernel.removeLink(BRIDGE_A);
    state = given(netA, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) });
    const p = await r.requestPass('NetworkDriver.CreateEndpoint');
    assert.deepEqual(p.failures, [], 'the re-check converged');
    assert.equal(kernel.links.get(BRIDGE_A)?.kind, 'bridge');
    assert.equal(kernel.links.get(endpointSpec(NET_A, EP_1).veth)?.master, BRIDGE_A);
    assert.deepEqual(r.reads, { full: 2, model: 1 });
  });
});

/** The fake kernel whose full read includes the routing table (as the real one's does). */
class RoutedKernel extends FlakyKernel {
  override async observe() {
    return { ...(await super.observe()), routes: await this.observeRoutes() };
  }
}

describe('reconcile loop: route conflicts across passes planned against the model', () => {
  it('a route conflict stands through model passes while its network does, and is dropped when the network is removed', async () => {
    const lines: string[] = [];
    const log = { ...silent, info: (_o?: unknown, m?: string) => void lines.push(`info ${m}`), warn: (_o?: unknown, m?: string) => void lines.push(`warn ${m}`) };
    await r.stop();
    kernel = new RoutedKernel();
    state = given(netA, netB);
    r = new Reconciler({ kernel, getState: () => state, log, onLost: async () => undefined, intervalMs: INTERVAL });
    await r.requestPass('startup');
    // Someone moves network A's subnet route to another device; a full pass (after a notice) sees it.
    kernel.routes = [{ family: 4, dst: '10.231.7.0/24', dev: 'eth0' }, { family: 4, dst: '10.231.8.0/24', dev: networkSpec(NET_B).bridge }];
    r.kernelChanged();
    await r.requestPass('timer');
    assert.equal(r.reads.full, 2);
    assert.equal(lines.filter((l) => l.includes('conflict')).length, 1, lines.join('\n'));
    assert.match(lines.join('\n'), /warn conflict: the route to 10\.231\.7\.0\/24 goes through eth0/);
    // Docker's passes plan against the model, which has no routes: the conflict is not resolved by them.
    state = given(netA, netB, { type: 'CreateEndpoint', spec: endpointSpec(NET_B, EP_1, '10.231.8.2/24') });
    await r.requestPass('NetworkDriver.CreateEndpoint');
    assert.equal(r.reads.model, 1);
    assert.doesNotMatch(lines.join('\n'), /conflict resolved/);
    // Network A removed: its route conflict goes with it at once, said as such.
    state = given(netA, netB, { type: 'DeleteNetwork', networkId: NET_A });
    await r.requestPass('NetworkDriver.DeleteNetwork');
    assert.equal(r.reads.model, 2, 'planned against the model');
    assert.match(lines.join('\n'), /info conflict resolved: network aaaaaaaa0000 was removed/);
  });
});

/** The fake kernel whose full read says which links have IPv4 forwarding off (as the real link dump does). */
class ForwardingKernel extends FlakyKernel {
  forwardingOff: string[] = [];
  ipv6Forwarding = { all: true, default: true };
  bridgeNf: { iptables: boolean | null; ip6tables: boolean | null } = { iptables: true, ip6tables: true };
  override async observe() {
    return { ...(await super.observe()), routes: await this.observeRoutes(), forwardingOff: [...this.forwardingOff], ipv6Forwarding: { ...this.ipv6Forwarding }, bridgeNf: { ...this.bridgeNf } };
  }
  override async setIpv6ForwardingOn(): Promise<string[]> {
    await super.setIpv6ForwardingOn();
    this.ipv6Forwarding = { all: true, default: true };
    return ['net.ipv6.conf.default.forwarding', 'net.ipv6.conf.all.forwarding'];
  }
}

describe('reconcile loop: IPv4 forwarding turned off under the networks', () => {
  it('is logged when a full read finds it, not again while it stays, and when it is on again; the metric is told each time', async () => {
    const lines: string[] = [];
    const told: (readonly string[] | null)[] = [];
    const said = () => lines.filter((l) => l.includes('forwarding'));
    const log = { ...silent, info: (_o?: unknown, m?: string) => void lines.push(`info ${m}`), warn: (_o?: unknown, m?: string) => void lines.push(`warn ${m}`) };
    await r.stop();
    const k = new ForwardingKernel();
    kernel = k;
    state = given(netA);
    r = new Reconciler({ kernel, getState: () => state, log, onLost: async () => undefined, intervalMs: INTERVAL, onForwarding: (f) => void told.push(f?.devices ?? null) });
    await r.requestPass('startup');
    assert.deepEqual(said(), [], 'on everywhere: nothing said');
    // A sysctl reload turns it off on the network's bridge; the next full read sees it.
    k.forwardingOff = [BRIDGE_A, 'lo'];
    r.kernelChanged();
    await r.requestPass('timer');
    assert.equal(said().length, 1, lines.join('\n'));
    assert.match(lines.join('\n'), new RegExp(`warn forwarding: IPv4 forwarding is off on ${BRIDGE_A} .*sysctl -w net\\.ipv4\\.conf\\.${BRIDGE_A}\\.forwarding=1`));
    assert.deepEqual(r.forwarding?.devices, [BRIDGE_A]);
    await r.requestPass('timer');
    state = given(netA, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) });
    await r.requestPass('NetworkDriver.CreateEndpoint');
    assert.equal(said().length, 1, 'said once while it stays; the model does not know it');
    // Off on the uplink (the default route's device) instead: the passes planned against the
    // model, which knows no routes, neither drop it nor say it again.
    k.forwardingOff = ['eth0'];
    k.routes = [{ family: 4, dst: '0.0.0.0/0', dev: 'eth0' }];
    await r.requestPass('timer');
    assert.match(said().at(-1) ?? '', /^warn forwarding: IPv4 forwarding is off on eth0 /);
    state = given(netA, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) }, { type: 'DeleteEndpoint', networkId: NET_A, endpointId: EP_1 });
    await r.requestPass('NetworkDriver.DeleteEndpoint');
    assert.ok(r.reads.model >= 2, 'planned against the model');
    assert.equal(said().length, 2, lines.join('\n'));
    k.forwardingOff = [];
    await r.requestPass('timer');
    assert.match(said().at(-1) ?? '', /^info forwarding: IPv4 forwarding is on again/);
    assert.equal(r.forwarding, null);
    assert.deepEqual(told, [[BRIDGE_A], ['eth0'], null]);
  });

  it('IPv6 forwarding off under a network with IPv6: logged once, kept through model passes, and on again; the metric is told', async () => {
    const lines: string[] = [];
    const told: (boolean | null)[] = [];
    const said = () => lines.filter((l) => l.includes('forwarding'));
    const log = { ...silent, info: (_o?: unknown, m?: string) => void lines.push(`info ${m}`), warn: (_o?: unknown, m?: string) => void lines.push(`warn ${m}`) };
    await r.stop();
    const k = new ForwardingKernel();
    kernel = k;
    const v6: Command = { type: 'CreateNetwork', spec: { ...networkSpec(NET_A), ipv6: true, ipv6Data: [{ pool: 'fd00:231:7::/64', gateway: 'fd00:231:7::1/64', aux: {} }] } };
    state = given(v6);
    r = new Reconciler({ kernel, getState: () => state, log, onLost: async () => undefined, intervalMs: INTERVAL, onForwarding: (f) => void told.push(f?.ipv6Off ?? null) });
    await r.requestPass('startup');
    assert.deepEqual(said(), [], 'on: nothing said');
    k.ipv6Forwarding = { all: false, default: false };
    r.kernelChanged();
    await r.requestPass('timer');
    assert.match(said().join('\n'), /^warn forwarding: IPv6 forwarding is off \(net\.ipv6\.conf\.all\.forwarding = 0\)/);
    state = given(v6, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) });
    await r.requestPass('NetworkDriver.CreateEndpoint');
    assert.equal(said().length, 1, 'said once; the model does not know it');
    assert.equal(r.forwarding?.ipv6Off, true);
    k.ipv6Forwarding = { all: true, default: true };
    await r.requestPass('timer');
    assert.match(said().at(-1) ?? '', /^info forwarding: IPv6 forwarding is on again/);
    assert.deepEqual(told, [true, null]);
  });

  it('serve --ipv6-forwarding: a full read that finds IPv6 forwarding off turns it on (not named as a problem); one that cannot is a failure, named, and Docker\'s passes stay on the model', async () => {
    const lines: string[] = [];
    const log = { ...silent, info: (o?: unknown, m?: string) => void lines.push(`info ${m} ${JSON.stringify(o)}`), warn: (_o?: unknown, m?: string) => void lines.push(`warn ${m}`) };
    await r.stop();
    const k = new ForwardingKernel();
    kernel = k;
    k.ipv6Forwarding = { all: false, default: false };
    const v6: Command = { type: 'CreateNetwork', spec: { ...networkSpec(NET_A), ipv6: true, ipv6Data: [{ pool: 'fd00:231:7::/64', gateway: 'fd00:231:7::1/64', aux: {} }] } };
    state = given(v6);
    r = new Reconciler({ kernel, getState: () => state, log, onLost: async () => undefined, intervalMs: INTERVAL, ipv6Forwarding: true });
    const first = await r.requestPass('startup');
    assert.deepEqual(k.ipv6Forwarding, { all: true, default: true }, 'turned on');
    assert.ok(first.applied.some((a) => a.kind === 'sysctl.ipv6_forwarding'), 'applied, as drift repaired');
    assert.equal(r.forwarding, null, 'on after the pass: no problem named');
    assert.doesNotMatch(lines.join('\n'), /forwarding: IPv6 forwarding is off/);
    // Read through a function: the compiler would narrow r.forwarding after an assert.
    const ipv6Off = () => r.forwarding?.ipv6Off;
    const calls = () => k.calls.filter((c) => c.kind === 'setIpv6ForwardingOn').length;
    await r.requestPass('timer');
    assert.equal(calls(), 1, 'on: not set again');
    // Turned off by hand under the existing bridge: set again, and the pass that did it names no problem.
    k.ipv6Forwarding = { all: false, default: false };
    r.kernelChanged();
    await r.requestPass('timer');
    assert.equal(calls(), 2);
    assert.equal(r.forwarding, null);
    assert.doesNotMatch(lines.join('\n'), /forwarding: IPv6 forwarding is off/);
    // Turned off by hand, and the host refuses it now.
    k.ipv6Forwarding = { all: false, default: true };
    k.ipv6ForwardingError = 'open /proc/sys/net/ipv6/conf/all/forwarding: read-only file system';
    r.kernelChanged();
    const failed = await r.requestPass('timer');
    assert.match(failed.failures.map((f) => f.message).join('\n'), /read-only file system/);
    assert.equal(ipv6Off(), true, 'still off: named');
    state = given(v6, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) });
    const reads = r.reads.full;
    await r.requestPass('NetworkDriver.CreateEndpoint');
    assert.equal(r.reads.full, reads, "a sysctl that could not be set does not send Docker's passes to a full read");
    await r.stop();
    // Without the switch: named, never set.
    const k2 = new ForwardingKernel();
    kernel = k2;
    k2.ipv6Forwarding = { all: false, default: false };
    r = new Reconciler({ kernel, getState: () => state, log, onLost: async () => undefined, intervalMs: INTERVAL });
    await r.requestPass('startup');
    r.kernelChanged();
    await r.requestPass('timer');
    assert.equal(k2.calls.filter((c) => c.kind === 'setIpv6ForwardingOn').length, 0);
    assert.equal(ipv6Off(), true);
  });

  it("a bridge's accept_ra that cannot be written (a read-only /proc/sys) is a failure, but Docker's passes stay on the model", async () => {
    await r.stop();
    class ReadOnlySysctl extends ForwardingKernel {
      override async observe() {
        return { ...(await super.observe()), acceptRa: Object.fromEntries([...this.links.keys()].filter((n) => n.startsWith('lnb-')).map((n) => [n, true])) };
      }
      override async setAcceptRaOff(): Promise<void> {
        throw new Error('could not set accept_ra: EROFS: read-only file system');
      }
    }
    kernel = new ReadOnlySysctl();
    state = given({ type: 'CreateNetwork', spec: networkSpec(NET_A) });
    r = new Reconciler({ kernel, getState: () => state, log: silent, onLost: async () => undefined, intervalMs: INTERVAL });
    await r.requestPass('startup');
    r.kernelChanged();
    const failed = await r.requestPass('timer');
    assert.match(failed.failures.map((f) => `${f.action.kind}: ${f.message}`).join('\n'), /^bridge\.accept_ra: .*EROFS/);
    state = given({ type: 'CreateNetwork', spec: networkSpec(NET_A) }, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) });
    const reads = r.reads.full;
    const ep = await r.requestPass('NetworkDriver.CreateEndpoint');
    assert.equal(r.reads.full, reads, 'planned against the model, not a full read');
    assert.ok(ep.applied.some((a) => a.kind === 'veth.create'), "the endpoint's veth made");
  });

  it('icc=false left open by bridge filtering: logged once, kept through model passes, and enforced again; the metric is told', async () => {
    const lines: string[] = [];
    const told: (number | null)[] = [];
    const said = () => lines.filter((l) => l.includes('icc'));
    const log = { ...silent, info: (_o?: unknown, m?: string) => void lines.push(`info ${m}`), warn: (_o?: unknown, m?: string) => void lines.push(`warn ${m}`) };
    await r.stop();
    const k = new ForwardingKernel();
    kernel = k;
    const closed: Command = { type: 'CreateNetwork', spec: { ...networkSpec(NET_A), options: { 'ledgernet.icc': 'false' } } };
    state = given(closed);
    r = new Reconciler({ kernel, getState: () => state, log, onLost: async () => undefined, intervalMs: INTERVAL, onIcc: (p) => void told.push(p?.networks.length ?? null) });
    await r.requestPass('startup');
    assert.deepEqual(said(), [], 'filtered: nothing said');
    k.bridgeNf = { iptables: false, ip6tables: true };
    r.kernelChanged();
    await r.requestPass('timer');
    assert.match(said().join('\n'), /^warn icc: containers of aaaaaaaa0000 \(icc=false\) reach each other: /);
    state = given(closed, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) });
    await r.requestPass('NetworkDriver.CreateEndpoint');
    assert.equal(said().length, 1, 'said once; the model does not know it');
    assert.deepEqual(r.icc?.settings, ['net.bridge.bridge-nf-call-iptables']);
    k.bridgeNf = { iptables: true, ip6tables: true };
    await r.requestPass('timer');
    assert.match(said().at(-1) ?? '', /^info icc: icc=false is enforced again/);
    assert.deepEqual(told, [1, null]);
  });
});
