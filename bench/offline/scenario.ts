// The host the offline benchmarks build: `endpoints` endpoints spread evenly over a tenth as
// many networks (at least one), each network a /24 of 10.100.0.0/14 with default options (so the
// firewall holds its isolation, icc and masquerade rules). As commands (for a state built from
// events) and as the plugin calls Docker would make for them.
import { bridgeName, peerName, vethName } from '../../src/events/domain/naming.ts';
import { freeze, type Draft } from 'immer';
import type { Command } from '../../src/events/domain/commands.ts';
import { decide } from '../../src/events/domain/decide.ts';
import { evolveInPlace } from '../../src/events/domain/evolve.ts';
import { emptyState, EventVersions, type EndpointSpec, type NetworkSpec, type State, type StoredEvent } from '../../src/events/domain/types.ts';
import { eventHash } from '../../src/events/log/hash.ts';

const hex64 = (kind: string, i: number) => `${kind}${i.toString(16).padStart(6, '0')}`.padEnd(64, '0');

export const networkId = (i: number) => hex64('bee7', i);
export const endpointId = (i: number) => hex64('e9d0', i);

/** Network `i`'s /24 (i < 1024). */
export function subnetOf(i: number): { pool: string; gateway: string; host: (k: number) => string } {
  const base = `10.${100 + (i >> 8)}.${i & 255}`;
  return { pool: `${base}.0/24`, gateway: `${base}.1/24`, host: (k) => `${base}.${k + 2}/24` };
}

export interface Layout {
  readonly networks: number;
  readonly endpoints: number;
  /** The network and the host number (0..) of endpoint `e`. */
  place(e: number): { net: number; k: number };
}

export function layout(endpoints: number): Layout {
  const networks = Math.max(1, Math.round(endpoints / 10));
  const per = Math.ceil(endpoints / networks);
  if (per > 250) throw new Error(`${per} endpoints per network do not fit a /24`);
  return { networks, endpoints, place: (e) => ({ net: Math.floor(e / per), k: e % per }) };
}

export function networkSpec(i: number): NetworkSpec {
  const id = networkId(i);
  const s = subnetOf(i);
  return { networkId: id, bridge: bridgeName(id), mtu: 1500, internal: false, ipv6: false, ipv4Data: [{ pool: s.pool, gateway: s.gateway, aux: {} }], ipv6Data: [], options: {} };
}

export function endpointSpec(l: Layout, e: number): EndpointSpec {
  const { net, k } = l.place(e);
  const id = endpointId(e);
  return { networkId: networkId(net), endpointId: id, veth: vethName(id), peer: peerName(id), address: subnetOf(net).host(k), addressV6: null, mac: null };
}

/** CreateNetwork for every network, then CreateEndpoint for every endpoint. */
export function hostCommands(l: Layout): Command[] {
  const out: Command[] = [];
  for (let n = 0; n < l.networks; n++) out.push({ type: 'CreateNetwork', spec: networkSpec(n) });
  for (let e = 0; e < l.endpoints; e++) out.push({ type: 'CreateEndpoint', spec: endpointSpec(l, e) });
  return out;
}

/** The body of Docker's NetworkDriver.CreateNetwork for network `i`. */
export function createNetworkBody(i: number): object {
  const s = subnetOf(i);
  return {
    NetworkID: networkId(i),
    Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': {} },
    IPv4Data: [{ AddressSpace: 'LocalDefault', Gateway: s.gateway, Pool: s.pool }],
    IPv6Data: [],
  };
}

/** The body of Docker's NetworkDriver.CreateEndpoint for endpoint `e`. */
export function createEndpointBody(l: Layout, e: number): object {
  const spec = endpointSpec(l, e);
  return { NetworkID: spec.networkId, EndpointID: spec.endpointId, Interface: { Address: spec.address, AddressIPv6: '', MacAddress: '' }, Options: {} };
}

/** The state after deciding and folding `cmds` in turn, stamped as the log stamps events; frozen, as the daemon's states are. */
export function stateFrom(cmds: readonly Command[]): State {
  const state = structuredClone(emptyState) as Draft<State>;
  for (const cmd of cmds) {
    for (const e of decide(cmd, state)) {
      const base = { ...e, seq: state.seq + 1, id: `bench:${state.seq + 1}`, host: 'bench', v: EventVersions[e.type], at: '2026-11-30T00:00:00.000Z', prevhash: state.hash };
      evolveInPlace(state, { ...base, hash: eventHash(base as Omit<StoredEvent, 'hash'>) } as StoredEvent);
    }
  }
  return freeze(state as State, true);
}
