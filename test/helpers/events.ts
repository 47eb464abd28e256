import type { Command } from '../../src/events/domain/commands.ts';
import { decide } from '../../src/events/domain/decide.ts';
import { fold } from '../../src/events/domain/evolve.ts';
import { eventHash } from '../../src/events/log/hash.ts';
import { emptyState, type EndpointSpec, type NetworkSpec, type NewEvent, type State, type StoredEvent } from '../../src/events/domain/types.ts';
import { bridgeName, peerName, vethName } from '../../src/events/domain/naming.ts';

export const NET_A = 'a'.repeat(8) + '0'.repeat(56);
export const NET_B = 'b'.repeat(8) + '1'.repeat(56);
export const EP_1 = 'e1'.repeat(4) + '2'.repeat(56);
export const EP_2 = 'e2'.repeat(4) + '3'.repeat(56);

export function networkSpec(networkId: string, subnet = '10.231.7.0/24', gateway = '10.231.7.1/24'): NetworkSpec {
  return {
    networkId,
    bridge: bridgeName(networkId),
    mtu: 1500,
    internal: false,
    ipv6: false,
    ipv4Data: [{ pool: subnet, gateway, aux: {} }],
    ipv6Data: [],
    options: {},
  };
}

export function endpointSpec(networkId: string, endpointId: string, address = '10.231.7.2/24'): EndpointSpec {
  return { networkId, endpointId, veth: vethName(endpointId), peer: peerName(endpointId), address, addressV6: null, mac: null };
}

/** Stamps events the way the log does (seq, id, hash chain), without a clock. */
export function stamp(events: readonly NewEvent[], from: State): StoredEvent[] {
  let prev = from.hash;
  let seq = from.seq;
  return events.map((e) => {
    seq += 1;
    const base = { ...e, seq, id: `h:${seq}`, host: 'h', v: 1, at: '2026-11-23T00:00:00.000Z', prevhash: prev };
    const hash = eventHash(base as Omit<StoredEvent, 'hash'>);
    prev = hash;
    return { ...base, hash } as StoredEvent;
  });
}

/** The state after deciding and folding each command in turn (given … when … then). */
export function given(...cmds: Command[]): State {
  let state = emptyState;
  for (const c of cmds) state = fold(state, stamp(decide(c, state), state));
  return state;
}

/** Two containers' endpoints on network `web` (10.231.79.0/24), one after the other at one address: web-1 had 10.231.79.2 and went, then job-7 got it (events --container/--address, audit filters). */
export const ADDRESS_HISTORY = {
  network: 'abcdef0123456789'.repeat(4),
  endpoints: ['1a'.repeat(32), '2b'.repeat(32)] as const,
  containers: ['ca'.repeat(32), 'cb'.repeat(32)] as const,
  events(): NewEvent[] {
    const [a, b] = this.endpoints;
    const [ca, cb] = this.containers;
    const net = this.network;
    return [
      { type: 'network.created', data: networkSpec(net, '10.231.79.0/24', '10.231.79.1/24') },
      { type: 'network.named', data: { networkId: net, name: 'web' } },
      { type: 'endpoint.created', data: endpointSpec(net, a, '10.231.79.2/24') },
      { type: 'endpoint.joined', data: { networkId: net, endpointId: a, sandboxKey: '/var/run/docker/netns/x' } },
      { type: 'endpoint.named', data: { networkId: net, endpointId: a, containerId: ca, name: 'web-1' } },
      { type: 'endpoint.deleted', data: { networkId: net, endpointId: a } },
      { type: 'endpoint.created', data: endpointSpec(net, b, '10.231.79.2/24') },
      { type: 'endpoint.named', data: { networkId: net, endpointId: b, containerId: cb, name: 'job-7' } },
    ];
  },
};
