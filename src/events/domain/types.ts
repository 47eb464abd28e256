import type { ClusterPeers, PeerEventMap } from './peers.ts';

// Event and state types. Events are facts in the past tense; each type has a version so that
// old records can be upcast when the shape changes. State is plain JSON (no Map/Set).

/** One address family's IPAM data for a network, as Docker sent it (CIDR strings). */
export interface IpamData {
  readonly pool: string;
  /** Gateway with the pool's prefix length (`10.231.7.1/24`), or null when Docker sent none. */
  readonly gateway: string | null;
  readonly aux: Readonly<Record<string, string>>;
  /**
   * The IPAM address space Docker sent (`AddressSpace`): ledgernet's own (ADDRESS_SPACES in ipam.ts,
   * `--ipam-driver ledgernet`) or another IPAM driver's (`LocalDefault`: Docker's). Absent when
   * Docker sent none, and in networks recorded before it was kept: then the subnet is taken as
   * ledgernet IPAM's pool when one matches it exactly, as before.
   */
  readonly addressSpace?: string;
}

export interface NetworkSpec {
  readonly networkId: string;
  readonly bridge: string;
  readonly mtu: number;
  readonly internal: boolean;
  readonly ipv6: boolean;
  readonly ipv4Data: readonly IpamData[];
  readonly ipv6Data: readonly IpamData[];
  /** The `-o` options as Docker sent them (`com.docker.network.generic`). */
  readonly options: Readonly<Record<string, string>>;
  /**
   * Taken from Docker's API: Docker's CreateNetwork was cut off by a crash before its body was
   * journaled and its empty retry answered `{}` (a `network.deferred`); the body was rebuilt from
   * the network Docker then stored (api/deferred-network.ts).
   */
  readonly adopted?: true;
}

export interface PortBinding {
  readonly proto: number;
  readonly port: number;
  readonly hostIp: string;
  readonly hostPort: number;
  readonly hostPortEnd: number;
}

/**
 * Bindings of `count` consecutive ports (absent: one): port + i published as hostPort + i for i
 * below count (port-runs.ts). How `endpoint.external.programmed` holds them from version 2.
 */
export interface PortRun extends PortBinding {
  readonly count?: number;
}

export interface EndpointSpec {
  readonly networkId: string;
  readonly endpointId: string;
  /** Host-side veth, stays in the host namespace. */
  readonly veth: string;
  /** Container-side veth: the `SrcName` Join answers; Docker moves it into the container. */
  readonly peer: string;
  readonly address: string | null;
  readonly addressV6: string | null;
  readonly mac: string | null;
  /**
   * The name the container's interface is to have (`com.docker.network.endpoint.ifname`, Docker
   * 28+: `--network name=N,driver-opt=com.docker.network.endpoint.ifname=NAME`, Compose's
   * `interface_name`), answered as Join's `DstName`; absent: Docker names it `<prefix><n>`.
   */
  readonly ifname?: string;
  /**
   * Created at its Join: Docker's CreateEndpoint was cut off by a crash before its body was
   * journaled and its empty retry answered `{}` (an `endpoint.deferred`). Its addresses and MAC
   * are Docker's, learned from the container's interface (`endpoint.addressed`); null until then.
   */
  readonly deferred?: true;
}

/** How an address came to be held: Docker's gateway request, an address the caller named (aux,
 * --ip), or one the allocator chose. */
export type AddressKind = 'gateway' | 'static' | 'dynamic';

/** A pool handed to Docker by ledgernet's IPAM. CIDRs are canonical and masked. */
export interface PoolSpec {
  readonly poolId: string;
  readonly pool: string;
  /** `--ip-range`: dynamic addresses come only from here. */
  readonly subPool: string | null;
  readonly v6: boolean;
  /** Carved from the default range (no --subnet). */
  readonly auto: boolean;
  /** A cluster network's pool (`--ipam-opt ledgernet.cluster=NAME`): its VNI and block size,
   * allocated in the cluster's KV bucket (src/events/domain/cluster.ts). */
  readonly cluster?: PoolCluster;
}

/** A cluster pool's VNI and block size; `mtu`: the largest MTU a network on it may have on this
 * host (its underlay's − 50, when the host could read it). */
export interface PoolCluster {
  readonly name: string;
  readonly vni: number;
  readonly blockLen: number;
  readonly mtu?: number;
}

export interface AddressEvent {
  readonly poolId: string;
  /** Canonical address without prefix length. */
  readonly address: string;
  readonly kind: AddressKind;
  /** Chosen by the allocator (advances its never-used cursor), not named by the caller. */
  readonly auto: boolean;
  /** `com.docker.network.endpoint.name` when Docker sent it (v29+), else null. */
  readonly name: string | null;
}

export interface EventDataMap extends PeerEventMap {
  'network.created': NetworkSpec;
  'network.deleted': { readonly networkId: string };
  'network.rolledback': { readonly networkId: string; readonly reason: string };
  /** Garbage collection: Docker's API said the network no longer exists (removed while ledgernet was down). */
  'network.collected': { readonly networkId: string; readonly reason: string };
  'endpoint.created': EndpointSpec;
  'endpoint.joined': { readonly networkId: string; readonly endpointId: string; readonly sandboxKey: string };
  'endpoint.left': { readonly networkId: string; readonly endpointId: string };
  /** `reason`: set when ledgernet released it on its own (a stale endpoint superseded by its container's new one). */
  'endpoint.deleted': { readonly networkId: string; readonly endpointId: string; readonly reason?: string };
  'endpoint.rolledback': { readonly networkId: string; readonly endpointId: string; readonly reason: string };
  'endpoint.lost': { readonly networkId: string; readonly endpointId: string; readonly veth: string; readonly reason: string };
  /**
   * Docker's empty-body retry of a CreateEndpoint cut off before it was journaled was answered `{}`:
   * the endpoint its Join names next (within DEFERRED_MS) is created then.
   */
  'endpoint.deferred': { readonly reason: string };
  /**
   * Docker's empty-body retry of a CreateNetwork cut off before it was journaled was answered `{}`:
   * the network Docker stores next (within DEFERRED_MS) is taken from Docker's API then.
   */
  'network.deferred': { readonly reason: string };
  /**
   * The name Docker knows a network by, read from Docker's API (a remote driver's CreateNetwork
   * does not carry it): recorded once, soon after the network is created (Docker cannot rename one).
   */
  'network.named': { readonly networkId: string; readonly name: string };
  /**
   * The container an endpoint belongs to, read from Docker's API (no plugin call names it):
   * recorded soon after its Join, and again after a `docker rename`.
   */
  'endpoint.named': { readonly networkId: string; readonly endpointId: string; readonly containerId: string; readonly name: string };
  /**
   * The log's events `first` to `last` were moved into the archive file `archive` (relative to the
   * state dir; `bytes` long) by `ledgernet events archive` or `serve --archive-log-size`: recorded
   * right after the archive, in the file the log goes on in. Changes no state.
   */
  'log.archived': { readonly first: number; readonly last: number; readonly archive: string; readonly bytes: number };
  /**
   * An operator forgot cluster host `host` for good (`ledgernet cluster forget`, through this
   * host's daemon): it was taken out of the cluster `networks` it had (those in `retired` had no
   * other host and left the KV bucket) and its `blocks` address blocks were given back. Changes no
   * state (its member and endpoint keys had gone with its expiry: peer.member.left).
   */
  'cluster.host.forgotten': { readonly host: string; readonly networks: readonly string[]; readonly retired: readonly string[]; readonly blocks: number };
  /** A deferred endpoint's addresses and MAC, read from the container's interface after Docker configured it. */
  'endpoint.addressed': {
    readonly networkId: string;
    readonly endpointId: string;
    readonly address: string | null;
    readonly addressV6: string | null;
    readonly mac: string | null;
  };
  'endpoint.external.programmed': {
    readonly networkId: string;
    readonly endpointId: string;
    /** As runs (port-runs.ts; version 1: one binding a port, a version 2 portmap with no count). */
    readonly portmap: readonly PortRun[];
    /** Docker 28+ split gateways: the one family this endpoint publishes the ports in. Absent: both. */
    readonly family?: 4 | 6;
  };
  'endpoint.external.revoked': { readonly networkId: string; readonly endpointId: string };
  'pool.requested': PoolSpec;
  'pool.released': { readonly poolId: string };
  'address.requested': AddressEvent;
  /** `reason`: set when ledgernet released it on its own (docker-sync: its endpoint was released and Docker does not hold it). */
  'address.released': { readonly poolId: string; readonly address: string; readonly reason?: string };
  /** This host claimed an address block of a cluster pool (compare-and-set in the KV bucket). */
  'block.claimed': { readonly poolId: string; readonly block: string };
  'reconcile.applied': {
    readonly trigger: string;
    readonly actions: readonly string[];
    readonly failures: readonly string[];
  };
}

export type EventType = keyof EventDataMap;

/** The current version of each event type. Bump it and add an upcaster when a shape changes. */
export const EventVersions: { readonly [K in EventType]: number } = {
  'network.created': 1,
  'network.deleted': 1,
  'network.rolledback': 1,
  'network.collected': 1,
  'endpoint.created': 1,
  'endpoint.joined': 1,
  'endpoint.left': 1,
  'endpoint.deleted': 1,
  'endpoint.rolledback': 1,
  'endpoint.lost': 1,
  'endpoint.deferred': 1,
  'network.deferred': 1,
  'endpoint.addressed': 1,
  'network.named': 1,
  'endpoint.named': 1,
  'log.archived': 1,
  'cluster.host.forgotten': 1,
  'endpoint.external.programmed': 2,
  'endpoint.external.revoked': 1,
  'pool.requested': 1,
  'pool.released': 1,
  'address.requested': 1,
  'address.released': 1,
  'block.claimed': 1,
  'peer.member.joined': 1,
  'peer.member.left': 1,
  'peer.endpoint.added': 1,
  'peer.endpoint.removed': 1,
  'reconcile.applied': 1,
};

/** An event as `decide` produces it: no seq, clock or hash yet. */
export type NewEvent = { [K in EventType]: { readonly type: K; readonly data: EventDataMap[K] } }[EventType];

/**
 * Who made an event happen: recorded in its envelope (`cause`; absent from records written before
 * ledgernet recorded it), shown by `ledgernet events` and published with it. Flat, so that a
 * CloudEvent carries it as extension attributes (`causeby`, `causecall`, …).
 */
export type Cause =
  /** A Docker plugin call; `call` is its method, e.g. `NetworkDriver.CreateNetwork`. */
  | { readonly by: 'docker'; readonly call: string }
  /**
   * An operator's `ledgernet` command (`command`, e.g. `release`): `uid` and `pid` as the kernel
   * gave them (SO_PEERCRED on the control socket, or the command's own when it ran without a
   * daemon; absent when unknown, e.g. a pid in another pid namespace), `user` the login name the
   * command stated (`SUDO_USER` or its own), `reason` the operator's `--reason`.
   */
  | { readonly by: 'operator'; readonly command: string; readonly uid?: number; readonly pid?: number; readonly user?: string; readonly reason?: string }
  /** ledgernet on its own; `what` names the part, e.g. `reconciler`, `docker-sync`. */
  | { readonly by: 'ledgernet'; readonly what: string };

/** An event as the log stores it. */
export type StoredEvent = NewEvent & {
  readonly seq: number;
  /** `<host>:<seq>`, the same string as the NATS msg id and the CloudEvents id. */
  readonly id: string;
  readonly host: string;
  readonly v: number;
  /** ISO-8601 time of the append. */
  readonly at: string;
  readonly prevhash: string;
  readonly hash: string;
  readonly cause?: Cause;
};

export interface NetworkState extends NetworkSpec {
  readonly createdSeq: number;
  /** The name Docker knows it by (`docker network create NAME`), once read from Docker's API (`network.named`). */
  readonly name?: string;
}

/** The container an endpoint belongs to, as Docker's API named it (`endpoint.named`). */
export interface EndpointContainer {
  readonly id: string;
  /** Without Docker's leading `/`; changes with `docker rename`. */
  readonly name: string;
}

export interface EndpointState extends EndpointSpec {
  readonly joined: boolean;
  readonly sandboxKey: string | null;
  /**
   * When its Join was appended (the event's `at`), while joined. Absent in states from snapshots
   * written before this field existed. Read by the answer to an empty-body
   * ProgramExternalConnectivity retry (src/api/external-retry.ts), which follows a Join by ms.
   */
  readonly joinedAt?: string;
  /**
   * When it left its container (the Leave's `at`), until it joins again. Docker deletes an
   * endpoint right after its Leave: one left for long lost its DeleteEndpoint (api/delete-retry.ts).
   */
  readonly leftAt?: string;
  readonly lost: boolean;
  /** ProgramExternalConnectivity was received and not revoked: this endpoint is the gateway. */
  readonly programmed: boolean;
  readonly portmap: readonly PortBinding[];
  /**
   * Docker 28+ with the container's IPv4 and IPv6 gateways on two ledgernet endpoints: the one
   * family this endpoint publishes `portmap` in (4: the IPv4 gateway, 6: the IPv6 gateway).
   * Absent: both families, as with one gateway.
   */
  readonly portFamily?: 4 | 6;
  readonly createdSeq: number;
  /** When it was created (the event's `at`); absent in states from snapshots written before this field existed. */
  readonly createdAt?: string;
  /** Its container, once read from Docker's API (`endpoint.named`). */
  readonly container?: EndpointContainer;
}

export interface Allocation {
  readonly kind: AddressKind;
  readonly name: string | null;
  readonly seq: number;
}

export interface PoolState extends PoolSpec {
  /** Held addresses (canonical text) → how and when. */
  readonly allocated: Readonly<Record<string, Allocation>>;
  /** Released addresses → seq of the release; reused only once no never-used address is left,
   * least recently released first (ARP caches elsewhere may still point at a fresh one). An
   * address taken again keeps its entry (the allocator skips what `allocated` holds), so taking
   * one does not copy this map; releasing it again moves its seq. */
  readonly released: Readonly<Record<string, number>>;
  /** The latest releases (at most RECENT_RELEASES, in release order), kept apart so that a
   * release copies this small map and only every RECENT_RELEASES-th one merges it into
   * `released`; where both hold an address, this one's seq is the current one (releasedAt).
   * Absent until the pool's first release. */
  readonly recent?: Readonly<Record<string, number>>;
  /** Offset (decimal) in the dynamic range of the next never-used candidate. */
  readonly next: string;
  readonly requestedSeq: number;
  /** A cluster pool's blocks this host claimed: its dynamic addresses come only from them. */
  readonly blocks?: readonly string[];
}

export interface State {
  readonly networks: Readonly<Record<string, NetworkState>>;
  readonly endpoints: Readonly<Record<string, EndpointState>>;
  /** IPAM pools by PoolID. */
  readonly pools: Readonly<Record<string, PoolState>>;
  /** The other hosts of each cluster network, by cluster name (peer.* events); absent: none. */
  readonly peers?: Readonly<Record<string, ClusterPeers>>;
  /**
   * `endpoint.deferred` markers not yet used by a Join (their `at`, oldest first; each folded-in
   * marker drops those older than DEFERRED_MS before it). Absent: none.
   */
  readonly deferred?: readonly string[];
  /** `network.deferred` markers not yet used by a network taken from Docker's API (as `deferred`). Absent: none. */
  readonly deferredNetworks?: readonly string[];
  /** Seq and hash of the last event folded in (0 and the genesis hash for an empty log). */
  readonly seq: number;
  readonly hash: string;
}

/** How long a deferred CreateEndpoint waits for its Join (Docker sends Join within ms of CreateEndpoint's answer). */
export const DEFERRED_MS = 60_000;

/** The `endpoint.deferred` markers younger than DEFERRED_MS at `now` (ms). */
export function pendingDeferred(state: State, now: number): number {
  return (state.deferred ?? []).filter((at) => now - Date.parse(at) < DEFERRED_MS).length;
}

/** The `network.deferred` markers younger than DEFERRED_MS at `now` (ms), oldest first. */
export function pendingDeferredNetworks(state: State, now: number): readonly string[] {
  return (state.deferredNetworks ?? []).filter((at) => now - Date.parse(at) < DEFERRED_MS);
}

export const GENESIS_HASH = '0'.repeat(64);

export const emptyState: State = { networks: {}, endpoints: {}, pools: {}, seq: 0, hash: GENESIS_HASH };

/**
 * `rec[key]` for a key that came from outside (a PoolID, an id, an address): only the map's own
 * entries, never Object.prototype's (`__proto__`, `constructor`, `toString`).
 */
export function lookup<T>(rec: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(rec, key) ? rec[key] : undefined;
}

/** The seq of the last release of `address` in the pool, or undefined when it was never released. */
export function releasedAt(p: Pick<PoolState, 'released' | 'recent'>, address: string): number | undefined {
  const recent = p.recent ? lookup(p.recent, address) : undefined;
  return recent ?? lookup(p.released, address);
}
