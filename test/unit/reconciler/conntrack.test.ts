// Which conntrack flushes a change asks for (reconciler/conntrack.ts): a UDP or SCTP host port
// whose DNAT came, went or moved; the addresses of endpoints removed or revoked; nothing for TCP
// ports, for a pass that changed nothing, or for the first pass (its baseline). And the loop: the
// flush runs after the firewall of the same pass, not on a pass whose firewall failed (the next
// one that writes it flushes), and its failure fails nothing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from '../../../src/events/domain/commands.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { fold } from '../../../src/events/domain/evolve.ts';
import type { PortBinding, State } from '../../../src/events/domain/types.ts';
import type { ConntrackFlush, ConntrackResult } from '../../../src/kernel/index.ts';
import { ConntrackPlanner, flushKey, goneAddresses } from '../../../src/reconciler/conntrack.ts';
import { Reconciler } from '../../../src/reconciler/loop.ts';
import { DesiredIndex } from '../../../src/reconciler/scope.ts';
import { EP_1, EP_2, NET_A, NET_B, endpointSpec, networkSpec, stamp } from '../../helpers/events.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';
import { withIpv6 } from '../../helpers/firewall-states.ts';
import { emptyState } from '../../../src/events/domain/types.ts';

const bind = (proto: number, hostPort: number, port: number, hostIp = ''): PortBinding => ({ proto, port, hostIp, hostPort, hostPortEnd: hostPort });
const then = (state: State, ...cmds: Command[]): State => cmds.reduce((s, c) => fold(s, stamp(decide(c, s), s)), state);
const program = (networkId: string, endpointId: string, portmap: PortBinding[]): Command => ({ type: 'ProgramExternal', networkId, endpointId, portmap });
const revoke = (networkId: string, endpointId: string): Command => ({ type: 'RevokeExternal', networkId, endpointId });

const BASE = then(
  emptyState,
  { type: 'CreateNetwork', spec: withIpv6(networkSpec(NET_A), 7) },
  { type: 'CreateNetwork', spec: networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24') },
  { type: 'CreateEndpoint', spec: { ...endpointSpec(NET_A, EP_1), addressV6: 'fd00:231:7::2/64' } },
  { type: 'CreateEndpoint', spec: endpointSpec(NET_B, EP_2, '10.231.8.2/24') },
);

/** The flushes of each state after the first, as the loop plans them (policies from the index, as a pass derives them). */
function flushesOf(...states: State[]): string[][] {
  const index = new DesiredIndex();
  const planner = new ConntrackPlanner();
  return states.map((s) => {
    index.advance(s);
    const { flushes, commit } = planner.plan(s, index.all().map((d) => d.policy));
    commit();
    return flushes.map(flushKey);
  });
}

describe('conntrack flushes a change asks for', () => {
  it('none at the first pass, nor when nothing changed', () => {
    const s = then(BASE, program(NET_A, EP_1, [bind(17, 5000, 5000)]));
    assert.deepEqual(flushesOf(s, s), [[], []]);
  });

  it('a UDP or SCTP port published, by its host port (and host address when bound), in both families; not TCP', () => {
    const s = then(BASE, program(NET_A, EP_1, [bind(17, 5000, 53), bind(132, 7000, 7000, '10.9.9.9'), bind(6, 8080, 80)]));
    assert.deepEqual(flushesOf(BASE, s)[1], ['sctp 10.9.9.9:7000', 'udp *:5000']);
  });

  it('a revoke: its ports, and its addresses (both families)', () => {
    const on = then(BASE, program(NET_A, EP_1, [bind(17, 5000, 5000)]));
    const off = then(on, revoke(NET_A, EP_1));
    assert.deepEqual(flushesOf(on, off)[1], ['10.231.7.2', 'fd00:231:7::2', 'udp *:5000']);
  });

  it('a port moved to another endpoint (another network too): flushed once', () => {
    const onA = then(BASE, program(NET_A, EP_1, [bind(17, 5000, 5000)]));
    const moved = then(onA, revoke(NET_A, EP_1), program(NET_B, EP_2, [bind(17, 5000, 5000)]));
    assert.deepEqual(flushesOf(onA, moved)[1], ['10.231.7.2', 'fd00:231:7::2', 'udp *:5000']);
  });

  it('an endpoint removed, or its network: its addresses and the ports it published', () => {
    const on = then(BASE, program(NET_B, EP_2, [bind(17, 6000, 60)]));
    const gone = then(on, revoke(NET_B, EP_2), { type: 'DeleteEndpoint', networkId: NET_B, endpointId: EP_2 });
    assert.deepEqual(flushesOf(on, gone)[1], ['10.231.8.2', 'udp *:6000']);
    const noEndpoint = then(BASE, { type: 'DeleteEndpoint', networkId: NET_B, endpointId: EP_2 });
    assert.deepEqual(flushesOf(BASE, noEndpoint)[1], ['10.231.8.2'], 'an endpoint never programmed: its address');
  });

  it('a TCP-only change or a join flushes nothing', () => {
    const tcp = then(BASE, program(NET_A, EP_1, [bind(6, 8080, 80)]));
    const joined = then(tcp, { type: 'Join', networkId: NET_B, endpointId: EP_2, sandboxKey: '/var/run/docker/netns/x' });
    assert.deepEqual(flushesOf(BASE, tcp, joined), [[], [], []]);
  });

  it('goneAddresses: only removed or revoked endpoints', () => {
    const on = then(BASE, program(NET_A, EP_1, []));
    assert.deepEqual(goneAddresses(BASE.endpoints, on.endpoints), []);
    assert.deepEqual(goneAddresses(on.endpoints, then(on, revoke(NET_A, EP_1)).endpoints), ['10.231.7.2', 'fd00:231:7::2']);
    assert.deepEqual(goneAddresses(on.endpoints, on.endpoints), []);
  });
});

/** A fake kernel that records each flush and where it came among the calls. */
class FlushingKernel extends FakeKernel {
  flushes: { at: number; flushes: string[] }[] = [];
  fail = false;
  async flushConntrack(flushes: readonly ConntrackFlush[]): Promise<ConntrackResult> {
    this.flushes.push({ at: this.calls.length, flushes: flushes.map(flushKey) });
    if (this.fail) throw new Error('ctnetlink said no (injected)');
    return { deleted: 1 };
  }
}

describe('the loop flushes conntrack', () => {
  const setup = () => {
    let state = BASE;
    const kernel = new FlushingKernel();
    const warned: string[] = [];
    const log = { info: () => undefined, debug: () => undefined, error: () => undefined, warn: (_o: unknown, m?: string) => void warned.push(m ?? '') };
    const r = new Reconciler({ kernel, getState: () => state, log, intervalMs: 0, onLost: async () => undefined });
    return { kernel, r, warned, set: (s: State) => void (state = s) };
  };

  it('after the firewall of the same pass, and not on a pass that changed nothing', async () => {
    const { kernel, r, set } = setup();
    await r.requestPass('timer');
    assert.equal(kernel.flushes.length, 0, 'the first pass only takes its baseline');
    set(then(BASE, program(NET_A, EP_1, [bind(17, 5000, 5000)])));
    await r.requestPass('NetworkDriver.ProgramExternalConnectivity');
    assert.equal(kernel.flushes.length, 1);
    const [flush] = kernel.flushes;
    assert.deepEqual(flush?.flushes, ['udp *:5000']);
    const lastRestore = kernel.calls.map((c) => c.kind).lastIndexOf('restoreIptables');
    assert.ok(lastRestore >= 0 && lastRestore < (flush?.at ?? -1), 'the firewall was written first');
    await r.requestPass('timer');
    assert.equal(kernel.flushes.length, 1, 'a timer pass with no change flushes nothing');
  });

  it('not on a pass whose firewall failed: the next pass that writes it does', async () => {
    const { kernel, r, set } = setup();
    await r.requestPass('timer');
    set(then(BASE, program(NET_A, EP_1, [bind(17, 5000, 5000)])));
    // The DNAT chain, in both steps of the pass (the second plans on a fresh read).
    kernel.failNext((c) => c.kind === 'chain.write' && c.table === 'nat', 2);
    const failed = await r.requestPass('NetworkDriver.ProgramExternalConnectivity');
    assert.ok(failed.failures.length > 0);
    assert.equal(kernel.flushes.length, 0);
    await r.requestPass('timer');
    assert.deepEqual(kernel.flushes.map((f) => f.flushes), [['udp *:5000']]);
  });

  it('a flush that fails is a warning, not a failure of the pass', async () => {
    const { kernel, r, set, warned } = setup();
    await r.requestPass('timer');
    kernel.fail = true;
    set(then(BASE, program(NET_A, EP_1, [bind(17, 5000, 5000)])));
    const pass = await r.requestPass('NetworkDriver.ProgramExternalConnectivity');
    assert.deepEqual(pass.failures, []);
    assert.deepEqual(
      warned.filter((m) => m.startsWith('conntrack')),
      ['conntrack: could not delete stale connection-tracking entries'],
    );
  });
});
