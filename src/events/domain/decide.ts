import { isDeepStrictEqual } from 'node:util';
import { DriverError } from '../../errors.ts';
import type { Command, MacChoice } from './commands.ts';
import { short } from './naming.ts';

export { short };
import {
  checkNetworkOverlap,
  decideReleaseAddress,
  decideReleasePool,
  decideRequestAddress,
  decideRequestPool,
  poolsOfNetwork,
} from './ipam.ts';
import { contains, isNetworkOrBroadcast, parseAddrLen } from './cidr.ts';
import { checkClusterNetwork, decideClaimBlock, withClusterMtu } from './cluster.ts';
import { decideNames } from './names.ts';
import { decidePeerChange } from './peers.ts';
import { hostBindingIpv4 } from './options.ts';
import { checkPortFamilies, checkProxiedPorts, gatewayRole, resolvePorts, staleEndpoints } from './ports.ts';
import { portRuns } from './port-runs.ts';
import { lookup, type EndpointSpec, type EndpointState, type IpamData, type NetworkState, type NewEvent, type State } from './types.ts';

/**
 * Decides which events a command produces against the current state, or refuses it with a
 * DriverError. Pure. Repeating a call Docker already made (a retry) produces no events.
 */
export function decide(cmd: Command, state: State): NewEvent[] {
  switch (cmd.type) {
    case 'CreateNetwork': {
      // A cluster network's MTU fits its tunnel: the given one, checked, or by default the tunnel's.
      const spec = withClusterMtu(cmd.spec, state);
      const existing = lookup(state.networks, spec.networkId);
      if (existing) {
        if (sameNetwork(existing, spec)) return [];
        throw new DriverError(
          'LN_ERR_CONFLICT',
          `network ${short(spec.networkId)} already exists in ledgernet with other settings; remove it first`,
        );
      }
      // Taken from Docker's API (api/deferred-network.ts): only with a CreateNetwork answered without its body.
      if (spec.adopted && (state.deferredNetworks ?? []).length === 0) {
        throw new DriverError('LN_ERR_CONFLICT', `network ${short(spec.networkId)}: no CreateNetwork was answered without its body, so it is not taken from Docker's API`);
      }
      const clash = Object.values(state.networks).find((n) => n.bridge === spec.bridge);
      if (clash) {
        throw new DriverError(
          'LN_ERR_CONFLICT',
          `bridge name ${spec.bridge} is already used by network ${short(clash.networkId)}`,
        );
      }
      checkClusterNetwork(spec, state);
      checkNetworkOverlap(state, spec.networkId, [...spec.ipv4Data, ...spec.ipv6Data]);
      return [{ type: 'network.created', data: spec }];
    }
    case 'DeleteNetwork': {
      if (!lookup(state.networks, cmd.networkId)) return [];
      return [...endpointDeletions(state, cmd.networkId), { type: 'network.deleted', data: { networkId: cmd.networkId } }];
    }
    case 'RollbackNetwork':
      if (!lookup(state.networks, cmd.networkId)) return [];
      return [{ type: 'network.rolledback', data: { networkId: cmd.networkId, reason: cmd.reason } }];
    case 'CollectNetwork': {
      const net = lookup(state.networks, cmd.networkId);
      if (!net) return [];
      return [
        ...endpointDeletions(state, cmd.networkId),
        { type: 'network.collected', data: { networkId: cmd.networkId, reason: cmd.reason } },
        // Docker releases a network's IPAM pools after DeleteNetwork; those calls were lost too. Only
        // its own: a pool of the same subnet that another driver's network got from ledgernet IPAM stays.
        ...poolsOfNetwork(state, [...net.ipv4Data, ...net.ipv6Data])
          .map((p): NewEvent => ({ type: 'pool.released', data: { poolId: p.poolId } })),
      ];
    }
    case 'CreateEndpoint': {
      const net = requireNetwork(state, cmd.spec.networkId);
      const existing = lookup(state.endpoints, cmd.spec.endpointId);
      if (existing) {
        if (existing.networkId === cmd.spec.networkId && existing.address === cmd.spec.address) return [];
        throw new DriverError('LN_ERR_CONFLICT', `endpoint ${short(cmd.spec.endpointId)} already exists with other settings`);
      }
      // Created at its Join (api/deferred-endpoint.ts): only with a CreateEndpoint answered without its body.
      if (cmd.spec.deferred && (state.deferred ?? []).length === 0) {
        throw new DriverError('LN_ERR_UNKNOWN_ENDPOINT', `endpoint ${short(cmd.spec.endpointId)} is not known to ledgernet on network ${short(cmd.spec.networkId)}`);
      }
      checkEndpoint(state, net, cmd.spec);
      if (cmd.requestedMac === true && cmd.spec.mac !== null) checkMacFree(state, cmd.spec.networkId, cmd.spec.endpointId, cmd.spec.mac);
      // Chosen here, against every endpoint decided so far (durable or not), so that two calls at once cannot both take one MAC.
      const mac = cmd.spec.mac ?? (cmd.macChoice ? chooseMac(state, cmd.spec, cmd.macChoice) : null);
      return [{ type: 'endpoint.created', data: { ...cmd.spec, mac } }];
    }
    case 'Join': {
      const ep = requireEndpoint(state, cmd.networkId, cmd.endpointId);
      if (ep.joined && ep.sandboxKey === cmd.sandboxKey) return [];
      return [{ type: 'endpoint.joined', data: { networkId: cmd.networkId, endpointId: cmd.endpointId, sandboxKey: cmd.sandboxKey } }];
    }
    case 'Leave': {
      // A missing endpoint is fine (Docker repeats teardown calls); another network's is not.
      const ep = endpointOf(state, cmd.networkId, cmd.endpointId);
      if (!ep || !ep.joined) return [];
      return [{ type: 'endpoint.left', data: { networkId: cmd.networkId, endpointId: cmd.endpointId } }];
    }
    case 'DeleteEndpoint':
      if (!endpointOf(state, cmd.networkId, cmd.endpointId)) return [];
      return [{ type: 'endpoint.deleted', data: { networkId: cmd.networkId, endpointId: cmd.endpointId } }];
    case 'RollbackEndpoint':
      if (!endpointOf(state, cmd.networkId, cmd.endpointId)) return [];
      return [
        { type: 'endpoint.rolledback', data: { networkId: cmd.networkId, endpointId: cmd.endpointId, reason: cmd.reason } },
      ];
    case 'DeferEndpoint':
      return [{ type: 'endpoint.deferred', data: { reason: cmd.reason } }];
    case 'DeferNetwork':
      return [{ type: 'network.deferred', data: { reason: cmd.reason } }];
    case 'AddressEndpoint': {
      const ep = requireEndpoint(state, cmd.networkId, cmd.endpointId);
      const { address, addressV6, mac } = cmd;
      if (ep.address === address && ep.addressV6 === addressV6 && ep.mac === mac) return [];
      // Only an endpoint created at its Join learns its addresses; any other's came with its CreateEndpoint.
      if (!ep.deferred) {
        throw new DriverError('LN_ERR_CONFLICT', `endpoint ${short(cmd.endpointId)} has its addresses from its CreateEndpoint; nothing was changed`);
      }
      checkAddresses(requireNetwork(state, cmd.networkId), { address, addressV6 });
      return [{ type: 'endpoint.addressed', data: { networkId: cmd.networkId, endpointId: cmd.endpointId, address, addressV6, mac } }];
    }
    case 'ProgramExternal': {
      // An older endpoint of the same container on this network is stale: released first, in the same append.
      const ep = requireEndpoint(state, cmd.networkId, cmd.endpointId);
      const stale = staleEndpoints(state, ep, cmd.containerId);
      if (stale.length === 0) return decideProgram(cmd, state, ep);
      const gone = new Set(stale.map((e) => (e.type === 'endpoint.deleted' ? e.data.endpointId : '')));
      const rest = { ...state, endpoints: Object.fromEntries(Object.entries(state.endpoints).filter(([id]) => !gone.has(id))) };
      return [...stale, ...decideProgram(cmd, rest, ep)];
    }
    case 'RecordNames':
      return decideNames(cmd.networks, cmd.endpoints, state);
    case 'RecordArchive':
      return [{ type: 'log.archived', data: { first: cmd.first, last: cmd.last, archive: cmd.archive, bytes: cmd.bytes } }];
    case 'RecordForgottenHost':
      return [{ type: 'cluster.host.forgotten', data: { host: cmd.host, networks: cmd.networks, retired: cmd.retired, blocks: cmd.blocks } }];
    case 'RevokeExternal': {
      const ep = endpointOf(state, cmd.networkId, cmd.endpointId);
      if (!ep || !ep.programmed) return [];
      return [{ type: 'endpoint.external.revoked', data: { networkId: cmd.networkId, endpointId: cmd.endpointId } }];
    }
    case 'MarkLost': {
      const ep = lookup(state.endpoints, cmd.endpointId);
      if (!ep || ep.lost) return [];
      return [
        { type: 'endpoint.lost', data: { networkId: ep.networkId, endpointId: ep.endpointId, veth: ep.veth, reason: cmd.reason } },
      ];
    }
    case 'RequestPool':
      return decideRequestPool(cmd.request, state);
    case 'ReleasePool':
      return decideReleasePool(cmd.poolId, state);
    case 'RequestAddress':
      return decideRequestAddress(cmd, state);
    case 'ReleaseAddress':
      return decideReleaseAddress(cmd.poolId, cmd.address, state, cmd.reason);
    case 'ClaimBlock':
      return decideClaimBlock(cmd.poolId, cmd.block, state);
    case 'PeerChange':
      return decidePeerChange(cmd.change, state.peers ?? {}, cmd.self);
    case 'RecordReconcile':
      if (cmd.actions.length === 0 && cmd.failures.length === 0) return [];
      return [{ type: 'reconcile.applied', data: { trigger: cmd.trigger, actions: cmd.actions, failures: cmd.failures } }];
    default: {
      const never: never = cmd;
      throw new Error(`unknown command ${(never as Command).type}`);
    }
  }
}

function sameNetwork(a: NetworkState, b: Omit<NetworkState, 'createdSeq'>): boolean {
  // Its name came from Docker's API after it was created (names.ts), not with the call.
  const { createdSeq: _ignored, name: _named, ...rest } = a;
  // Recorded before AddressSpace was kept: a repeat of its call is not told apart by it.
  const like = (mine: readonly IpamData[], theirs: readonly IpamData[]): IpamData[] =>
    theirs.map((d, i) => {
      if (mine[i]?.addressSpace !== undefined) return d;
      const { addressSpace: _space, ...old } = d;
      return old;
    });
  return isDeepStrictEqual(rest, { ...b, ipv4Data: like(a.ipv4Data, b.ipv4Data), ipv6Data: like(a.ipv6Data, b.ipv6Data) });
}

function endpointsOf(state: State, networkId: string): EndpointState[] {
  return Object.values(state.endpoints)
    .filter((ep) => ep.networkId === networkId)
    .sort((x, y) => x.createdSeq - y.createdSeq);
}

/** A network's endpoints go before it does, oldest first. */
function endpointDeletions(state: State, networkId: string): NewEvent[] {
  return endpointsOf(state, networkId).map(
    (ep): NewEvent => ({ type: 'endpoint.deleted', data: { networkId: ep.networkId, endpointId: ep.endpointId } }),
  );
}

/**
 * The endpoint, or null when ledgernet does not have it (teardown calls stay idempotent).
 * @throws DriverError `LN_ERR_CONFLICT` when it belongs to another network.
 */
function endpointOf(state: State, networkId: string, endpointId: string): EndpointState | null {
  const ep = lookup(state.endpoints, endpointId);
  if (!ep) return null;
  if (ep.networkId !== networkId) {
    throw new DriverError(
      'LN_ERR_CONFLICT',
      `endpoint ${short(endpointId)} belongs to network ${short(ep.networkId)}, not to network ${short(networkId)}; nothing was changed`,
    );
  }
  return ep;
}

/** A new endpoint's names must be its own, and its addresses inside the network's subnets. */
function checkEndpoint(state: State, net: NetworkState, spec: EndpointSpec): void {
  const twin = Object.values(state.endpoints).find((ep) => ep.veth === spec.veth || ep.peer === spec.peer);
  if (twin) {
    throw new DriverError(
      'LN_ERR_CONFLICT',
      `endpoint ${short(spec.endpointId)} would get the interface names ${spec.veth}/${spec.peer}, which endpoint ` +
        `${short(twin.endpointId)} already has (their ids share the first 11 hex characters); remove and create the container again`,
    );
  }
  checkAddresses(net, spec);
}

/** The other endpoint of the network that has `mac`, if any (two endpoints with one MAC on a bridge both lose traffic). */
function macHolder(state: State, networkId: string, endpointId: string, mac: string): EndpointState | undefined {
  return Object.values(state.endpoints).find((ep) => ep.networkId === networkId && ep.endpointId !== endpointId && !ep.lost && ep.mac === mac);
}

function checkMacFree(state: State, networkId: string, endpointId: string, mac: string): void {
  const holder = macHolder(state, networkId, endpointId, mac);
  if (holder) {
    throw new DriverError('LN_ERR_CONFLICT', `ledgernet.mac=${mac} is already the MAC address of endpoint ${short(holder.endpointId)} on network ${short(networkId)}; give another`);
  }
}

/**
 * The MAC of a new endpoint given none: the one derived from its address unless another endpoint
 * of the network has it (asked for with ledgernet.mac), then the random fallback.
 * @throws DriverError `LN_ERR_CONFLICT` when the fallback is taken too (1 in 2^46 per endpoint): nothing recorded, Docker's next try draws another.
 */
function chooseMac(state: State, spec: EndpointSpec, choice: MacChoice): string {
  const derived = macHolder(state, spec.networkId, spec.endpointId, choice.derived);
  if (!derived) return choice.derived;
  const fallback = macHolder(state, spec.networkId, spec.endpointId, choice.fallback);
  if (!fallback) return choice.fallback;
  throw new DriverError(
    'LN_ERR_CONFLICT',
    `endpoint ${short(spec.endpointId)}: the MAC derived from its address (${choice.derived}) is that of endpoint ${short(derived.endpointId)} and the random one drawn instead ` +
      `(${choice.fallback}) that of endpoint ${short(fallback.endpointId)} on network ${short(spec.networkId)}; nothing was changed, try again`,
  );
}

/** An endpoint's addresses must be host addresses in the network's subnets. */
function checkAddresses(net: NetworkState, spec: Pick<EndpointSpec, 'address' | 'addressV6'>): void {
  for (const [address, data, flag] of [
    [spec.address, net.ipv4Data, 'Address'],
    [spec.addressV6, net.ipv6Data, 'AddressIPv6'],
  ] as const) {
    const a = address === null ? null : parseAddrLen(address);
    if (!a) continue;
    if (data.length === 0) {
      throw new DriverError('LN_ERR_IPAM_ADDRESS', `Interface.${flag} ${address} is given, but network ${short(net.networkId)} has no subnet of that family`);
    }
    const pools = data.map((d) => parseAddrLen(d.pool)?.prefix);
    if (!pools.some((p) => p && contains(p, a.family, a.value) && !isNetworkOrBroadcast(p, a.value))) {
      throw new DriverError(
        'LN_ERR_IPAM_ADDRESS',
        `Interface.${flag} ${address} is not a host address in the subnets of network ${short(net.networkId)} (${data.map((d) => d.pool).join(', ')})`,
      );
    }
  }
}

function requireNetwork(state: State, networkId: string): NetworkState {
  const net = lookup(state.networks, networkId);
  if (!net) {
    throw new DriverError(
      'LN_ERR_UNKNOWN_NETWORK',
      `network ${short(networkId)} is not known to ledgernet (was it created with another driver, or removed?)`,
    );
  }
  return net;
}

function requireEndpoint(state: State, networkId: string, endpointId: string): EndpointState {
  requireNetwork(state, networkId);
  const ep = lookup(state.endpoints, endpointId);
  if (!ep || ep.networkId !== networkId) {
    throw new DriverError(
      'LN_ERR_UNKNOWN_ENDPOINT',
      `endpoint ${short(endpointId)} is not known to ledgernet on network ${short(networkId)}`,
    );
  }
  return ep;
}

/** ProgramExternalConnectivity of `ep` (its stale rivals already out of `state`). */
function decideProgram(cmd: Extract<Command, { type: 'ProgramExternal' }>, state: State, ep: EndpointState): NewEvent[] {
  // A port published without an address binds to the network's host_binding_ipv4, if set.
  const binding = hostBindingIpv4(requireNetwork(state, cmd.networkId).options);
  const bound = binding === null ? cmd.portmap : cmd.portmap.map((p) => (p.hostIp === '' ? { ...p, hostIp: binding } : p));
  // Flagged (Docker 28+), IPv6 is served by the container's other gateway: its IPv6-only bindings are not ours.
  // A deferred endpoint's families are not known until its container is read (api/deferred-endpoint.ts).
  const unknownFamilies = ep.deferred === true && ep.address === null && ep.addressV6 === null;
  if (cmd.ipv6Elsewhere !== true && !unknownFamilies) checkPortFamilies(bound, ep);
  checkProxiedPorts(bound);
  // With separate IPv4 and IPv6 gateways (Docker 28+), each publishes its family's side of the ports.
  const role = gatewayRole(state, ep, cmd.ipv6Elsewhere === true);
  const view = { ...state, endpoints: { ...state.endpoints, ...Object.fromEntries(role.mates.map((m) => [m.endpointId, m])) } };
  // Host ports Docker left to us (-P, ranges) are chosen here and recorded in the event.
  const portmap = resolvePorts(bound, view, ep, role.partner === null ? null : (view.endpoints[role.partner.endpointId] ?? null), cmd.hostListeners);
  if (ep.programmed && isDeepStrictEqual(ep.portmap, portmap) && ep.portFamily === role.family && role.mates.length === 0) return [];
  return [...role.mates, { ...ep, portmap, portFamily: role.family }].map((e) => ({
    type: 'endpoint.external.programmed' as const,
    data: { networkId: e.networkId, endpointId: e.endpointId, portmap: portRuns(e.portmap), ...(e.portFamily === undefined ? {} : { family: e.portFamily }) },
  }));
}
