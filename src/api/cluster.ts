// IPAM for cluster networks (`--ipam-opt ledgernet.cluster=NAME`): the only Docker calls that
// wait for NATS. RequestPool joins the network in the cluster's KV bucket (the first host
// allocates subnet and VNI, every other host gets the same); RequestAddress claims another
// address block when this host's blocks are full (for a static address, the block that holds it,
// unless another host does), records it in the log, and then allocates from the log as for any pool.
import { DriverError } from '../errors.ts';
import { byDocker } from '../events/domain/cause.ts';
import { capturesHost, formatPrefix, parsePrefix } from '../events/domain/cidr.ts';
import { blockOf, pickFromBlocks, poolInUse, type ClusterNetwork, type ClusterPort } from '../events/domain/cluster.ts';
import type { Command, DefaultPool } from '../events/domain/commands.ts';
import { checkPeerAddress, proposePool, sizeOnly } from '../events/domain/ipam.ts';
import { lookup, type Cause, type PoolState, type State, type StoredEvent } from '../events/domain/types.ts';

interface ClusterIpamDeps {
  readonly store: { execute(cmd: Command, cause: Cause): Promise<StoredEvent[]>; readonly state: State };
  readonly cluster?: ClusterPort | undefined;
  readonly defaultPool: DefaultPool;
  readonly occupied: () => Promise<string[]>;
}

interface ClusterPoolRequest {
  readonly name: string;
  readonly pool: string;
  readonly subPool: string;
  readonly v6: boolean;
}

function invalid(method: string, msg: string): DriverError {
  return new DriverError('LN_ERR_INVALID_OPTION', `${method}: ${msg}`);
}

/** Joins (or creates) the cluster network, then records its pool in the log. Returns the events. */
export async function requestClusterPool(deps: ClusterIpamDeps, req: ClusterPoolRequest, method: string): Promise<StoredEvent[]> {
  const { name } = req;
  if (!deps.cluster) {
    throw invalid(method, `cluster network ${name} needs the cluster: run ledgernet serve with --nats (the cluster's servers) and --host`);
  }
  if (req.v6) throw invalid(method, `cluster network ${name}: cluster networks are IPv4 only; create it without --ipv6`);
  if (req.subPool !== '') throw invalid(method, `cluster network ${name}: --ip-range is not supported (each host allocates from the address blocks it claims)`);
  // `--subnet 0.0.0.0/26` (Docker 29): a subnet of that size, chosen as without --subnet.
  const sized = req.pool === '' ? null : sizeOnly(req.pool);
  let subnet: string | null = null;
  if (req.pool !== '' && sized?.family !== 4) {
    const p = parsePrefix(req.pool);
    if (!p || p.family !== 4) throw invalid(method, `--subnet ${req.pool} is not an IPv4 CIDR such as 10.240.0.0/16`);
    // Refused here as the log would refuse it, before the cluster holds it for every host.
    const why = capturesHost(p);
    if (why) throw invalid(method, `--subnet ${formatPrefix(p)} is refused: ${why}; choose a subnet of its own`);
    subnet = formatPrefix(p);
  }
  const occupied = subnet === null ? await deps.occupied() : [];
  const net = await deps.cluster.joinNetwork({
    name,
    subnet,
    ...(sized?.family === 4 ? { size: sized.len } : {}),
    propose: (taken) => proposePool({ pool: sized?.family === 4 ? req.pool : null, subPool: null, v6: false, defaults: deps.defaultPool, occupied: [...occupied, ...taken] }, deps.store.state),
  });
  // Until the pool is in the log, the member key joinNetwork wrote is kept by the heartbeat's sync (settle).
  let recorded = false;
  try {
    // The tunnel's MTU on this host, for the network's bridge and veths (withClusterMtu).
    const mtu = (await deps.cluster.vxlanMtu?.().catch(() => null)) ?? null;
    const events = await deps.store.execute({
      type: 'RequestPool',
      request: { pool: net.subnet, subPool: null, v6: false, defaults: deps.defaultPool, occupied: [], cluster: { name, vni: net.vni, blockLen: net.blockLen, ...(mtu !== null ? { mtu } : {}) } },
    }, byDocker(method));
    recorded = true;
    return events;
  } finally {
    deps.cluster.settle?.(name, recorded);
  }
}

const claiming = new Map<string, Promise<void>>();

/**
 * Before a dynamic address of a cluster pool: when this host's blocks are full, claims one more
 * block in the KV bucket and records it (one claim per pool at a time; the others wait for it),
 * as caused by `cause` (the call that needed the address).
 */
export async function ensureBlock(deps: ClusterIpamDeps, poolId: string, cause: Cause): Promise<void> {
  for (;;) {
    const pool = lookup(deps.store.state.pools, poolId);
    if (!pool?.cluster || pickFromBlocks(pool) !== null) return;
    const running = claiming.get(poolId);
    if (running) {
      await running;
      continue;
    }
    const claim = claimBlock(deps, pool, cause).finally(() => claiming.delete(poolId));
    claiming.set(poolId, claim);
    await claim;
    return;
  }
}

async function claimBlock(deps: ClusterIpamDeps, pool: PoolState, cause: Cause): Promise<void> {
  const c = pool.cluster;
  if (!deps.cluster || !c) {
    throw new DriverError('LN_ERR_CLUSTER_UNAVAILABLE', `cluster network ${c?.name ?? pool.pool}: this ledgernet runs without --nats; no address block can be claimed`);
  }
  const block = await deps.cluster.claimBlock(networkOf(pool, c), pool.blocks ?? []);
  await deps.store.execute({ type: 'ClaimBlock', poolId: pool.poolId, block }, cause);
}

function networkOf(pool: PoolState, c: NonNullable<PoolState['cluster']>): ClusterNetwork {
  return { name: c.name, subnet: pool.pool, vni: c.vni, blockLen: c.blockLen, createdBy: '' };
}

/**
 * Before a container's static address (`docker run --ip`, canonical) of a cluster pool: the block
 * that holds it must be this host's, or the host that holds it may hand the address out too. A
 * block no host holds is claimed in the KV bucket and recorded, as caused by `cause`; another
 * host's is refused, naming it (networks.ts claimBlockOf). Only once a network of this host uses
 * the pool (poolInUse: the gateway and aux addresses come before, the same on every host), and
 * not for an address the allocator refuses anyway (outside the pool, the network or broadcast
 * address, held here, or by another host's container): its refusal names that.
 */
export async function ensureBlockOf(deps: ClusterIpamDeps, poolId: string, address: string, cause: Cause): Promise<void> {
  const { state } = deps.store;
  const pool = lookup(state.pools, poolId);
  const c = pool?.cluster;
  if (!pool || !c || !poolInUse(state, pool.pool) || lookup(pool.allocated, address)) return;
  const block = blockOf(pool, address);
  const owned = pool.blocks ?? [];
  if (block === null || owned.includes(block)) return;
  // Held by another host's container: refused before a block is claimed for nothing.
  checkPeerAddress(pool, address, state);
  if (!deps.cluster) {
    throw new DriverError(
      'LN_ERR_CLUSTER_UNAVAILABLE',
      `cluster network ${c.name}: this ledgernet runs without --nats; address block ${block} (of address ${address}) cannot be claimed, ` +
        `and a static address must lie in a block this host holds (${owned.length > 0 ? owned.join(', ') : 'none yet'})`,
    );
  }
  await deps.cluster.claimBlockOf(networkOf(pool, c), block, { address, owned });
  await deps.store.execute({ type: 'ClaimBlock', poolId, block }, cause);
}
