// Which host ports the daemon holds, from the log: every tcp/udp host address and port a DNAT rule
// publishes (every address of a family on its wildcard; each port of a range; a port ledgernet
// chose for -P), none where no DNAT rule is written (routed, ::1, SCTP), and none once the ports
// are revoked or the endpoint is lost. The plan of holds and releases; the daemon's incremental
// planner, which must plan what the full plan plans (property test); and the reconcile loop with
// the real holder on loopback (a port another program holds fails the pass with
// LN_ERR_PORT_IN_USE, naming it; a revoke releases the rest).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Command } from '../../../src/events/domain/commands.ts';
import type { PortBinding, State } from '../../../src/events/domain/types.ts';
import { createReserveHost, type Reservation } from '../../../src/kernel/index.ts';
import type { FirewallNetworkPolicy, PortForward } from '../../../src/kernel/types.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { Reconciler } from '../../../src/reconciler/loop.ts';
import { failureCode } from '../../../src/reconciler/outcome.ts';
import { renderPlan } from '../../../src/reconciler/render.ts';
import { ReservationPlanner, desiredReservations, planReservations, type DesiredReservation } from '../../../src/reconciler/reservations.ts';
import { EP_1, EP_2, NET_A, NET_B, endpointSpec, given, networkSpec } from '../../helpers/events.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';
import { EP_3, NET_C, withIpv6 } from '../../helpers/firewall-states.ts';

const bind = (proto: number, hostPort: number, port: number, hostIp = '', hostPortEnd = hostPort): PortBinding => ({ proto, port, hostIp, hostPort, hostPortEnd });
const GW4 = 'com.docker.network.bridge.gateway_mode_ipv4';
const GW6 = 'com.docker.network.bridge.gateway_mode_ipv6';
const program = (networkId: string, endpointId: string, portmap: PortBinding[]): Command => ({ type: 'ProgramExternal', networkId, endpointId, portmap });
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };
const reservations = (state: State) => desiredReservations(desiredFromState(state).firewall.networks);
const heldAs = (r: DesiredReservation): Reservation => ({ ...r.spec, name: r.name, owner: r.owner });

/** NET_A: IPv6, nat; NET_B: IPv4 routed; NET_C: IPv4 nat-unprotected. */
const NETWORKS: Command[] = [
  { type: 'CreateNetwork', spec: withIpv6(networkSpec(NET_A), 7) },
  { type: 'CreateNetwork', spec: { ...networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24'), options: { [GW4]: 'routed' } } },
  { type: 'CreateNetwork', spec: { ...networkSpec(NET_C, '10.231.9.0/24', '10.231.9.1/24'), options: { [GW4]: 'nat-unprotected' } } },
  { type: 'CreateEndpoint', spec: { ...endpointSpec(NET_A, EP_1), addressV6: 'fd00:231:7::2/64' } },
  { type: 'CreateEndpoint', spec: endpointSpec(NET_B, EP_2, '10.231.8.2/24') },
  { type: 'CreateEndpoint', spec: endpointSpec(NET_C, EP_3, '10.231.9.2/24') },
];

describe('reservations: which host ports the daemon holds', () => {
  it('each tcp/udp address and port a DNAT rule publishes: every address on both wildcards (IPv6 only on ::), ranges per port; none on ::1, for SCTP or where routed', () => {
    const state = given(
      ...NETWORKS,
      program(NET_A, EP_1, [
        bind(6, 8080, 80),
        bind(17, 5353, 53, '0.0.0.0'),
        bind(6, 9000, 8000, '127.0.0.1'),
        bind(6, 9001, 8001, '127.0.0.1'),
        bind(6, 8443, 443, '::'),
        bind(6, 18090, 80, '::1'),
        bind(132, 7000, 7000),
      ]),
      program(NET_B, EP_2, [bind(6, 8081, 80)]),
      program(NET_C, EP_3, [bind(6, 8082, 80), bind(17, 8083, 83, '127.0.0.1')]),
    );
    assert.deepEqual(
      reservations(state).map((r) => `${r.name} → ${r.to} ${r.owner.endpointId === EP_1 ? 'ep1' : r.owner.endpointId === EP_3 ? 'ep3' : '?'}`),
      [
        'tcp 0.0.0.0:8080 → 10.231.7.2:80 ep1',
        'tcp 0.0.0.0:8082 → 10.231.9.2:80 ep3',
        'tcp 127.0.0.1:9000 → 10.231.7.2:8000 ep1',
        'tcp 127.0.0.1:9001 → 10.231.7.2:8001 ep1',
        'tcp [::]:8080 → [fd00:231:7::2]:80 ep1',
        'tcp [::]:8443 → [fd00:231:7::2]:443 ep1',
        'udp 0.0.0.0:5353 → 10.231.7.2:53 ep1',
        'udp 127.0.0.1:8083 → 10.231.9.2:83 ep3',
      ],
    );
    assert.deepEqual(reservations(state)[0]?.spec, { proto: 'tcp', hostIp: '0.0.0.0', hostPort: 8080 });
  });

  it('routed for IPv4 and NATed for IPv6: the IPv6 side only; --internal: none', () => {
    const mixed = given(
      { type: 'CreateNetwork', spec: withIpv6({ ...networkSpec(NET_A), options: { [GW4]: 'routed', [GW6]: 'nat' } }, 7) },
      { type: 'CreateEndpoint', spec: { ...endpointSpec(NET_A, EP_1), addressV6: 'fd00:231:7::2/64' } },
      program(NET_A, EP_1, [bind(6, 8080, 80)]),
    );
    assert.deepEqual(reservations(mixed).map((r) => r.name), ['tcp [::]:8080']);
    const internal = given({ type: 'CreateNetwork', spec: { ...networkSpec(NET_A), internal: true } }, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) }, program(NET_A, EP_1, [bind(6, 8080, 80)]));
    assert.deepEqual(reservations(internal), []);
  });

  it('a host port ledgernet chose (-P, a range) is held as chosen', () => {
    const state = given(...NETWORKS, program(NET_C, EP_3, [bind(6, 0, 80), bind(17, 9100, 53, '', 9110)]));
    assert.deepEqual(reservations(state).map((r) => r.name), ['tcp 0.0.0.0:49153', 'udp 0.0.0.0:9100']);
  });

  it('released with the DNAT rules: a revoke, a lost endpoint, the endpoint or the network gone', () => {
    const published = [...NETWORKS, program(NET_C, EP_3, [bind(6, 8082, 80)])];
    assert.equal(reservations(given(...published)).length, 1);
    for (const end of [
      { type: 'RevokeExternal', networkId: NET_C, endpointId: EP_3 },
      { type: 'MarkLost', endpointId: EP_3, reason: 'its veth vanished' },
      { type: 'DeleteEndpoint', networkId: NET_C, endpointId: EP_3 },
    ] satisfies Command[]) {
      assert.deepEqual(reservations(given(...published, end)), [], end.type);
    }
  });

  it('plans releases of what is no longer published, then holds of what is missing; nothing when all is held', () => {
    const state = given(...NETWORKS, program(NET_C, EP_3, [bind(6, 8082, 80), bind(6, 8084, 84)]));
    const desired = reservations(state);
    const orphan: Reservation = { proto: 'udp', hostIp: '0.0.0.0', hostPort: 9999, name: 'udp 0.0.0.0:9999', owner: { networkId: NET_B, endpointId: EP_2 } };
    const changes = planReservations(desired, [orphan, heldAs(desired[1]!)]);
    assert.deepEqual(changes.map((c) => `${c.kind} ${c.name} ${c.reason}${c.detail ? `: ${c.detail}` : ''}`), [
      'port.release udp 0.0.0.0:9999 orphan',
      'port.reserve tcp 0.0.0.0:8082 missing: published to 10.231.9.2:80',
    ]);
    const text = renderPlan(changes);
    assert.match(text, /- port\.release udp 0\.0\.0\.0:9999 \(orphan\)/);
    assert.match(text, /\+ port\.reserve tcp 0\.0\.0\.0:8082 \(missing: published to 10\.231\.9\.2:80\)/);
    assert.deepEqual(planReservations(desired, desired.map(heldAs)), []);
  });
});

// Random networks of forwards, changed one step at a time as the index does (a network derived
// again is a new object, its forwards too, whether they changed or not).
interface Forward {
  readonly endpointId: string;
  readonly proto: PortForward['proto'];
  readonly everyAddress: boolean;
  readonly lo: number;
  readonly span: number;
  readonly port: number;
}
const forwardArb: fc.Arbitrary<Forward> = fc.record({
  endpointId: fc.constantFrom('e1', 'e2', 'e3'),
  proto: fc.constantFrom<PortForward['proto']>('tcp', 'udp', 'sctp'),
  everyAddress: fc.boolean(),
  lo: fc.integer({ min: 8000, max: 8006 }),
  span: fc.integer({ min: 0, max: 2 }),
  port: fc.constantFrom(80, 443),
});
const policyArb = (networkId: string) =>
  fc.record({ v4: fc.array(forwardArb, { maxLength: 4 }), v6: fc.array(forwardArb, { maxLength: 2 }) }).map(
    ({ v4, v6 }): FirewallNetworkPolicy => {
      // A specific host address: the host's own of the family (127.0.0.1, fd00::1).
      const fwd = (ip: string, own: string) => (f: Forward): PortForward => ({
        endpointId: `${networkId}-${f.endpointId}`, proto: f.proto, hostIp: f.everyAddress ? '' : own, hostPorts: [f.lo, f.lo + f.span], ip, port: f.port,
      });
      // The planner reads a policy's id and forwards only.
      return { networkId, forwards: v4.map(fwd('10.0.0.2', '127.0.0.1')), ...(v6.length > 0 ? { nat6: { forwards: v6.map(fwd('fd00::2', 'fd00::1')) } } : {}) } as unknown as FirewallNetworkPolicy;
    },
  );
const stepArb = fc.record({
  network: fc.constantFrom('n1', 'n2', 'n3'),
  change: fc.constantFrom('new', 'copy', 'remove', 'none'),
  full: fc.boolean(),
  failing: fc.array(fc.integer({ min: 8000, max: 8008 }), { maxLength: 2 }),
});

describe('reservations: the daemon\'s incremental planner', () => {
  it('plans exactly what the full plan plans, pass after pass, with binds that fail now and then', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(stepArb, policyArb('n1'), policyArb('n2'), policyArb('n3')), { minLength: 1, maxLength: 12 }), (steps) => {
        const planner = new ReservationPlanner();
        const held = new Map<string, Reservation>();
        const host = { list: () => [...held.values()], find: (name: string) => held.get(name) };
        let networks = new Map<string, FirewallNetworkPolicy>();
        for (const [step, ...fresh] of steps) {
          const next = new Map(networks);
          const policy = fresh.find((p) => p.networkId === step.network);
          const before = networks.get(step.network);
          if (step.change === 'new' && policy) next.set(step.network, policy);
          else if (step.change === 'copy' && before) next.set(step.network, JSON.parse(JSON.stringify(before)) as FirewallNetworkPolicy);
          else if (step.change === 'remove') next.delete(step.network);
          networks = next;
          const list = [...networks.values()].sort((a, b) => (a.networkId < b.networkId ? -1 : 1));
          const expected = planReservations(desiredReservations(list), host.list());
          const got = planner.plan(list, host, step.full);
          const show = (cs: typeof got) => cs.map((c) => `${c.kind} ${c.name} ${c.owner.endpointId} ${c.detail ?? ''}`).sort();
          assert.deepEqual(show(got), show(expected));
          for (const c of got) {
            if (c.kind === 'port.release') held.delete(c.name);
            else if (!step.failing.includes(c.spec.hostPort)) held.set(c.name, { ...c.spec, name: c.name, owner: c.owner });
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('reservations: the reconcile loop with the real holder', () => {
  it('holds with the pass, fails a port another program holds (LN_ERR_PORT_IN_USE, named), releases on revoke', async () => {
    const taken = createServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const busy = (taken.address() as AddressInfo).port;
    const free = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const holder = createReserveHost(silent);
    const ports = [bind(6, free, 80, '127.0.0.1'), bind(6, busy, 81, '127.0.0.1')];
    let state = given(...NETWORKS, program(NET_C, EP_3, ports));
    const r = new Reconciler({ kernel: new FakeKernel(), getState: () => state, log: silent, onLost: async () => undefined, intervalMs: 0, reservations: holder });
    try {
      const pass = await r.requestPass('NetworkDriver.ProgramExternalConnectivity');
      assert.deepEqual(pass.applied.filter((a) => a.kind === 'port.reserve').map((a) => a.name), [`tcp 127.0.0.1:${free}`]);
      assert.equal(pass.failures.length, 1);
      const f = pass.failures[0]!;
      assert.equal(f.action.kind === 'port.reserve' ? f.action.name : '', `tcp 127.0.0.1:${busy}`);
      assert.equal(f.action.owner.endpointId, EP_3, 'the failure is the publishing endpoint\'s: its Docker call fails and is rolled back');
      assert.equal(failureCode(f), 'LN_ERR_PORT_IN_USE');
      assert.match(f.message, new RegExp(`^EADDRINUSE: cannot hold tcp 127\\.0\\.0\\.1:${busy}: address already in use$`));
      assert.deepEqual(holder.list().map((l) => l.name), [`tcp 127.0.0.1:${free}`]);
      // The next pass for Docker tries the failed one again (the planner remembers what it acted on).
      const again = await r.requestPass('NetworkDriver.Join');
      assert.deepEqual(again.failures.map((x) => x.action.kind === 'port.reserve' && x.action.name), [`tcp 127.0.0.1:${busy}`]);
      state = given(...NETWORKS, program(NET_C, EP_3, ports), { type: 'RevokeExternal', networkId: NET_C, endpointId: EP_3 });
      const revoked = await r.requestPass('NetworkDriver.RevokeExternalConnectivity');
      assert.deepEqual(revoked.applied.filter((a) => a.kind === 'port.release').map((a) => a.name), [`tcp 127.0.0.1:${free}`]);
      assert.deepEqual(revoked.failures, []);
      assert.deepEqual(holder.list(), []);
    } finally {
      await r.stop();
      await holder.releaseAll();
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('the ports are held only once the firewall is written: a transaction through libnftables must open its socket before thousands of descriptors', async () => {
    const order: string[] = [];
    class SlowKernel extends FakeKernel {
      override async restoreIptables(...args: Parameters<FakeKernel['restoreIptables']>): Promise<void> {
        order.push(`firewall ${args[0]} start`);
        await new Promise((resolve) => setTimeout(resolve, 5));
        await super.restoreIptables(...args);
        order.push(`firewall ${args[0]} end`);
      }
    }
    const real = createReserveHost(silent);
    const holder: typeof real = { ...real, apply: (changes) => (order.push(`reserve ${changes.length}`), real.apply(changes)) };
    const ports = Array.from({ length: 3 }, (_, i) => bind(6, 0, 80 + i, '127.0.0.1'));
    const state = given(...NETWORKS, program(NET_C, EP_3, ports));
    const r = new Reconciler({ kernel: new SlowKernel(), getState: () => state, log: silent, onLost: async () => undefined, intervalMs: 0, reservations: holder });
    try {
      await r.requestPass('NetworkDriver.ProgramExternalConnectivity');
      const reserved = order.findIndex((o) => o.startsWith('reserve'));
      const lastWall = order.findLastIndex((o) => o.startsWith('firewall') && o.endsWith('end'));
      assert.ok(reserved >= 0 && lastWall >= 0 && reserved > lastWall, order.join(', '));
    } finally {
      await r.stop();
      await real.releaseAll();
    }
  });
});
