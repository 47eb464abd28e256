// Docker 28+ with a container whose IPv4 and IPv6 gateways are two ledgernet endpoints: both get
// ProgramExternalConnectivity with the same ports, in the orders moby's updateExternalConnectivity
// sends them (old gateways first). IPv4 ports go to the IPv4 gateway only, whichever order; every
// repeat writes nothing; Docker 20.10's order (Revoke the old gateway, then Program the new) keeps
// working as before.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DriverError } from '../../../src/errors.ts';
import type { Command } from '../../../src/events/domain/commands.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import type { PortBinding, State } from '../../../src/events/domain/types.ts';
import { EP_1, EP_2, NET_A, NET_B, endpointSpec, given, networkSpec } from '../../helpers/events.ts';

const SANDBOX = '/var/run/docker/netns/28a0c0de28a0';
const ports: PortBinding[] = [{ proto: 6, port: 80, hostIp: '', hostPort: 8080, hostPortEnd: 8080 }];

/** A container on network A (endpoint 1) and network B (endpoint 2), both joined. */
const container: Command[] = [
  { type: 'CreateNetwork', spec: networkSpec(NET_A) },
  { type: 'CreateNetwork', spec: networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24') },
  { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) },
  { type: 'CreateEndpoint', spec: endpointSpec(NET_B, EP_2, '10.231.8.2/24') },
  { type: 'Join', networkId: NET_A, endpointId: EP_1, sandboxKey: SANDBOX },
  { type: 'Join', networkId: NET_B, endpointId: EP_2, sandboxKey: SANDBOX },
];

const program = (networkId: string, endpointId: string, ipv6Elsewhere?: boolean): Command => ({
  type: 'ProgramExternal',
  networkId,
  endpointId,
  portmap: ports,
  ...(ipv6Elsewhere === undefined ? {} : { ipv6Elsewhere }),
});
const revoke = (networkId: string, endpointId: string): Command => ({ type: 'RevokeExternal', networkId, endpointId });

/** Host ports each endpoint publishes, and whether it is programmed. */
function published(state: State): Record<string, string> {
  return Object.fromEntries(
    Object.values(state.endpoints).map((e) => [e.endpointId === EP_1 ? 'ep1' : 'ep2', `${e.programmed ? 'programmed' : '-'} ${e.portmap.map((p) => p.hostPort).join(',')}`]),
  );
}

describe('IPv4 and IPv6 gateways on two endpoints of one container (Docker 28+)', () => {
  it('v29: ep1 is the IPv4 gateway, ep2 joins as the IPv6 gateway (ep1 gets no new call): ep2 publishes no IPv4 ports', () => {
    const state = given(...container, program(NET_A, EP_1), program(NET_B, EP_2));
    assert.deepEqual(published(state), { ep1: 'programmed 8080', ep2: 'programmed ' });
    assert.deepEqual(decide(program(NET_B, EP_2), state), [], 'a repeat writes nothing');
    assert.deepEqual(decide(program(NET_A, EP_1), state), []);
  });

  it('v28: ep1 flips to the flagged IPv4-only gateway before or after ep2 is programmed: ep1 keeps the ports', () => {
    const after = given(...container, program(NET_A, EP_1, false), program(NET_B, EP_2, false), revoke(NET_A, EP_1), program(NET_A, EP_1, true));
    assert.deepEqual(published(after), { ep1: 'programmed 8080', ep2: 'programmed ' });
    const before = given(...container, program(NET_A, EP_1, false), revoke(NET_A, EP_1), program(NET_A, EP_1, true), program(NET_B, EP_2, false));
    assert.deepEqual(published(before), { ep1: 'programmed 8080', ep2: 'programmed ' });
  });

  it('the IPv4 role moves to ep1 while ep2 keeps IPv6: ep2 (programmed first) hands its IPv4 ports over, in one decision', () => {
    const state = given(...container, program(NET_B, EP_2), program(NET_B, EP_2), program(NET_A, EP_1, true));
    assert.deepEqual(published(state), { ep1: 'programmed 8080', ep2: 'programmed ' });
    assert.deepEqual(decide(program(NET_A, EP_1, true), state), [], 'a repeat writes nothing');
  });

  it('ep1 leaves: Revoke, then ep2 becomes both gateways and takes the ports', () => {
    const state = given(
      ...container,
      program(NET_A, EP_1),
      program(NET_B, EP_2),
      revoke(NET_A, EP_1),
      { type: 'Leave', networkId: NET_A, endpointId: EP_1 },
      program(NET_B, EP_2),
    );
    assert.deepEqual(published(state), { ep1: '- ', ep2: 'programmed 8080' });
  });

  it('Docker 20.10 (old gateway revoked first) and endpoints of other containers are unaffected: a taken port is still refused', () => {
    const moved = given(...container, program(NET_A, EP_1), revoke(NET_A, EP_1), program(NET_B, EP_2));
    assert.deepEqual(published(moved), { ep1: '- ', ep2: 'programmed 8080' });
    const other = given(...container.slice(0, 5), { type: 'Join', networkId: NET_B, endpointId: EP_2, sandboxKey: '/var/run/docker/netns/another' }, program(NET_A, EP_1));
    assert.throws(() => decide(program(NET_B, EP_2), other), (e: DriverError) => e.code === 'LN_ERR_CONFLICT' && /tcp\/8080 is already published/.test(e.message));
  });
});
