// Ports on the IPv6 loopback (-p [::1]:…), served by the in-daemon userland proxy: which
// listeners the log asks for (IPv6 target, or IPv4 when the container has none: 6→4), no DNAT
// rule for them, SCTP refused by name, host_binding_ipv4=::1; the plan of opens, reopens and
// closes; and the reconcile loop with the real proxy host on loopback (a port another program
// holds fails the pass with LN_ERR_PORT_IN_USE, a revoke closes the listener).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import type { DriverError } from '../../../src/errors.ts';
import type { Command } from '../../../src/events/domain/commands.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { checkNetworkOptions } from '../../../src/events/domain/options.ts';
import type { PortBinding } from '../../../src/events/domain/types.ts';
import { createProxyHost, type ProxyListener } from '../../../src/kernel/index.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { Reconciler } from '../../../src/reconciler/loop.ts';
import { failureCode } from '../../../src/reconciler/outcome.ts';
import { plan } from '../../../src/reconciler/plan.ts';
import { desiredProxies, planProxies } from '../../../src/reconciler/proxies.ts';
import { renderPlan } from '../../../src/reconciler/render.ts';
import { EP_1, EP_2, NET_A, NET_B, endpointSpec, given, networkSpec } from '../../helpers/events.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';
import { withIpv6 } from '../../helpers/firewall-states.ts';

const bind = (proto: number, hostPort: number, port: number, hostIp = ''): PortBinding => ({ proto, port, hostIp, hostPort, hostPortEnd: hostPort });
const v6net: Command = { type: 'CreateNetwork', spec: withIpv6(networkSpec(NET_A), 7) };
const v4net: Command = { type: 'CreateNetwork', spec: networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24') };
const ep6: Command = { type: 'CreateEndpoint', spec: { ...endpointSpec(NET_A, EP_1), addressV6: 'fd00:231:7::2/64' } };
const ep4: Command = { type: 'CreateEndpoint', spec: endpointSpec(NET_B, EP_2, '10.231.8.2/24') };
const program = (networkId: string, endpointId: string, portmap: PortBinding[]): Command => ({ type: 'ProgramExternal', networkId, endpointId, portmap });
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };

describe('proxied ports on ::1: desired state', () => {
  it('one listener per tcp/udp port on ::1, to the IPv6 address, or 6→4 to the IPv4 one; no DNAT rule for them', async () => {
    const state = given(v6net, ep6, v4net, ep4,
      program(NET_A, EP_1, [bind(6, 18090, 80, '::1'), bind(17, 18053, 53, '::1'), bind(6, 8080, 80)]),
      program(NET_B, EP_2, [bind(6, 18091, 80, '::1')]));
    assert.deepEqual(desiredProxies(state).map((d) => [d.name, d.spec.targetIp, d.spec.targetPort, d.owner.endpointId]), [
      ['tcp [::1]:18090', 'fd00:231:7::2', 80, EP_1],
      ['tcp [::1]:18091', '10.231.8.2', 80, EP_2],
      ['udp [::1]:18053', 'fd00:231:7::2', 53, EP_1],
    ]);
    const rules = renderPlan(plan(desiredFromState(state), await new FakeKernel().observe()));
    assert.match(rules, /--dport 8080 /, 'the port on all addresses is DNATed');
    assert.doesNotMatch(rules, /1809[01]|18053/, 'the ports on ::1 are not');
  });

  it('refused by name: sctp on ::1; accepted: host_binding_ipv4=::1, whose ports are proxied', () => {
    assert.throws(
      () => decide(program(NET_A, EP_1, [bind(132, 18092, 80, '::1')]), given(v6net, ep6)),
      (e: DriverError) => e.code === 'LN_ERR_INVALID_OPTION' && /sctp\/80 cannot be published on \[::1\]:18092: .*tcp and udp only/.test(e.message),
    );
    const opts = { 'com.docker.network.bridge.host_binding_ipv4': '::1' };
    checkNetworkOptions(opts, { internal: false, subnets: ['10.231.8.0/24'] } as never);
    const state = given({ type: 'CreateNetwork', spec: { ...networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24'), options: opts } }, ep4, program(NET_B, EP_2, [bind(6, 18093, 80)]));
    assert.deepEqual(desiredProxies(state).map((d) => `${d.name} ${d.spec.targetIp}`), ['tcp [::1]:18093 10.231.8.2']);
  });

  it('split gateways (Docker 28+): only the IPv6 gateway serves ::1, whichever endpoint got Program first', () => {
    const sandbox = '/var/run/docker/netns/28a0c0de28a0';
    const join = (networkId: string, endpointId: string): Command => ({ type: 'Join', networkId, endpointId, sandboxKey: sandbox });
    const ports = [bind(6, 18094, 80, '::1')];
    const flagged: Command = { type: 'ProgramExternal', networkId: NET_B, endpointId: EP_2, portmap: ports, ipv6Elsewhere: true };
    for (const order of [[program(NET_A, EP_1, ports), flagged], [flagged, program(NET_A, EP_1, ports)]]) {
      const state = given(v6net, ep6, v4net, ep4, join(NET_A, EP_1), join(NET_B, EP_2), ...order);
      assert.deepEqual(desiredProxies(state).map((d) => `${d.name} ${d.spec.targetIp} ${d.owner.endpointId === EP_1 ? 'ep1' : 'ep2'}`), ['tcp [::1]:18094 fd00:231:7::2 ep1']);
    }
  });

  it('plans opens, a reopen for a changed target, and closes under the endpoint that had them', () => {
    const state = given(v6net, ep6, program(NET_A, EP_1, [bind(6, 18090, 80, '::1'), bind(6, 18094, 81, '::1')]));
    const held = (name: string, targetPort: number, endpointId: string): ProxyListener => ({
      name, proto: 'tcp', hostIp: '::1', hostPort: Number(name.split(':').at(-1)), targetIp: 'fd00:231:7::2', targetPort, connections: 0, owner: { networkId: NET_A, endpointId },
    });
    const changes = planProxies(desiredProxies(state), [held('tcp [::1]:18094', 80, EP_1), held('tcp [::1]:18095', 80, EP_2)]);
    assert.deepEqual(changes.map((c) => `${c.kind} ${c.name} ${c.reason}${c.detail ? `: ${c.detail}` : ''}`), [
      'proxy.close tcp [::1]:18095 orphan: to [fd00:231:7::2]:80',
      'proxy.open tcp [::1]:18090 missing: to [fd00:231:7::2]:80',
      'proxy.open tcp [::1]:18094 drifted: to [fd00:231:7::2]:81 expected, to [fd00:231:7::2]:80 found',
    ]);
    const text = renderPlan(changes);
    assert.match(text, /endpoint e2e2e2e23333\n {4}- proxy\.close tcp \[::1\]:18095/);
    assert.match(text, /\+ proxy\.open tcp \[::1\]:18090 \(missing: to \[fd00:231:7::2\]:80\)/);
    assert.match(text, /~ proxy\.open tcp \[::1\]:18094/);
  });
});

describe('proxied ports on ::1: the reconcile loop with the real proxy host', () => {
  it('opens with the pass, fails a port another program holds (LN_ERR_PORT_IN_USE), closes on revoke', async () => {
    const taken = createServer().listen(0, '::1');
    await once(taken, 'listening');
    const busy = (taken.address() as AddressInfo).port;
    const free = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '::1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const proxies = createProxyHost(silent);
    let state = given(v6net, ep6, program(NET_A, EP_1, [bind(6, free, 80, '::1'), bind(6, busy, 81, '::1')]));
    const r = new Reconciler({ kernel: new FakeKernel(), getState: () => state, log: silent, onLost: async () => undefined, intervalMs: 0, proxies });
    try {
      const pass = await r.requestPass('NetworkDriver.ProgramExternalConnectivity');
      assert.deepEqual(pass.applied.filter((a) => a.kind === 'proxy.open').map((a) => a.name), [`tcp [::1]:${free}`]);
      assert.equal(pass.failures.length, 1);
      const f = pass.failures[0]!;
      assert.equal(f.action.kind === 'proxy.open' ? f.action.name : '', `tcp [::1]:${busy}`);
      assert.equal(failureCode(f), 'LN_ERR_PORT_IN_USE');
      assert.deepEqual(proxies.list().map((l) => l.name), [`tcp [::1]:${free}`]);
      state = given(v6net, ep6, program(NET_A, EP_1, [bind(6, free, 80, '::1')]), { type: 'RevokeExternal', networkId: NET_A, endpointId: EP_1 });
      const revoked = await r.requestPass('NetworkDriver.RevokeExternalConnectivity');
      assert.deepEqual(revoked.applied.filter((a) => a.kind === 'proxy.close').map((a) => a.name), [`tcp [::1]:${free}`]);
      assert.deepEqual(proxies.list(), []);
    } finally {
      await r.stop();
      await proxies.closeAll();
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});
