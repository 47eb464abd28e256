import { DriverError } from '../../errors.ts';
import type { Command } from './commands.ts';
import type { State } from './types.ts';

/**
 * The operator's escape hatch for objects Docker no longer knows (a crash between the log's
 * fsync and Docker's answer, a network removed while ledgernet was down): `target` is a network
 * id (or a unique prefix of at least 12 hex), else an endpoint id (the same), a pool CIDR that
 * ledgernet IPAM holds, or an address it handed out (not a gateway). Pure.
 */
export function releaseCommand(state: State, target: string): Command {
  if (/^[0-9a-f]{12,64}$/.test(target)) {
    const ids = Object.keys(state.networks).filter((id) => id.startsWith(target));
    if (ids.length === 1) return { type: 'DeleteNetwork', networkId: ids[0] as string };
    if (ids.length > 1) throw new DriverError('LN_ERR_BAD_REQUEST', `${target} matches ${ids.length} ledgernet networks; give more of the id`);
    // An endpoint Docker abandoned (e.g. its CreateEndpoint was cut off by a crash): `ledgernet repair`.
    const eps = Object.values(state.endpoints).filter((e) => e.endpointId.startsWith(target));
    if (eps.length === 1) return { type: 'DeleteEndpoint', networkId: (eps[0] as { networkId: string }).networkId, endpointId: (eps[0] as { endpointId: string }).endpointId };
    if (eps.length > 1) throw new DriverError('LN_ERR_BAD_REQUEST', `${target} matches ${eps.length} ledgernet endpoints; give more of the id`);
    throw new DriverError('LN_ERR_UNKNOWN_NETWORK', `no ledgernet network id starts with ${target}, nor any endpoint id (see ledgernet status)`);
  }
  const pool = Object.values(state.pools).find((p) => p.pool === target || p.poolId === target);
  if (pool) return { type: 'ReleasePool', poolId: pool.poolId };
  // An address ledgernet IPAM holds that Docker does not (a RequestAddress answered to a call that
  // was then cut off and sent again): `ledgernet repair`.
  const holders = Object.values(state.pools).filter((p) => p.allocated[target] !== undefined && p.allocated[target]?.kind !== 'gateway');
  if (holders.length === 1) return { type: 'ReleaseAddress', poolId: (holders[0] as { poolId: string }).poolId, address: target };
  if (holders.length > 1) throw new DriverError('LN_ERR_BAD_REQUEST', `${target} is held in ${holders.length} pools; release the pool instead`);
  throw new DriverError(
    'LN_ERR_BAD_REQUEST',
    `${target} is neither a ledgernet network or endpoint id (12 to 64 hex), nor a pool or an address ledgernet IPAM holds (see ledgernet status)`,
  );
}
