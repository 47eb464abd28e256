// The IPAM allocator: pure decisions over the folded state. Pools are keyed by PoolID; each pool
// keeps its held addresses, its release history and a cursor over never-used addresses, so an
// address is reused only when no fresh one is left, and then the least recently released first.
import { DriverError } from '../../errors.ts';
import {
  bits,
  capturesHost,
  contains,
  formatIp,
  formatPrefix,
  isNetworkOrBroadcast,
  overlaps,
  parseAddrLen,
  parseIp,
  parsePrefix,
  size,
  within,
  type Prefix,
} from './cidr.ts';
import type { HostAddr, PoolRequest } from './commands.ts';
import { blockOf, clusterGateway, oldestReleased, peerHolding, pickFromBlocks, poolInUse } from './cluster.ts';
import { short } from './naming.ts';
import { lookup, releasedAt, type AddressEvent, type Allocation, type IpamData, type NetworkState, type NewEvent, type PoolState, type State } from './types.ts';

/** ledgernet IPAM's address spaces (GetDefaultAddressSpaces): the AddressSpace of a network on its pools. */
export const ADDRESS_SPACES = { LocalDefaultAddressSpace: 'ledgernet-local', GlobalDefaultAddressSpace: 'ledgernet-global' };

/** Whether a network's IPAM entry may be on a pool of ledgernet IPAM: its address space is ledgernet's, or was not recorded (older logs). */
function maybeOurPool(d: IpamData): boolean {
  return d.addressSpace === undefined || d.addressSpace === ADDRESS_SPACES.LocalDefaultAddressSpace || d.addressSpace === ADDRESS_SPACES.GlobalDefaultAddressSpace;
}

/** The pools of ledgernet IPAM a network's entries are on (exactly their subnets, in its address space): Docker releases them with the network. */
export function poolsOfNetwork(state: State, data: readonly IpamData[]): PoolState[] {
  const subnets = new Set(data.filter(maybeOurPool).map((d) => d.pool));
  return Object.values(state.pools).filter((p) => subnets.has(p.pool));
}

function poolIdFor(pool: string): string {
  return `ledgernet/${pool}`;
}

/** The range dynamic addresses come from: the sub-pool, else the pool. */
export function rangeOf(p: PoolState): Prefix {
  return must(p.subPool ?? p.pool);
}

/** A CIDR this version recorded (canonical); old records are canonicalised when the state is
 * loaded (upcastState), so a failure here is a bug, named as such. */
function must(cidr: string): Prefix {
  const known = parsed.get(cidr);
  if (known) return known;
  const p = parsePrefix(cidr);
  if (!p) throw new DriverError('LN_ERR_INTERNAL', `the state holds a CIDR ledgernet cannot read: ${JSON.stringify(cidr)}`);
  if (parsed.size >= 1024) parsed.clear();
  parsed.set(cidr, p);
  return p;
}
/** The pools' ranges, parsed once (a replay folds an address event per allocation). */
const parsed = new Map<string, Prefix>();

/** Addresses never handed out: the pool's network address, and its IPv4 broadcast. */
const reserved = isNetworkOrBroadcast;

/** Who holds prefixes that overlap `p`: a network (by id) or a pool; null when free. */
function holderOf(state: State, p: Prefix, ignoreNetwork: string | null): string | null {
  for (const n of Object.values(state.networks)) {
    if (n.networkId === ignoreNetwork) continue;
    for (const d of [...n.ipv4Data, ...n.ipv6Data]) {
      const q = parsePrefix(d.pool);
      if (q && overlaps(p, q)) {
        return `subnet ${d.pool} of ledgernet network ${short(n.networkId)} (if Docker no longer has it, 'ledgernet release ${short(n.networkId)}' forgets it)`;
      }
    }
  }
  for (const pool of Object.values(state.pools)) {
    const q = parsePrefix(pool.pool);
    if (q && overlaps(p, q)) {
      return `pool ${pool.pool} that ledgernet IPAM already handed out (a network being created or not yet removed; if Docker has no network on it, 'ledgernet release ${pool.pool}' frees it)`;
    }
  }
  return null;
}

export function decideRequestPool(req: PoolRequest, state: State): NewEvent[] {
  const family = req.v6 ? 6 : 4;
  const flag = req.v6 ? '--subnet (IPv6)' : '--subnet';
  const sized = req.pool === null ? null : sizeOnly(req.pool);
  if (req.pool === null || (sized !== null && sized.family === family)) {
    if (req.subPool !== null) throw invalid(`--ip-range ${req.subPool} needs a --subnet that contains it`);
    return [{ type: 'pool.requested', data: autoPool(req, state, sized?.len ?? null) }];
  }
  const pool = parsePrefix(req.pool);
  if (!pool || pool.family !== family) {
    throw invalid(`${flag} ${req.pool} is not an IPv${family} CIDR such as ${family === 4 ? '10.231.7.0/24' : 'fd00:231::/64'}`);
  }
  const why = capturesHost(pool);
  if (why) throw invalid(`${flag} ${formatPrefix(pool)} is refused: ${why}; choose a subnet of its own`);
  let subPool: string | null = null;
  if (req.subPool !== null) {
    const sp = parsePrefix(req.subPool);
    if (!sp || !within(sp, pool)) throw invalid(`--ip-range ${req.subPool} must be a CIDR inside --subnet ${formatPrefix(pool)}`);
    subPool = formatPrefix(sp);
    // Else every automatic address of the network would be refused later, as a pool "exhausted"
    // with 0 usable addresses, though nothing is in use.
    if (usableIn(pool, sp) === 0n) {
      throw invalid(
        `--ip-range ${subPool} holds no address a container can get (only the network or broadcast address of --subnet ${formatPrefix(pool)}); ` +
          'give a range with host addresses in it, or leave --ip-range out',
      );
    }
  }
  checkHostSubnets(pool, req.hostAddrs ?? []);
  const holder = holderOf(state, pool, null);
  if (holder) {
    throw new DriverError('LN_ERR_IPAM_OVERLAP', `subnet ${formatPrefix(pool)} overlaps ${holder}; choose another --subnet`);
  }
  const canonical = formatPrefix(pool);
  const cluster = req.cluster ? { cluster: req.cluster } : {};
  return [{ type: 'pool.requested', data: { poolId: poolIdFor(canonical), pool: canonical, subPool, v6: req.v6, auto: false, ...cluster } }];
}

/**
 * Refuses a subnet that overlaps the connected subnet of an address of the host on an interface
 * ledgernet does not own (a Docker bridge network's `br-…`, docker0, the uplink), or the address
 * itself: both would then route the same addresses, and the direct-access drop takes the other's
 * traffic. Routes via a gateway (a VPN's 10.0.0.0/8, the default route) are not addresses and do
 * not count: a connected subnet is more specific and wins there.
 * @throws DriverError `LN_ERR_IPAM_OVERLAP` naming the interface and its subnet.
 */
export function checkHostSubnets(p: Prefix, hostAddrs: readonly HostAddr[]): void {
  for (const h of hostAddrs) {
    const a = parseAddrLen(h.cidr);
    if (!a || a.family !== p.family || !overlaps(p, a.prefix)) continue;
    throw new DriverError(
      'LN_ERR_IPAM_OVERLAP',
      `subnet ${formatPrefix(p)} overlaps subnet ${formatPrefix(a.prefix)} of interface ${h.dev} (the host's address ${formatIp(a.family, a.value)}), ` +
        'which ledgernet does not own: both would route the same addresses and cut each other off; nothing was created; choose another --subnet',
    );
  }
}

/**
 * Docker 29's `--subnet 0.0.0.0/26` (`--subnet ::/56`): the unspecified address, so no subnet but
 * its size, for an automatic pool of that size. Null for any other CIDR, and for `/0`, which stays
 * an explicit subnet and is refused as one (a pool that would take all of the host's traffic).
 */
export function sizeOnly(pool: string): Prefix | null {
  const p = parsePrefix(pool, true);
  return p !== null && p.base === 0n && p.len > 0 ? p : null;
}

/** The subnet an automatic pool would get now (a cluster network's proposal to the cluster). */
export function proposePool(req: PoolRequest, state: State): string {
  return autoPool(req, state, req.pool === null ? null : (sizeOnly(req.pool)?.len ?? null)).pool;
}

/** An automatic pool from the default pool, of `len` (a `--subnet 0.0.0.0/len`) or the default size. */
function autoPool(req: PoolRequest, state: State, len: number | null) {
  const family = req.v6 ? 6 : 4;
  const range = parsePrefix(req.defaults.range);
  if (!range || range.family !== family || req.defaults.size < range.len || req.defaults.size > bits(family)) {
    throw invalid(`the default IPv${family} pool ${req.defaults.range} with size /${req.defaults.size} is not usable; fix the serve flags`);
  }
  const why = capturesHost(range);
  if (why) throw invalid(`the default IPv${family} pool ${formatPrefix(range)} is refused: ${why}; fix the serve flags`);
  const flag = family === 4 ? '--default-pool' : '--default-pool6';
  if (len !== null && (len < range.len || len > bits(family))) {
    throw invalid(
      `--subnet ${req.pool ?? ''} asks for an automatic /${len}, which does not fit in the default IPv${family} pool ${formatPrefix(range)} (serve ${flag}); ` +
        `ask for a size from /${range.len} to /${bits(family)}, or give a --subnet`,
    );
  }
  const poolSize = len ?? req.defaults.size;
  const taken: Prefix[] = [];
  // Unreadable entries cannot be in a state loaded through upcastState; skip rather than fail.
  for (const n of Object.values(state.networks)) for (const d of [...n.ipv4Data, ...n.ipv6Data]) taken.push(...prefixes(d.pool));
  for (const p of Object.values(state.pools)) taken.push(...prefixes(p.pool));
  for (const o of req.occupied) {
    const p = parsePrefix(o);
    // A default route covers everything; it says nothing about local use.
    if (p && p.len > 0) taken.push(p);
  }
  const step = 1n << BigInt(bits(family) - poolSize);
  const end = range.base + size(range);
  // A candidate inside a taken prefix skips to that prefix's end: the scan costs the taken
  // prefixes, not the candidates (an IPv6 /48 holds 2^72 /120s).
  for (let base = range.base; base < end; ) {
    const cand: Prefix = { family, base, len: poolSize };
    const t = taken.find((x) => overlaps(cand, x));
    if (t) {
      base = bigMax(base + step, t.base + size(t));
      continue;
    }
    const pool = formatPrefix(cand);
    return { poolId: poolIdFor(pool), pool, subPool: null, v6: req.v6, auto: true };
  }
  throw new DriverError(
    'LN_ERR_IPAM_EXHAUSTED',
    `the default pool ${formatPrefix(range)} has no free /${poolSize} left (ledgernet networks and host routes use it all); ` +
      `remove a network, pass --subnet, or widen --default-pool`,
  );
}

function bigMax(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function prefixes(cidr: string): Prefix[] {
  const p = parsePrefix(cidr);
  return p ? [p] : [];
}

export function decideReleasePool(poolId: string, state: State): NewEvent[] {
  return lookup(state.pools, poolId) ? [{ type: 'pool.released', data: { poolId } }] : [];
}

function requirePool(state: State, poolId: string): PoolState {
  const p = lookup(state.pools, poolId);
  if (!p) {
    throw new DriverError(
      'LN_ERR_IPAM_UNKNOWN_POOL',
      `PoolID ${poolId} is not held by ledgernet IPAM (was the pool released, or created by another IPAM driver?)`,
    );
  }
  return p;
}

export function decideRequestAddress(
  cmd: { poolId: string; address: string | null; gateway: boolean; name: string | null },
  state: State,
): NewEvent[] {
  const p = requirePool(state, cmd.poolId);
  const kind = cmd.gateway ? 'gateway' : cmd.address === null ? 'dynamic' : 'static';
  // A cluster network's gateway is the same address on every host: its first one.
  const named = cmd.address ?? (p.cluster && cmd.gateway ? clusterGateway(p.pool) : null);
  let data: AddressEvent;
  if (named === null) {
    data = { poolId: p.poolId, address: p.cluster ? pickClusterAddress(p) : pickAddress(p, state), kind, auto: true, name: cmd.name };
  } else {
    const address = checkStatic(p, named, state);
    if (p.cluster && !cmd.gateway && poolInUse(state, p.pool)) checkClusterStatic(p, address, state);
    data = { poolId: p.poolId, address, kind, auto: false, name: cmd.name };
  }
  return [{ type: 'address.requested', data }];
}

/**
 * Refuses an address of a cluster pool that another host's container has (its endpoint, as the
 * peers in this host's log say).
 * @throws DriverError `LN_ERR_IPAM_ADDRESS` naming the address, the pool and the host.
 */
export function checkPeerAddress(p: PoolState, address: string, state: State): void {
  const name = p.cluster?.name;
  const peer = name === undefined ? null : peerHolding(state, name, address);
  if (peer !== null) {
    throw new DriverError('LN_ERR_IPAM_ADDRESS', `address ${address} in pool ${p.pool} (cluster network ${name}) is already in use by a container on host ${peer}; pick another`);
  }
}

/**
 * A container's static address on a cluster pool (its network exists: the gateway and aux
 * addresses, asked for while it is created, are the same on every host and exempt; see
 * poolInUse). Another host's container may have it (its endpoint, as the peers in the log say),
 * and an address outside this host's blocks is another host's to hand out: two containers with
 * one address on one segment. The api claims the address's block first (api/cluster.ts
 * ensureBlockOf); this is the last guard, on the log as it is when the address is recorded.
 * @throws DriverError `LN_ERR_IPAM_ADDRESS` naming the address, the pool and the other host, or this host's blocks.
 */
function checkClusterStatic(p: PoolState, address: string, state: State): void {
  checkPeerAddress(p, address, state);
  const name = p.cluster?.name ?? '';
  const block = blockOf(p, address);
  const owned = p.blocks ?? [];
  if (block !== null && !owned.includes(block)) {
    throw new DriverError(
      'LN_ERR_IPAM_ADDRESS',
      `address ${address} in pool ${p.pool} (cluster network ${name}) lies in address block ${block}, which this host does not hold ` +
        `(its blocks: ${owned.length > 0 ? owned.join(', ') : 'none yet'}), so another host may hand it out; ` +
        'pick an address of a block this host holds, or leave out --ip and let IPAM choose',
    );
  }
}

function checkStatic(p: PoolState, address: string, state: State): string {
  const pool = must(p.pool);
  const a = parseIp(address);
  if (!a || a.family !== pool.family) {
    throw new DriverError('LN_ERR_IPAM_ADDRESS', `address ${address} is not an IPv${pool.family} address for pool ${p.pool}`);
  }
  const text = formatIp(a.family, a.value);
  // Aux addresses may lie outside --ip-range but inside the pool; Docker requires that only.
  if (!contains(pool, a.family, a.value)) {
    throw new DriverError('LN_ERR_IPAM_ADDRESS', `address ${text} is outside pool ${p.pool}; pick one inside it`);
  }
  if (reserved(pool, a.value)) {
    throw new DriverError('LN_ERR_IPAM_ADDRESS', `address ${text} is the network or broadcast address of pool ${p.pool}; pick another`);
  }
  const held = lookup(p.allocated, text);
  if (held) {
    const by = held.kind === 'gateway' ? 'the gateway' : holderText(state, p, text, held);
    throw new DriverError('LN_ERR_IPAM_ADDRESS', `address ${text} in pool ${p.pool} is already in use by ${by}; pick another`);
  }
  return text;
}

/**
 * The ledgernet network on pool `p`, as its users name it: `network NAME (ID)`, or `network ID`
 * before Docker's name is known; null when no ledgernet network is on it (another driver's network
 * on ledgernet IPAM, or one being created).
 */
function networkOn(state: State, p: PoolState): NetworkState | null {
  for (const n of Object.values(state.networks)) {
    if ([...n.ipv4Data, ...n.ipv6Data].some((d) => maybeOurPool(d) && d.pool === p.pool)) return n;
  }
  return null;
}

function networkText(n: NetworkState): string {
  return n.name === undefined ? `network ${short(n.networkId)}` : `network ${n.name} (${short(n.networkId)})`;
}

/**
 * Who holds `address` of pool `p` (not the gateway): the container Docker named in its request
 * (Docker 29+), else what the log says of the pool's network: its `--aux-address`, or the endpoint
 * with that address and its container once docker-sync named it.
 */
function holderText(state: State, p: PoolState, address: string, held: Allocation): string {
  if (held.name) return `container ${held.name}`;
  const n = networkOn(state, p);
  if (n !== null) {
    for (const d of [...n.ipv4Data, ...n.ipv6Data]) {
      for (const [key, aux] of Object.entries(d.aux)) if (aux.split('/')[0] === address) return `--aux-address ${key}=${address} of ${networkText(n)}`;
    }
    for (const ep of Object.values(state.endpoints)) {
      if (ep.networkId !== n.networkId || ![ep.address, ep.addressV6].some((a) => a?.split('/')[0] === address)) continue;
      return ep.container ? `container ${ep.container.name}` : `the container of endpoint ${short(ep.endpointId)}`;
    }
  }
  return 'another container or an --aux-address';
}

function pickAddress(p: PoolState, state: State): string {
  const pool = must(p.pool);
  const range = rangeOf(p);
  const n = size(range);
  for (let off = BigInt(p.next); off < n; off++) {
    const v = range.base + off;
    const text = formatIp(range.family, v);
    if (reserved(pool, v) || lookup(p.allocated, text) || releasedAt(p, text) !== undefined) continue;
    return text;
  }
  // No never-used address left: the one released longest ago.
  const best = oldestReleased(p, (a) => contains(range, a.family, a.value) && !reserved(pool, a.value));
  if (best) return best;
  const network = networkOn(state, p);
  const where = (p.subPool ? `--ip-range ${p.subPool} of pool ${p.pool}` : `pool ${p.pool}`) + (network === null ? '' : ` of ${networkText(network)}`);
  throw new DriverError(
    'LN_ERR_IPAM_EXHAUSTED',
    `${where} is exhausted: all ${usable(p)} usable addresses are in use; remove a container or use a larger subnet`,
  );
}

function pickClusterAddress(p: PoolState): string {
  const a = pickFromBlocks(p);
  if (a !== null) return a;
  throw new DriverError(
    'LN_ERR_IPAM_EXHAUSTED',
    `cluster network ${p.cluster?.name ?? ''}: the address blocks this host claimed in ${p.pool} are full and no block could be claimed; ` +
      'remove a container, or check that NATS is reachable',
  );
}

/** Addresses the allocator may hand out: the dynamic range less the network and broadcast addresses. */
export function usable(p: PoolState): bigint {
  return usableIn(must(p.pool), rangeOf(p));
}

/** Addresses of `range` (inside `pool`) the allocator may hand out: less the pool's network and broadcast addresses. */
function usableIn(pool: Prefix, range: Prefix): bigint {
  let n = size(range);
  for (const v of [pool.base, pool.base + size(pool) - 1n]) if (contains(range, pool.family, v) && reserved(pool, v)) n--;
  return n;
}

export function decideReleaseAddress(poolId: string, address: string, state: State, reason?: string): NewEvent[] {
  const p = lookup(state.pools, poolId);
  const a = parseIp(address);
  if (!p || !a) return [];
  const text = formatIp(a.family, a.value);
  return lookup(p.allocated, text) ? [{ type: 'address.released', data: { poolId, address: text, ...(reason === undefined ? {} : { reason }) } }] : [];
}

/**
 * Refuses a network whose subnets overlap another ledgernet network (any IPAM), or a pool
 * ledgernet IPAM handed out that is not the entry's own: only an entry in ledgernet's address
 * space (or with none recorded) may be on a pool, and only on the one of exactly its subnet.
 * Another driver's network on ledgernet IPAM (`-d bridge --ipam-driver ledgernet`) holds its
 * pool but is not in `state.networks`.
 */
export function checkNetworkOverlap(state: State, networkId: string, data: readonly IpamData[]): void {
  for (const d of data) {
    const p = parsePrefix(d.pool);
    if (!p) continue;
    for (const n of Object.values(state.networks)) {
      if (n.networkId === networkId) continue;
      for (const o of [...n.ipv4Data, ...n.ipv6Data]) {
        const q = parsePrefix(o.pool);
        if (q && overlaps(p, q)) {
          throw new DriverError(
            'LN_ERR_IPAM_OVERLAP',
            `subnet ${formatPrefix(p)} overlaps subnet ${o.pool} of ledgernet network ${short(n.networkId)}; choose another --subnet ` +
              `(if Docker no longer has that network, 'ledgernet release ${short(n.networkId)}' forgets it)`,
          );
        }
      }
    }
    for (const pool of Object.values(state.pools)) {
      const q = parsePrefix(pool.pool);
      if (!q || !overlaps(p, q) || (maybeOurPool(d) && pool.pool === formatPrefix(p))) continue;
      const space = d.addressSpace === undefined ? '' : ` (IPAM address space ${d.addressSpace}${maybeOurPool(d) ? '' : ", not ledgernet IPAM's"})`;
      throw new DriverError(
        'LN_ERR_IPAM_OVERLAP',
        `subnet ${formatPrefix(p)}${space} overlaps pool ${pool.pool} (PoolID ${pool.poolId}) that ledgernet IPAM handed out to another network ` +
          `(one of another driver with --ipam-driver ledgernet, or one being created); two networks would share addresses; choose another --subnet ` +
          `(if Docker has no network on that pool, 'ledgernet release ${pool.pool}' frees it)`,
      );
    }
  }
}

/**
 * The addresses ledgernet IPAM holds in the pools of ledgernet's networks (not cluster pools) that
 * nothing in the log accounts for: not a gateway, not an --aux-address of the network, not an
 * endpoint's address. Docker may still hold one (a RequestAddress comes before its
 * CreateEndpoint, and a static --ip is asked for before the endpoint too), so this only names
 * what to ask Docker about. Pure.
 */
export function unaccountedAddresses(state: State): { readonly poolId: string; readonly pool: string; readonly address: string }[] {
  const accounted = new Set<string>();
  for (const ep of Object.values(state.endpoints)) {
    for (const a of [ep.address, ep.addressV6]) if (a !== null) accounted.add(a.split('/')[0] ?? '');
  }
  const out: { poolId: string; pool: string; address: string }[] = [];
  for (const n of Object.values(state.networks)) {
    const data = [...n.ipv4Data, ...n.ipv6Data];
    for (const d of data) for (const a of Object.values(d.aux)) accounted.add(a.split('/')[0] ?? '');
    for (const p of poolsOfNetwork(state, data)) {
      if (p.cluster) continue;
      for (const [address, alloc] of Object.entries(p.allocated)) {
        if (alloc.kind !== 'gateway' && !accounted.has(address)) out.push({ poolId: p.poolId, pool: p.pool, address });
      }
    }
  }
  return out;
}

/** The cursor after an allocation: past the address when the allocator chose it. */
export function nextCursor(p: PoolState, address: string, auto: boolean): string {
  if (!auto) return p.next;
  const a = parseIp(address);
  const range = rangeOf(p);
  if (!a || !contains(range, a.family, a.value)) return p.next;
  const off = a.value - range.base;
  return off >= BigInt(p.next) ? String(off + 1n) : p.next;
}

function invalid(msg: string): DriverError {
  return new DriverError('LN_ERR_INVALID_OPTION', msg);
}
