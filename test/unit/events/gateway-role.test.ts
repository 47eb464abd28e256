// Docker 28+ with a container whose IPv4 and IPv6 gateways are two ledgernet endpoints: both get
// ProgramExternalConnectivity with the same ports, in the orders moby's updateExternalConnectivity
// sends them (old gateways first). The IPv4 gateway (flagged no_proxy_6to4, or the one holding the
// IPv4 side) publishes the IPv4 side, the IPv6 gateway the IPv6 side on the same host ports,
// whichever order; every repeat writes nothing; an IPv6 gateway without an IPv6 address is
// refused; Docker 20.10's order (Revoke the old gateway, then Program the new) works as before.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DriverError } from '../../../src/errors.ts';
import type { Command } from '../../../src/events/domain/commands.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import type { PortBinding, State } from '../../../src/events/domain/types.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { EP_1, EP_2, NET_A, NET_B, endpointSpec, given, networkSpec } from '../../helpers/events.ts';

const SANDBOX = '/var/run/docker/netns/28a0c0de28a0';
const ports: PortBinding[] = [{ proto: 6, port: 80, hostIp: '', hostPort: 8080, hostPortEnd: 8080 }];

/** A container on network A (endpoint 1, IPv4 only) and network B (endpoint 2; dual-stack unless `v4only`), both joined. */
function containerOf(v4only = false): Command[] {
  const b = networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24');
  const ep2 = endpointSpec(NET_B, EP_2, '10.231.8.2/24');
  return [
    { type: 'CreateNetwork', spec: networkSpec(NET_A) },
    { type: 'CreateNetwork', spec: v4only ? b : { ...b, ipv6: true, ipv6Data: [{ pool: 'fd00:231:8::/64', gateway: 'fd00:231:8::1/64', aux: {} }] } },
    { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) },
    { type: 'CreateEndpoint', spec: v4only ? ep2 : { ...ep2, addressV6: 'fd00:231:8::2/64' } },
    { type: 'Join', networkId: NET_A, endpointId: EP_1, sandboxKey: SANDBOX },
    { type: 'Join', networkId: NET_B, endpointId: EP_2, sandboxKey: SANDBOX },
  ];
}
const container = containerOf();

const program = (networkId: string, endpointId: string, ipv6Elsewhere?: boolean): Command => ({
  type: 'ProgramExternal',
  networkId,
  endpointId,
  portmap: ports,
  ...(ipv6Elsewhere === undefined ? {} : { ipv6Elsewhere }),
});
const revoke = (networkId: string, endpointId: string): Command => ({ type: 'RevokeExternal', networkId, endpointId });

/** Host ports each endpoint publishes, in which family (both unless said), and whether it is programmed. */
function published(state: State): Record<string, string> {
  return Object.fromEntries(
    Object.values(state.endpoints).map((e) => [
      e.endpointId === EP_1 ? 'ep1' : 'ep2',
      `${e.programmed ? 'programmed' : '-'} ${e.portmap.map((p) => p.hostPort).join(',')}${e.portFamily === undefined ? '' : ` v${e.portFamily}`}`,
    ]),
  );
}

const SPLIT = { ep1: 'programmed 8080', ep2: 'programmed 8080 v6' };

describe('IPv4 and IPv6 gateways on two endpoints of one container (Docker 28+)', () => {
  it('v29: ep1 is the IPv4 gateway, ep2 joins as the IPv6 gateway (ep1 gets no new call): ep2 publishes the IPv6 side on the same host port', () => {
    const state = given(...container, program(NET_A, EP_1), program(NET_B, EP_2));
    assert.deepEqual(published(state), SPLIT);
    assert.deepEqual(decide(program(NET_B, EP_2), state), [], 'a repeat writes nothing');
    assert.deepEqual(decide(program(NET_A, EP_1), state), []);
    assert.deepEqual(decide(program(NET_A, EP_1, true), state), []);
    assert.deepEqual(decide(program(NET_A, EP_1, false), state), []);
  });

  it('the firewall: the IPv4 DNAT of host port 8080 leads to ep1, the IPv6 one to ep2, nothing else', () => {
    const nets = desiredFromState(given(...container, program(NET_A, EP_1), program(NET_B, EP_2))).firewall.networks;
    const dnat = nets.flatMap((n) => [...n.forwards.map((f) => `v4 ${f.hostPorts[0]} -> ${f.ip}`), ...(n.nat6?.forwards ?? []).map((f) => `v6 ${f.hostPorts[0]} -> ${f.ip}`)]);
    assert.deepEqual(dnat.sort(), ['v4 8080 -> 10.231.7.2', 'v6 8080 -> fd00:231:8::2']);
    const both = desiredFromState(given(...container, program(NET_A, EP_1), program(NET_B, EP_2), revoke(NET_A, EP_1), program(NET_B, EP_2))).firewall.networks;
    const moved = both.flatMap((n) => [...n.forwards.map((f) => `v4 ${f.ip}`), ...(n.nat6?.forwards ?? []).map((f) => `v6 ${f.ip}`)]);
    assert.deepEqual(moved.sort(), ['v4 10.231.8.2', 'v6 fd00:231:8::2'], 'after the IPv4 gateway is revoked, ep2 publishes both');
  });

  it('v29 order: ep1 flagged first (now IPv4 only), then ep2; ephemeral ports (-P) get the same host port in both families', () => {
    const ephemeral: PortBinding[] = [{ proto: 6, port: 80, hostIp: '', hostPort: 0, hostPortEnd: 0 }];
    const p = (networkId: string, endpointId: string, flag?: boolean): Command => ({ ...program(networkId, endpointId, flag), portmap: ephemeral } as Command);
    const state = given(...container, p(NET_A, EP_1), p(NET_A, EP_1, true), p(NET_B, EP_2));
    assert.deepEqual(published(state), { ep1: 'programmed 49153', ep2: 'programmed 49153 v6' });
  });

  it('v28: ep1 flips to the flagged IPv4-only gateway before or after ep2 is programmed: the same split', () => {
    const after = given(...container, program(NET_A, EP_1, false), program(NET_B, EP_2, false), revoke(NET_A, EP_1), program(NET_A, EP_1, true));
    assert.deepEqual(published(after), SPLIT);
    const before = given(...container, program(NET_A, EP_1, false), revoke(NET_A, EP_1), program(NET_A, EP_1, true), program(NET_B, EP_2, false));
    assert.deepEqual(published(before), SPLIT);
  });

  it('the IPv4 role moves to ep1 while ep2 keeps IPv6: ep2 (programmed first) keeps only the IPv6 side, in one decision', () => {
    const start = given(...container, program(NET_B, EP_2), program(NET_B, EP_2));
    assert.deepEqual(published(start), { ep1: '- ', ep2: 'programmed 8080' });
    assert.equal(decide(program(NET_A, EP_1, true), start).length, 2, 'ep2 and ep1 in one decision');
    const state = given(...container, program(NET_B, EP_2), program(NET_A, EP_1, true));
    assert.deepEqual(published(state), SPLIT);
    assert.deepEqual(decide(program(NET_A, EP_1, true), state), [], 'a repeat writes nothing');
  });

  it('ep1 (IPv4 gateway) leaves: Revoke, then ep2 becomes both gateways; ep2 (IPv6 gateway) leaves: ep1 alone', () => {
    const state = given(...container, program(NET_A, EP_1), program(NET_B, EP_2), revoke(NET_A, EP_1), { type: 'Leave', networkId: NET_A, endpointId: EP_1 }, program(NET_B, EP_2));
    assert.deepEqual(published(state), { ep1: '- ', ep2: 'programmed 8080' });
    const v6gone = given(...container, program(NET_A, EP_1), program(NET_B, EP_2), revoke(NET_B, EP_2), program(NET_A, EP_1));
    assert.deepEqual(published(v6gone), { ep1: 'programmed 8080', ep2: '- ' });
  });

  it('an IPv6 gateway without an IPv6 address is refused, naming it', () => {
    const state = given(...containerOf(true), program(NET_A, EP_1));
    assert.throws(
      () => decide(program(NET_B, EP_2), state),
      (e: DriverError) => e.code === 'LN_ERR_INVALID_OPTION' && /IPv6 gateway .* has no IPv6 address: its network needs --ipv6/.test(e.message),
    );
  });

  it('Docker 20.10 (old gateway revoked first) and endpoints of other containers are unaffected: a taken port is still refused', () => {
    const moved = given(...container, program(NET_A, EP_1), revoke(NET_A, EP_1), program(NET_B, EP_2));
    assert.deepEqual(published(moved), { ep1: '- ', ep2: 'programmed 8080' });
    const other = given(...container.slice(0, 5), { type: 'Join', networkId: NET_B, endpointId: EP_2, sandboxKey: '/var/run/docker/netns/another' }, program(NET_A, EP_1));
    assert.throws(() => decide(program(NET_B, EP_2), other), (e: DriverError) => e.code === 'LN_ERR_CONFLICT' && /tcp\/8080 is already published/.test(e.message));
  });
});
