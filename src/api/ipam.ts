// The libnetwork IPAM protocol (protocol.md §4). Each call becomes one command; the allocator in
// events/ipam.ts decides from the folded state, and the answer goes out only once the allocation
// is durable in the log. Errors go out as HTTP 500 + {"Err"}, which Docker reads for IPAM too.
import { DriverError } from '../errors.ts';
import { formatIp, formatPrefix, overlaps, parseAddrLen, parseIp, parsePrefix, type Prefix } from '../events/domain/cidr.ts';
import { byDocker } from '../events/domain/cause.ts';
import type { Command, DefaultPool, HostAddr } from '../events/domain/commands.ts';
import type { ClusterPort } from '../events/domain/cluster.ts';
import { checkHostSubnets, sizeOnly } from '../events/domain/ipam.ts';
import { clusterOf, networkPolicy, optionNames } from '../events/domain/options.ts';
import type { HostListener } from '../events/domain/ports.ts';
import { ensureBlock, ensureBlockOf, requestClusterPool } from './cluster.ts';
import { lookup, type Cause, type IpamData, type State, type StoredEvent } from '../events/domain/types.ts';
import type { Json } from './wire.ts';

/** What the api may learn about the host; main.ts implements it over the kernel. */
export interface HostView {
  /** Prefixes of the host's addresses and routes (automatic pools avoid them). */
  occupiedPrefixes(): Promise<string[]>;
  /** The host's addresses on links ledgernet does not own (an explicit subnet must not overlap their connected subnets). */
  hostAddrs(): Promise<HostAddr[]>;
  /** Every address of the host (`local/prefixlen`), whoever owns its link: one read, no link read. */
  addressPrefixes(): Promise<string[]>;
  /** Whether a link ledgernet does not own has `name` as its name or an altname (a custom bridge name must not take one over). */
  isForeignLink(name: string): Promise<boolean>;
  /** Sockets programs on the host listen on, ledgernet's own (the userland proxy's, those holding published ports) left out (a published port must not take one). */
  listeners(): Promise<HostListener[]>;
  /**
   * The addresses and MAC of the container interface whose peer is the host's `hostVeth`, read in
   * the sandbox `sandboxKey`; null when it is not there (yet).
   */
  containerIface(sandboxKey: string, hostVeth: string): Promise<ContainerIface | null>;
  /**
   * Has the kernel filter traffic inside bridges for these families (what icc=false needs), as
   * Docker does for its own icc=false networks: loads br_netfilter, sets bridge-nf-call-* to 1.
   * @throws Error naming what is missing when it cannot.
   */
  filterBridges(families: readonly ('iptables' | 'ip6tables')[], network: string): Promise<void>;
  /**
   * `serve --ipv6-forwarding`: turns the host's IPv6 forwarding on for a new network with a way out
   * over IPv6, as Docker's bridge driver does when it makes one; logs what it did or could not do,
   * never throws (Docker only warns). Absent: off.
   */
  forwardIpv6?(network: string): Promise<void>;
}

/** A container's interface as Docker configured it (CIDRs, or null where it has none of a family). */
export interface ContainerIface {
  readonly address: string | null;
  readonly addressV6: string | null;
  readonly mac: string;
}

export interface IpamDeps {
  readonly store: { execute(cmd: Command, cause: Cause): Promise<StoredEvent[]>; readonly state: State };
  readonly host: HostView;
  readonly defaultPools: { readonly v4: DefaultPool; readonly v6: DefaultPool };
  /** The cluster's coordination (serve --nats); cluster networks are refused without it. */
  readonly cluster?: ClusterPort | undefined;
}

/** Defaults of `serve --default-pool/--default-pool-size` and their IPv6 twins. */
export const DEFAULT_POOLS = {
  v4: { range: '10.231.0.0/16', size: 24 },
  v6: { range: 'fd00:231::/48', size: 64 },
} as const;

/** A host that has nothing: for tests that do not care. */
export const EMPTY_HOST: HostView = { occupiedPrefixes: async () => [], hostAddrs: async () => [], addressPrefixes: async () => [], isForeignLink: async () => false, listeners: async () => [], containerIface: async () => null, filterBridges: async () => undefined };

const GATEWAY_TYPE = 'com.docker.network.gateway';
const ENDPOINT_NAME = 'com.docker.network.endpoint.name';

function bad(method: string, msg: string): DriverError {
  return new DriverError('LN_ERR_BAD_REQUEST', `${method}: ${msg}`);
}

/** Longer than any CIDR, PoolID or container name Docker sends. */
const MAX_STRING = 1024;

function str(method: string, body: Json, field: string, required = false): string {
  const v = body[field];
  if (v === undefined || v === null || v === '') {
    if (required) throw bad(method, `${field} is required`);
    return '';
  }
  if (typeof v !== 'string') throw bad(method, `${field} must be a string, got ${JSON.stringify(v)?.slice(0, 64)}`);
  if (v.length > MAX_STRING) throw bad(method, `${field} is longer than ${MAX_STRING} characters`);
  return v;
}

/** Docker sends a plain IP; a CIDR is accepted too and its address part kept. Canonical. */
function ipOf(method: string, raw: string): string {
  const a = raw.includes('/') ? parseAddrLen(raw) : parseIp(raw);
  if (!a) throw new DriverError('LN_ERR_IPAM_ADDRESS', `${method}: Address ${JSON.stringify(raw.slice(0, 64))} is not an IP address`);
  return formatIp(a.family, a.value);
}

/** A PoolID ledgernet handed out: `ledgernet/<canonical CIDR>`; anything else is no pool of ours. */
function poolId(method: string, body: Json): string {
  const id = str(method, body, 'PoolID', true);
  const cidr = id.startsWith('ledgernet/') ? parsePrefix(id.slice('ledgernet/'.length), true) : null;
  if (!cidr || `ledgernet/${formatPrefix(cidr)}` !== id) {
    throw new DriverError('LN_ERR_IPAM_UNKNOWN_POOL', `${method}: PoolID ${JSON.stringify(id.slice(0, 64))} is not a pool of ledgernet IPAM (its PoolIDs look like ledgernet/10.231.7.0/24)`);
  }
  return id;
}

function optionMap(method: string, body: Json): Record<string, unknown> {
  const o = body['Options'];
  if (o === undefined || o === null) return {};
  if (typeof o !== 'object' || Array.isArray(o)) throw bad(method, 'Options must be an object or null');
  return o as Record<string, unknown>;
}

export async function requestPool(deps: IpamDeps, body: Json, method: string): Promise<unknown> {
  const pool = str(method, body, 'Pool');
  const subPool = str(method, body, 'SubPool');
  const v6 = body['V6'] ?? false;
  if (typeof v6 !== 'boolean') throw bad(method, `V6 must be true or false, got ${JSON.stringify(v6)?.slice(0, 64)}`);
  str(method, body, 'AddressSpace');
  const cluster = ipamCluster(method, optionMap(method, body));
  // `--subnet 0.0.0.0/26` (Docker 29) asks for an automatic pool of that size.
  const automatic = pool === '' || sizeOnly(pool) !== null;
  const occupied = automatic && cluster === null ? await deps.host.occupiedPrefixes() : [];
  const asked = automatic || cluster !== null ? null : parsePrefix(pool);
  const hostAddrs = asked !== null ? await hostAddrsNear(deps.host, [asked]) : [];
  const clusterDeps = { ...deps, defaultPool: deps.defaultPools.v4, occupied: () => deps.host.occupiedPrefixes() };
  const events = cluster !== null ? await requestClusterPool(clusterDeps, { name: cluster, pool, subPool, v6 }, method) : await deps.store.execute({
    type: 'RequestPool',
    request: {
      pool: pool === '' ? null : pool,
      subPool: subPool === '' ? null : subPool,
      v6,
      defaults: v6 ? deps.defaultPools.v6 : deps.defaultPools.v4,
      occupied,
      hostAddrs,
    },
  }, byDocker(method));
  const ev = events.find((e) => e.type === 'pool.requested');
  if (!ev || ev.type !== 'pool.requested') throw new DriverError('LN_ERR_INTERNAL', `${method}: no pool was recorded`);
  return { PoolID: ev.data.poolId, Pool: ev.data.pool, Data: {} };
}

/** `--ipam-opt`: only ledgernet.cluster=NAME (a cluster network); anything else is refused. */
function ipamCluster(method: string, opts: Record<string, unknown>): string | null {
  const other = Object.keys(opts).filter((k) => k !== 'ledgernet.cluster');
  if (other.length > 0) {
    throw new DriverError('LN_ERR_INVALID_OPTION', `${method}: ledgernet IPAM takes only --ipam-opt ledgernet.cluster=NAME, got ${other.join(', ')}`);
  }
  const v = opts['ledgernet.cluster'];
  if (v === undefined) return null;
  if (typeof v !== 'string') throw bad(method, `--ipam-opt ledgernet.cluster must be a name, got ${JSON.stringify(v)?.slice(0, 64)}`);
  return clusterOf({ 'ledgernet.cluster': v });
}

export async function releasePool(deps: IpamDeps, body: Json, method: string): Promise<unknown> {
  await deps.store.execute({ type: 'ReleasePool', poolId: poolId(method, body) }, byDocker(method));
  return {};
}

export async function requestAddress(deps: IpamDeps, body: Json, method: string): Promise<unknown> {
  const id = poolId(method, body);
  const raw = str(method, body, 'Address');
  const opts = optionMap(method, body);
  const address = raw === '' ? null : ipOf(method, raw);
  const nameOpt = opts[ENDPOINT_NAME];
  if (nameOpt !== undefined && nameOpt !== null && (typeof nameOpt !== 'string' || nameOpt.length > MAX_STRING)) {
    throw bad(method, `Options["${ENDPOINT_NAME}"] must be a container name, got ${JSON.stringify(nameOpt)?.slice(0, 64)}`);
  }
  const name = typeof nameOpt === 'string' && nameOpt !== '' ? nameOpt : null;
  const type = opts['RequestAddressType'];
  if (type !== undefined && type !== null && type !== GATEWAY_TYPE) {
    throw bad(method, `Options["RequestAddressType"] must be ${GATEWAY_TYPE} or absent, got ${JSON.stringify(type)?.slice(0, 64)}`);
  }
  const gateway = type === GATEWAY_TYPE;
  const clusterDeps = { ...deps, defaultPool: deps.defaultPools.v4, occupied: async () => [] };
  if (address === null && !gateway) await ensureBlock(clusterDeps, id, byDocker(method));
  // A container's static address of a cluster pool: its block must be this host's (claimed here if no host holds it).
  if (address !== null && !gateway) await ensureBlockOf(clusterDeps, id, address, byDocker(method));
  const events = await deps.store.execute({ type: 'RequestAddress', poolId: id, address, gateway, name }, byDocker(method));
  const ev = events.find((e) => e.type === 'address.requested');
  if (!ev || ev.type !== 'address.requested') throw new DriverError('LN_ERR_INTERNAL', `${method}: no address was recorded`);
  const pool = lookup(deps.store.state.pools, id)?.pool ?? '';
  return { Address: `${ev.data.address}/${pool.split('/')[1] ?? ''}`, Data: {} };
}

export async function releaseAddress(deps: IpamDeps, body: Json, method: string): Promise<unknown> {
  const id = poolId(method, body);
  const address = ipOf(method, str(method, body, 'Address', true));
  await deps.store.execute({ type: 'ReleaseAddress', poolId: id, address }, byDocker(method));
  return {};
}

/**
 * An icc=false network needs the kernel to filter traffic inside its bridge: turned on as Docker
 * does for its own (host.filterBridges); refused, naming the option and what is missing, when the
 * host cannot (nothing is recorded then).
 */
export async function checkBridgeFiltering(host: HostView, spec: { readonly networkId: string; readonly options: Readonly<Record<string, string>>; readonly ipv4Data: readonly unknown[]; readonly ipv6Data: readonly unknown[] }, method: string): Promise<void> {
  if (networkPolicy(spec.options).icc) return;
  const families = [...(spec.ipv4Data.length > 0 ? (['iptables'] as const) : []), ...(spec.ipv6Data.length > 0 ? (['ip6tables'] as const) : [])];
  if (families.length === 0) return;
  try {
    await host.filterBridges(families, spec.networkId);
  } catch (e) {
    throw new DriverError(
      'LN_ERR_INVALID_OPTION',
      `${method}: option ${optionNames('ledgernet.icc')}=false needs the kernel to filter traffic inside a bridge, and it cannot: ${(e as Error).message}, ` +
        'or create the network without icc=false',
    );
  }
}

/**
 * A new network's subnets that no pool of ledgernet IPAM holds (Docker's default IPAM gave them,
 * which knows only its own pools): refused when they overlap a connected subnet of the host that
 * ledgernet does not own, as RequestPool refuses an explicit --subnet.
 */
export async function checkNetworkHostSubnets(host: HostView, state: State, spec: { readonly networkId: string; readonly ipv4Data: readonly IpamData[]; readonly ipv6Data: readonly IpamData[] }): Promise<void> {
  if (lookup(state.networks, spec.networkId)) return;
  const ours = new Set(Object.values(state.pools).map((p) => p.pool));
  const others = [...spec.ipv4Data, ...spec.ipv6Data].flatMap((d) => (ours.has(d.pool) ? [] : [parsePrefix(d.pool)])).filter((p) => p !== null);
  if (others.length === 0) return;
  const addrs = await hostAddrsNear(host, others);
  for (const p of others) checkHostSubnets(p, addrs);
}

/**
 * The host's addresses on links ledgernet does not own, for a check of `subnets`
 * (checkHostSubnets): the addresses alone first (one read), and every link (to tell ours from the
 * host's, a read whose cost grows with every network) only when one of them overlaps a subnet,
 * which a subnet free on this host never does. Empty when none overlaps: the check then passes
 * as it would over every address.
 */
async function hostAddrsNear(host: HostView, subnets: readonly Prefix[]): Promise<HostAddr[]> {
  const near = (await host.addressPrefixes()).some((cidr) => {
    const a = parseAddrLen(cidr);
    return a !== null && subnets.some((p) => overlaps(p, a.prefix));
  });
  return near ? host.hostAddrs() : [];
}

/** Refuses a custom bridge name that an interface ledgernet does not own already has. */
export async function checkBridgeName(host: HostView, bridge: string, generated: boolean, method: string): Promise<void> {
  if (generated) return;
  if (await host.isForeignLink(bridge)) {
    throw new DriverError(
      'LN_ERR_INVALID_OPTION',
      `${method}: bridge name ${bridge} (option ${optionNames('ledgernet.bridge')}) is already an interface ` +
        `on this host that ledgernet does not own; choose another name`,
    );
  }
}
