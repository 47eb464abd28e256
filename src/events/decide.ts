import { isDeepStrictEqual } from 'node:util';
import { DriverError } from '../errors.ts';
import type { Command } from './commands.ts';
import { short } from './names.ts';

export { short };
import {
  checkNetworkOverlap,
  decideReleaseAddress,
  decideReleasePool,
  decideRequestAddress,
  decideRequestPool,
} from './ipam.ts';
import { resolvePorts } from './ports.ts';
import type { EndpointState, NetworkState, NewEvent, State } from './types.ts';

/**
 * Decides which events a command produces against the current state, or refuses it with a
 * DriverError. Pure. Repeating a call Docker already made (a retry) produces no events.
 */
export function decide(cmd: Command, state: State): NewEvent[] {
  switch (cmd.type) {
    case 'CreateNetwork': {
      const existing = state.networks[cmd.spec.networkId];
      if (existing) {
        if (sameNetwork(existing, cmd.spec)) return [];
        throw new DriverError(
          'LN_ERR_CONFLICT',
          `network ${short(cmd.spec.networkId)} already exists in ledgernet with other settings; remove it first`,
        );
      }
      const clash = Object.values(state.networks).find((n) => n.bridge === cmd.spec.bridge);
      if (clash) {
        throw new DriverError(
          'LN_ERR_CONFLICT',
          `bridge name ${cmd.spec.bridge} is already used by network ${short(clash.networkId)}`,
        );
      }
      checkNetworkOverlap(
        state,
        cmd.spec.networkId,
        [...cmd.spec.ipv4Data, ...cmd.spec.ipv6Data].map((d) => d.pool),
      );
      return [{ type: 'network.created', data: cmd.spec }];
    }
    case 'DeleteNetwork': {
      if (!state.networks[cmd.networkId]) return [];
      return [...endpointDeletions(state, cmd.networkId), { type: 'network.deleted', data: { networkId: cmd.networkId } }];
    }
    case 'RollbackNetwork':
      if (!state.networks[cmd.networkId]) return [];
      return [{ type: 'network.rolledback', data: { networkId: cmd.networkId, reason: cmd.reason } }];
    case 'CollectNetwork': {
      const net = state.networks[cmd.networkId];
      if (!net) return [];
      const subnets = new Set([...net.ipv4Data, ...net.ipv6Data].map((d) => d.pool));
      return [
        ...endpointDeletions(state, cmd.networkId),
        { type: 'network.collected', data: { networkId: cmd.networkId, reason: cmd.reason } },
        // Docker releases a network's IPAM pools after DeleteNetwork; those calls were lost too.
        ...Object.values(state.pools)
          .filter((p) => subnets.has(p.pool))
          .map((p): NewEvent => ({ type: 'pool.released', data: { poolId: p.poolId } })),
      ];
    }
    case 'CreateEndpoint': {
      requireNetwork(state, cmd.spec.networkId);
      const existing = state.endpoints[cmd.spec.endpointId];
      if (existing) {
        if (existing.networkId === cmd.spec.networkId && existing.address === cmd.spec.address) return [];
        throw new DriverError('LN_ERR_CONFLICT', `endpoint ${short(cmd.spec.endpointId)} already exists with other settings`);
      }
      return [{ type: 'endpoint.created', data: cmd.spec }];
    }
    case 'Join': {
      const ep = requireEndpoint(state, cmd.networkId, cmd.endpointId);
      if (ep.joined && ep.sandboxKey === cmd.sandboxKey) return [];
      return [{ type: 'endpoint.joined', data: { networkId: cmd.networkId, endpointId: cmd.endpointId, sandboxKey: cmd.sandboxKey } }];
    }
    case 'Leave': {
      const ep = state.endpoints[cmd.endpointId];
      if (!ep || !ep.joined) return [];
      return [{ type: 'endpoint.left', data: { networkId: cmd.networkId, endpointId: cmd.endpointId } }];
    }
    case 'DeleteEndpoint':
      if (!state.endpoints[cmd.endpointId]) return [];
      return [{ type: 'endpoint.deleted', data: { networkId: cmd.networkId, endpointId: cmd.endpointId } }];
    case 'RollbackEndpoint':
      if (!state.endpoints[cmd.endpointId]) return [];
      return [
        { type: 'endpoint.rolledback', data: { networkId: cmd.networkId, endpointId: cmd.endpointId, reason: cmd.reason } },
      ];
    case 'ProgramExternal': {
      const ep = requireEndpoint(state, cmd.networkId, cmd.endpointId);
      // Host ports Docker left to us (-P, ranges) are chosen here and recorded in the event.
      const portmap = resolvePorts(cmd.portmap, state, ep);
      if (ep.programmed && isDeepStrictEqual(ep.portmap, portmap)) return [];
      return [
        {
          type: 'endpoint.external.programmed',
          data: { networkId: cmd.networkId, endpointId: cmd.endpointId, portmap },
        },
      ];
    }
    case 'RevokeExternal': {
      const ep = state.endpoints[cmd.endpointId];
      if (!ep || !ep.programmed) return [];
      return [{ type: 'endpoint.external.revoked', data: { networkId: cmd.networkId, endpointId: cmd.endpointId } }];
    }
    case 'MarkLost': {
      const ep = state.endpoints[cmd.endpointId];
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
      return decideReleaseAddress(cmd.poolId, cmd.address, state);
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
  const { createdSeq: _ignored, ...rest } = a;
  return isDeepStrictEqual(rest, b);
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

function requireNetwork(state: State, networkId: string): NetworkState {
  const net = state.networks[networkId];
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
  const ep = state.endpoints[endpointId];
  if (!ep || ep.networkId !== networkId) {
    throw new DriverError(
      'LN_ERR_UNKNOWN_ENDPOINT',
      `endpoint ${short(endpointId)} is not known to ledgernet on network ${short(networkId)}`,
    );
  }
  return ep;
}

