// How full each ledgernet IPAM pool is. Docker's `network inspect` shows an empty IPAM Status
// for a remote IPAM driver, so `ledgernet status` shows it instead, folded from the state alone.
import { canonicalIp, contains, isNetworkOrBroadcast, parseIp, parsePrefix, size } from './cidr.ts';
import { rangeOf, usable } from './ipam.ts';
import type { NetworkState, PoolState, State } from './types.ts';

export interface PoolUsage {
  readonly poolId: string;
  readonly pool: string;
  /** `--ip-range`, or null. */
  readonly subPool: string | null;
  readonly v6: boolean;
  /** The network on this pool, or null (a network being created, or a pool Docker never used). */
  readonly networkId: string | null;
  /** Addresses of the pool less its network and (IPv4) broadcast address. */
  readonly size: bigint;
  /** Held by containers (endpoints). */
  readonly inUse: number;
  /** Held but not by a container: the gateway and `--aux-address`es. */
  readonly reserved: number;
  /** Still free for an address Docker lets IPAM choose (inside `--ip-range` when given). */
  readonly available: bigint;
}

function networkOf(state: State, pool: string): NetworkState | null {
  for (const n of Object.values(state.networks)) {
    if ([...n.ipv4Data, ...n.ipv6Data].some((d) => d.pool === pool)) return n;
  }
  return null;
}

/** The aux addresses the network was created with in this pool, canonical, without length. */
function auxOf(net: NetworkState | null, pool: string): Set<string> {
  const out = new Set<string>();
  for (const d of net ? [...net.ipv4Data, ...net.ipv6Data] : []) {
    if (d.pool !== pool) continue;
    for (const a of Object.values(d.aux)) {
      const ip = canonicalIp(a.split('/')[0] ?? '');
      if (ip) out.add(ip);
    }
  }
  return out;
}

/** One pool's usage. */
function usageOf(state: State, p: PoolState): PoolUsage {
  const net = networkOf(state, p.pool);
  const aux = auxOf(net, p.pool);
  const range = rangeOf(p);
  let inUse = 0;
  let reserved = 0;
  let heldInRange = 0n;
  for (const [address, a] of Object.entries(p.allocated)) {
    if (a.kind === 'gateway' || aux.has(address)) reserved++;
    else inUse++;
    const ip = parseIp(address);
    if (ip && contains(range, ip.family, ip.value)) heldInRange++;
  }
  const prefix = parsePrefix(p.pool);
  const edges = prefix ? [prefix.base, prefix.base + size(prefix) - 1n].filter((v) => isNetworkOrBroadcast(prefix, v)) : [];
  const poolSize = prefix ? size(prefix) - BigInt(edges.length) : 0n;
  const free = usable(p) - heldInRange;
  return {
    poolId: p.poolId,
    pool: p.pool,
    subPool: p.subPool,
    v6: p.v6,
    networkId: net?.networkId ?? null,
    size: poolSize,
    inUse,
    reserved,
    available: free > 0n ? free : 0n,
  };
}

/** Every ledgernet IPAM pool with its usage, IPv4 first, then by pool. */
export function poolUsage(state: State): PoolUsage[] {
  return Object.values(state.pools)
    .map((p) => usageOf(state, p))
    .sort((a, b) => Number(a.v6) - Number(b.v6) || a.pool.localeCompare(b.pool, 'en', { numeric: true }));
}
