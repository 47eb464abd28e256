// A pass that repaired drift someone else caused (a link set down, a link deleted) says so at warn,
// naming what it repaired, so an operator at --log-level warn sees it; the convergence a Docker
// call asked for stays at info. What counts as drift is ledgernet_drift_repaired_total's decision.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Command } from '../../../src/events/domain/commands.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { fold } from '../../../src/events/domain/evolve.ts';
import type { PortBinding, State } from '../../../src/events/domain/types.ts';
import type { Reservation, ReserveChange, ReservePort } from '../../../src/kernel/index.ts';
import { Metrics } from '../../../src/operator/metrics.ts';
import { Reconciler } from '../../../src/reconciler/loop.ts';
import { EP_1, EP_2, NET_A, NET_B, endpointSpec, given, networkSpec, stamp } from '../../helpers/events.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';

const netA: Command = { type: 'CreateNetwork', spec: networkSpec(NET_A) };
const BRIDGE_A = networkSpec(NET_A).bridge;

interface Line {
  readonly level: 'info' | 'warn';
  readonly fields: Record<string, unknown>;
  readonly msg: string;
}

let kernel: FakeKernel;
let state: State;
let r: Reconciler;
let lines: Line[];

beforeEach(() => {
  kernel = new FakeKernel();
  state = given(netA);
  lines = [];
  const at = (level: Line['level']) => (fields?: unknown, msg?: string) => void lines.push({ level, fields: fields as Record<string, unknown>, msg: msg ?? '' });
  const log = { info: at('info'), warn: at('warn'), error: () => undefined, debug: () => undefined };
  r = new Reconciler({ kernel, getState: () => state, log, onLost: async () => undefined, intervalMs: 0 });
});

afterEach(async () => {
  await r.stop();
});

/** The pass lines logged since `from`. */
const passLines = (from: number) => lines.slice(from).filter((l) => l.msg.startsWith('reconcile pass'));

describe('reconcile pass log: drift at warn', () => {
  it("a Docker call's own changes converge at info, however many", async () => {
    await r.requestPass('NetworkDriver.CreateNetwork');
    const [line, ...more] = passLines(0);
    assert.equal(more.length, 0);
    assert.deepEqual([line?.level, line?.msg], ['info', 'reconcile pass converged']);
    assert.ok((line?.fields['applied'] as string[]).some((a) => a.includes(BRIDGE_A)));
  });

  it('a link set down or deleted by hand: the timer pass that puts it right logs at warn, naming it', async () => {
    await r.requestPass('NetworkDriver.CreateNetwork');
    const link = kernel.links.get(BRIDGE_A);
    assert.ok(link);
    link.up = false;
    let from = lines.length;
    await r.requestPass('timer');
    let [line] = passLines(from);
    assert.equal(line?.level, 'warn', JSON.stringify(line));
    assert.match(line?.msg ?? '', /^reconcile pass repaired drift: ledgernet objects changed or removed by someone else were set right$/);
    assert.ok((line?.fields['repaired'] as string[]).some((a) => a.includes(BRIDGE_A)), JSON.stringify(line?.fields));

    assert.ok(kernel.removeLink(BRIDGE_A));
    from = lines.length;
    await r.requestPass('kernel');
    [line] = passLines(from);
    assert.equal(line?.level, 'warn', JSON.stringify(line));
    assert.ok((line?.fields['repaired'] as string[]).some((a) => a.includes(BRIDGE_A)));

    // Nothing left: a timer pass with nothing to do logs nothing at all.
    from = lines.length;
    await r.requestPass('timer');
    assert.deepEqual(passLines(from), []);
  });

  it("a link deleted by hand and found missing by a Docker call's pass (a notice made it read the kernel) is drift: warn", async () => {
    await r.requestPass('NetworkDriver.CreateNetwork');
    assert.ok(kernel.removeLink(BRIDGE_A));
    r.kernelChanged(); // the next pass reads the kernel
    const from = lines.length;
    await r.requestPass('NetworkDriver.CreateEndpoint');
    const [line, ...more] = passLines(from);
    assert.equal(more.length, 0);
    assert.equal(line?.level, 'warn', JSON.stringify(line));
    assert.ok((line?.fields['repaired'] as string[]).some((a) => a.includes(BRIDGE_A)));
  });
});

// Drift is the kernel differing from what ledgernet last left there (drift.ts), not from what it
// wants now: ordinary Docker use changes what it wants of shared objects (LEDGERNET-FORWARD, a
// network's POSTROUTING chain, route_localnet, the port reservations), and the pass that follows
// rewrites them; a reviewer's dockerd produced 49 warn lines of "repaired drift" that way.
describe('reconcile pass log and drift metric: Docker daily life is not drift', () => {
  const NET_C = 'c'.repeat(8) + '4'.repeat(56);
  const BRIDGE_B = networkSpec(NET_B).bridge;
  const bind = (hostPort: number, port: number): PortBinding => ({ proto: 6, port, hostIp: '', hostPort, hostPortEnd: hostPort });
  const then = (s: State, c: Command): State => fold(s, stamp(decide(c, s), s));

  /** The daemon's port reservations, in memory: held as asked. */
  class Held implements ReservePort {
    held = new Map<string, Reservation>();
    list = () => [...this.held.values()];
    find = (name: string) => this.held.get(name);
    names = () => new Set(this.held.keys());
    async apply(changes: readonly ReserveChange[]) {
      for (const c of changes) {
        if (c.kind === 'port.release') this.held.delete(c.name);
        else this.held.set(c.name, { ...c.spec, name: c.name, owner: c.owner });
      }
      return { failures: [] };
    }
  }

  let metrics: Metrics;
  let held: Held;
  let dl: Reconciler;

  beforeEach(async () => {
    metrics = new Metrics();
    held = new Held();
    state = given(
      { type: 'CreateNetwork', spec: networkSpec(NET_A) },
      { type: 'CreateNetwork', spec: networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24') },
      { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) },
      { type: 'CreateEndpoint', spec: endpointSpec(NET_B, EP_2, '10.231.8.2/24') },
    );
    const at = (level: Line['level']) => (fields?: unknown, msg?: string) => void lines.push({ level, fields: fields as Record<string, unknown>, msg: msg ?? '' });
    const log = { info: at('info'), warn: at('warn'), error: () => undefined, debug: () => undefined };
    dl = new Reconciler({ kernel, getState: () => state, log, onLost: async () => undefined, onPass: (p) => metrics.onPass(p), intervalMs: 0, reservations: held });
    // The start: everything is missing; its repairs of the replayed state are repairs (as before).
    await dl.requestPass('startup');
    assert.deepEqual(passLines(0).map((l) => l.level), ['warn']);
    lines = [];
    metrics = new Metrics();
  });

  afterEach(async () => {
    await dl.stop();
  });

  async function drift(): Promise<Record<string, number>> {
    const metric = await metrics.registry.getSingleMetric('ledgernet_drift_repaired_total')!.get();
    return Object.fromEntries(metric.values.filter((v) => v.value > 0).map((v) => [String(v.labels['kind']), v.value]));
  }

  /** Runs a pass; says what it applied, and asserts it was not logged at warn. */
  async function quiet(trigger: string): Promise<string[]> {
    const from = lines.length;
    const r = await dl.requestPass(trigger);
    const warned = lines.slice(from).filter((l) => l.level === 'warn');
    assert.deepEqual(warned, [], `${trigger}: ${JSON.stringify(warned)}`);
    return r.applied.map((a) => `${a.kind} ${a.reason}`);
  }

  it('a network added, a port published and unpublished, a Docker bridge come and gone, a network removed: nothing at warn, no drift counted', async () => {
    state = then(state, { type: 'CreateNetwork', spec: networkSpec(NET_C, '10.231.9.0/24', '10.231.9.1/24') });
    // LEDGERNET-FORWARD and the other shared chains are rewritten for the third network: `drifted` to the planner.
    assert.ok((await quiet('NetworkDriver.CreateNetwork')).includes('chain.write drifted'));
    assert.deepEqual(await quiet('timer'), []);

    state = then(state, { type: 'ProgramExternal', networkId: NET_B, endpointId: EP_2, portmap: [bind(18091, 80)] });
    const published = await quiet('NetworkDriver.ProgramExternalConnectivity');
    assert.ok(published.includes('bridge.localnet drifted') && published.includes('port.reserve missing'), published.join());
    assert.deepEqual(await quiet('timer'), []);
    state = then(state, { type: 'RevokeExternal', networkId: NET_B, endpointId: EP_2 });
    assert.ok((await quiet('NetworkDriver.RevokeExternalConnectivity')).includes('bridge.localnet drifted'));

    // The desired state changed with no Docker call of its own (an endpoint lost, docker-sync): a timer pass applies it.
    state = then(state, { type: 'ProgramExternal', networkId: NET_A, endpointId: EP_1, portmap: [bind(18092, 80)] });
    assert.ok((await quiet('timer')).includes('bridge.localnet drifted'));
    state = then(state, { type: 'RevokeExternal', networkId: NET_A, endpointId: EP_1 });
    assert.ok((await quiet('kernel')).includes('bridge.localnet drifted'));

    // Docker creates a bridge network of a custom name (its isolation chain names it): ledgernet isolates it too,
    // then it is gone and back (dockerd restarting): the timer and kernel passes of then.
    kernel.chains.set('DOCKER-ISOLATION-STAGE-1', { policy: null, rules: ['-i mybr0 ! -o mybr0 -j DOCKER-ISOLATION-STAGE-2'] } as never);
    assert.ok((await quiet('docker-network')).includes('chain.write drifted'));
    kernel.chains.delete('DOCKER-ISOLATION-STAGE-1');
    assert.ok((await quiet('timer')).includes('chain.write drifted'));
    kernel.chains.set('DOCKER-ISOLATION-STAGE-1', { policy: null, rules: ['-i mybr0 ! -o mybr0 -j DOCKER-ISOLATION-STAGE-2'] } as never);
    assert.ok((await quiet('kernel')).includes('chain.write drifted'));

    state = then(state, { type: 'DeleteNetwork', networkId: NET_C });
    assert.ok((await quiet('NetworkDriver.DeleteNetwork')).includes('chain.write drifted'));
    assert.deepEqual(await quiet('timer'), []);
    assert.deepEqual(await drift(), {});
  });

  it('a range of 1,000 ports published: the pass line names the first 100 changes and counts the rest (before: every change, one line of 43 KB to 1 MB)', async () => {
    const portmap = Array.from({ length: 1_000 }, (_, i) => bind(20_000 + i, 20_000 + i));
    state = then(state, { type: 'ProgramExternal', networkId: NET_B, endpointId: EP_2, portmap });
    const from = lines.length;
    const pass = await dl.requestPass('NetworkDriver.ProgramExternalConnectivity');
    assert.ok(pass.applied.length > 1_000, 'the pass itself keeps every change');
    const [line] = passLines(from);
    const applied = line?.fields['applied'] as string[];
    assert.equal(applied.length, 101);
    assert.match(applied.at(-1) ?? '', /^… and [\d,]+ more: (.+, )?[\d,]+ port\.reserve/);
    assert.ok(JSON.stringify(line?.fields).length < 32 * 1024, `the line is ${JSON.stringify(line?.fields).length} bytes`);
  });

  it('a rule deleted by hand, route_localnet set by hand, a bridge deleted by hand: drift, at warn, whatever the pass (a Docker call that changes the same chain too)', async () => {
    const forward = kernel.chains.get('LEDGERNET-FORWARD');
    assert.ok(forward && forward.rules.length > 1);
    forward.rules.pop();
    dl.kernelChanged(); // a notice: the Docker call's pass reads the kernel
    state = then(state, { type: 'CreateNetwork', spec: networkSpec(NET_C, '10.231.9.0/24', '10.231.9.1/24') });
    let from = lines.length;
    await dl.requestPass('NetworkDriver.CreateNetwork');
    let [line] = passLines(from);
    assert.equal(line?.level, 'warn', JSON.stringify(line));
    assert.deepEqual(line?.fields['repaired'], [line?.fields['applied'] as string[]].flat().filter((a) => a.startsWith('chain.write filter/LEDGERNET-FORWARD ')));
    assert.deepEqual(await drift(), { 'chain.write': 1 });

    kernel.localnet.set(BRIDGE_B, true);
    from = lines.length;
    await dl.requestPass('timer');
    [line] = passLines(from);
    assert.equal(line?.level, 'warn', JSON.stringify(line));
    assert.deepEqual(line?.fields['repaired'], [`bridge.localnet ${BRIDGE_B} (drifted: route_localnet 0 expected, 1 found)`]);

    assert.ok(kernel.removeLink(BRIDGE_A));
    dl.kernelChanged();
    from = lines.length;
    await dl.requestPass('NetworkDriver.CreateEndpoint');
    [line] = passLines(from);
    assert.equal(line?.level, 'warn', JSON.stringify(line));
    assert.ok((line?.fields['repaired'] as string[]).some((a) => a.startsWith(`bridge.create ${BRIDGE_A} `)), JSON.stringify(line?.fields));
    // The endpoint's veth lost its master with the bridge: set back too.
    assert.deepEqual(await drift(), { 'chain.write': 1, 'bridge.localnet': 1, 'bridge.create': 1, 'addr.add': 1, 'link.set': 1 });
  });
});
