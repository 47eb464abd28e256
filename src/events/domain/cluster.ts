// Cluster networks (one segment across hosts, coordinated in a NATS JetStream KV bucket): the
// pure part. Which VNI a name tries first, how a subnet is cut into address blocks, which address
// a host hands out from the blocks it claimed, and the checks that tie a network (`-o
// ledgernet.cluster=NAME`) to its ledgernet IPAM pool (`--ipam-opt ledgernet.cluster=NAME`).
import { createHash } from 'node:crypto';
import { DriverError } from '../../errors.ts';
import { bits, contains, formatIp, formatPrefix, isNetworkOrBroadcast, parseIp, parsePrefix, size, type Prefix } from './cidr.ts';
import { clusterOf, givenMtu } from './options.ts';
import { lookup, releasedAt, type NetworkSpec, type NewEvent, type PoolState, type State } from './types.ts';

/** What the KV bucket holds for one cluster network: the same on every host. */
export interface ClusterNetwork {
  readonly name: string;
  readonly subnet: string;
  readonly vni: number;
  /** Prefix length of the address blocks hosts claim. */
  readonly blockLen: number;
  /** The host that allocated subnet and VNI. */
  readonly createdBy: string;
}

/** What joining a cluster network needs: the given --subnet, or a proposal from the host. */
export interface JoinRequest {
  readonly name: string;
  readonly subnet: string | null;
  /** Without subnet: the prefix length asked for (`--subnet 0.0.0.0/26`); a network the cluster holds with another is refused. */
  readonly size?: number;
  /** A free subnet on this host that avoids those the cluster holds (for a network without --subnet). */
  readonly propose: (taken: readonly string[]) => string;
}

/** The cluster's coordination as the api uses it (src/events/cluster/kv.ts over NATS KV). */
export interface ClusterPort {
  joinNetwork(req: JoinRequest): Promise<ClusterNetwork>;
  /**
   * The RequestPool that joined `name` is over: `recorded`, its pool is in the log; else it was
   * refused after joining, and this host's member key is removed unless another pool holds it.
   */
  settle?(name: string, recorded: boolean): void;
  /** Claims a free address block of the network for this host; returns its CIDR. */
  claimBlock(net: ClusterNetwork, owned: readonly string[]): Promise<string>;
  /**
   * Claims `block` of the network for this host, the block of a container's static address
   * (`of.address`): done when no host or this host holds it. Refused (`LN_ERR_IPAM_ADDRESS`) when
   * another host does, naming it and this host's blocks (`of.owned`, its log).
   */
  claimBlockOf(net: ClusterNetwork, block: string, of: StaticAddress): Promise<void>;
  /** The largest MTU a cluster network can have on this host: its underlay's − VXLAN_OVERHEAD (null: unknown). */
  vxlanMtu?(): Promise<number | null>;
}

/** A container's static address a block is claimed for, and the blocks this host's log has (named in a refusal). */
export interface StaticAddress {
  readonly address: string;
  readonly owned: readonly string[];
}

/** What VXLAN adds to a frame: outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14). */
export const VXLAN_OVERHEAD = 50;

/** VNIs ledgernet hands out: above the 4096 a VLAN-minded operator may map one to one. */
const VNI_MIN = 4096;
const VNI_SPAN = (1 << 24) - VNI_MIN;

/** The VNI a cluster network's name tries first; concurrent creators of one name try the same. */
export function firstVni(name: string): number {
  return VNI_MIN + (createHash('sha256').update(name).digest().readUInt32BE(0) % VNI_SPAN);
}

/** The VNI after `vni`, wrapping inside the range ledgernet hands out. */
export function nextVni(vni: number): number {
  return vni + 1 >= VNI_MIN + VNI_SPAN ? VNI_MIN : vni + 1;
}

/** Blocks are /26 (64 addresses, Calico's size), or a quarter of a smaller subnet. */
export function blockLenFor(subnet: string): number {
  const p = mustPrefix(subnet);
  return Math.min(bits(p.family), Math.max(26, p.len + 2));
}

export function blockCount(subnet: string, blockLen: number): number {
  return 2 ** (blockLen - mustPrefix(subnet).len);
}

/** Block `index` of the subnet, as a CIDR. */
export function blockAt(subnet: string, blockLen: number, index: number): string {
  const p = mustPrefix(subnet);
  const step = 1n << BigInt(bits(p.family) - blockLen);
  return formatPrefix({ family: p.family, base: p.base + BigInt(index) * step, len: blockLen });
}

/** The index of `block` in the subnet (`blockAt` undone), or null when it is not one of its blocks. */
export function blockIndex(subnet: string, blockLen: number, block: string): number | null {
  const p = mustPrefix(subnet);
  const b = parsePrefix(block);
  if (!b || b.family !== p.family || b.len !== blockLen) return null;
  const step = 1n << BigInt(bits(p.family) - blockLen);
  const i = (b.base - p.base) / step;
  return i >= 0n && i < BigInt(blockCount(subnet, blockLen)) && (b.base - p.base) % step === 0n ? Number(i) : null;
}

/** The gateway of a cluster network: its first host address, the same on every host. */
export function clusterGateway(subnet: string): string {
  const p = mustPrefix(subnet);
  return formatIp(p.family, p.base + 1n);
}

function mustPrefix(cidr: string): Prefix {
  const p = parsePrefix(cidr);
  if (!p) throw new DriverError('LN_ERR_INTERNAL', `the state holds a CIDR ledgernet cannot read: ${JSON.stringify(cidr)}`);
  return p;
}

/**
 * The address a host hands out next from its own blocks of a cluster pool: never used first, in
 * block order, then the one released longest ago; null when the blocks are full (claim another).
 */
export function pickFromBlocks(p: PoolState): string | null {
  const pool = mustPrefix(p.pool);
  for (const b of p.blocks ?? []) {
    const block = mustPrefix(b);
    for (let v = block.base; v < block.base + size(block); v++) {
      const text = formatIp(block.family, v);
      if (isNetworkOrBroadcast(pool, v) || lookup(p.allocated, text) || releasedAt(p, text) !== undefined) continue;
      return text;
    }
  }
  return oldestReleased(p, (a) => (p.blocks ?? []).some((b) => contains(mustPrefix(b), a.family, a.value)));
}

/**
 * Does a network of this host use the pool? Until one does, Docker is creating the network
 * (RequestPool, the gateway, one RequestAddress per --aux-address, then CreateNetwork), and
 * every host asks for the same gateway and aux addresses: they are not containers' addresses, so
 * the rules on a cluster pool's static addresses (this host's blocks, other hosts' endpoints) do
 * not apply to them.
 */
export function poolInUse(state: State, pool: string): boolean {
  return Object.values(state.networks).some((n) => n.ipv4Data.some((d) => d.pool === pool));
}

/**
 * The block of a cluster pool that holds `address` (its CIDR); null when the address is not one
 * a container can have in the subnet (outside it, its network or broadcast address).
 */
export function blockOf(p: PoolState, address: string): string | null {
  const pool = mustPrefix(p.pool);
  const a = parseIp(address);
  if (!p.cluster || !a || !contains(pool, a.family, a.value) || isNetworkOrBroadcast(pool, a.value)) return null;
  const step = 1n << BigInt(bits(pool.family) - p.cluster.blockLen);
  return formatPrefix({ family: pool.family, base: pool.base + ((a.value - pool.base) / step) * step, len: p.cluster.blockLen });
}

/** The other host whose endpoint on cluster network `cluster` has `address` (as this host's log knows the peers), or null. */
export function peerHolding(state: State, cluster: string, address: string): string | null {
  const a = parseIp(address);
  if (!a) return null;
  for (const e of Object.values(state.peers?.[cluster]?.endpoints ?? {})) {
    // Published without a prefix length (sync.ts); a CIDR is read as its address all the same.
    const b = parseIp(e.address.split('/')[0] ?? '');
    if (b && b.family === a.family && b.value === a.value) return e.host;
  }
  return null;
}

/** Records a block this host claimed in the KV bucket; nothing when it is recorded already. */
export function decideClaimBlock(poolId: string, block: string, state: State): NewEvent[] {
  const p = lookup(state.pools, poolId);
  if (!p?.cluster) throw new DriverError('LN_ERR_IPAM_UNKNOWN_POOL', `PoolID ${poolId} is not a cluster pool of ledgernet IPAM`);
  return (p.blocks ?? []).includes(block) ? [] : [{ type: 'block.claimed', data: { poolId, block } }];
}

/**
 * The addresses of a frozen `released` map ordered by (seq, text), built once per map: the map
 * changes only every RECENT_RELEASES releases (PoolState.recent), so most requests reuse it
 * instead of walking all its keys (row 6 of issue 11).
 */
const releaseOrder = new WeakMap<object, readonly string[]>();

function byReleaseOrder(released: Readonly<Record<string, number>>): readonly string[] {
  const known = releaseOrder.get(released);
  if (known) return known;
  const order = Object.keys(released).sort((a, b) => (released[a] as number) - (released[b] as number) || (a < b ? -1 : a > b ? 1 : 0));
  // Only a frozen map can be cached by identity (a replay's maps are mutated in place).
  if (Object.isFrozen(released)) releaseOrder.set(released, order);
  return order;
}

/**
 * The released address of the pool that was released longest ago (ties: the lowest text) among
 * those `usable` accepts and nobody holds again; null when there is none. `released` in
 * (seq, text) order up to its first candidate, then all of `recent` (at most 32 entries); an
 * address in both counts with recent's seq.
 */
export function oldestReleased(p: PoolState, usable: (a: { family: 4 | 6; value: bigint }) => boolean): string | null {
  let best: { text: string; seq: number } | null = null;
  const recent = p.recent ?? {};
  const candidate = (text: string, seq: number): boolean => {
    if (best && (seq > best.seq || (seq === best.seq && text >= best.text))) return false;
    if (lookup(p.allocated, text)) return false;
    const a = parseIp(text);
    if (!a || !usable(a)) return false;
    best = { text, seq };
    return true;
  };
  for (const text of byReleaseOrder(p.released)) {
    if (!Object.hasOwn(recent, text) && candidate(text, p.released[text] as number)) break;
  }
  for (const text of Object.keys(recent)) candidate(text, recent[text] as number);
  return (best as { text: string } | null)?.text ?? null;
}

/** The command a cluster network's creator should have typed (Docker does not tell drivers the name). */
export function clusterCommand(cluster: string): string {
  return `docker network create -d ledgernet --ipam-driver ledgernet --ipam-opt ledgernet.cluster=${cluster} -o ledgernet.cluster=${cluster} [--subnet CIDR] NAME`;
}

/**
 * A cluster network's MTU on this host: frames larger than the tunnel carries (underlay − 50,
 * recorded on its pool) would be dropped between hosts, so the bridge and the veths get the
 * tunnel's MTU by default, and a larger one given is refused. Other networks: `spec` as it is.
 * @throws DriverError `LN_ERR_INVALID_OPTION` naming the given MTU and the largest that fits.
 */
export function withClusterMtu(spec: NetworkSpec, state: State): NetworkSpec {
  const cluster = clusterOf(spec.options);
  const max = cluster === null || !spec.ipv4Data[0] ? undefined : lookup(state.pools, `ledgernet/${spec.ipv4Data[0].pool}`)?.cluster?.mtu;
  if (max === undefined) return spec;
  const given = givenMtu(spec.options);
  if (given !== null && given > max) {
    throw new DriverError(
      'LN_ERR_INVALID_OPTION',
      `cluster network ${cluster}: MTU ${given} is larger than its VXLAN tunnel carries on this host (${max}: the underlay's MTU ${max + VXLAN_OVERHEAD} ` +
        `less ${VXLAN_OVERHEAD} bytes of VXLAN headers); give -o com.docker.network.driver.mtu=${max} or less, or leave it out`,
    );
  }
  return { ...spec, mtu: given ?? max };
}

/**
 * A network with `ledgernet.cluster=NAME` must sit on a ledgernet IPAM pool of the same cluster:
 * Docker's default IPAM allocates per host and would give one address to two containers.
 * @throws DriverError `LN_ERR_INVALID_OPTION` showing the right command.
 */
export function checkClusterNetwork(spec: NetworkSpec, state: State): void {
  const cluster = clusterOf(spec.options);
  if (cluster === null) return;
  if (spec.ipv6Data.length > 0) {
    throw new DriverError('LN_ERR_INVALID_OPTION', `cluster network ${cluster}: cluster networks are IPv4 only; create it without --ipv6: ${clusterCommand(cluster)}`);
  }
  const pools = spec.ipv4Data.map((d) => lookup(state.pools, `ledgernet/${d.pool}`));
  const wrong = pools.find((p) => p?.cluster?.name !== cluster);
  if (pools.length === 0 || wrong !== undefined || pools.some((p) => p === undefined)) {
    const why = wrong?.cluster ? `its pool belongs to cluster network ${wrong.cluster.name}` : 'its addresses do not come from ledgernet IPAM with the same cluster';
    throw new DriverError(
      'LN_ERR_INVALID_OPTION',
      `option ledgernet.cluster=${cluster} needs ledgernet IPAM with --ipam-opt ledgernet.cluster=${cluster} (${why}; ` +
        `Docker's default IPAM would hand one address to containers on two hosts): ${clusterCommand(cluster)}`,
    );
  }
}
