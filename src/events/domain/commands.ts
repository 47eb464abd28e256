import type { PeerChange } from './peers.ts';
import type { HostListener } from './ports.ts';
import type { EndpointSpec, NetworkSpec, PoolCluster, PortBinding } from './types.ts';

/** Where automatic pools come from: `range` cut into prefixes of length `size`. */
export interface DefaultPool {
  readonly range: string;
  readonly size: number;
}

/** An address of the host on an interface ledgernet does not own (`10.232.150.1/24` on `br-5c1e…`). */
export interface HostAddr {
  readonly dev: string;
  /** `local/prefixlen`: the address and its connected subnet. */
  readonly cidr: string;
}

export interface PoolRequest {
  /** `--subnet`, or null for an automatic pool. */
  readonly pool: string | null;
  readonly subPool: string | null;
  readonly v6: boolean;
  readonly defaults: DefaultPool;
  /** Prefixes in use on the host (addresses and routes), read by the caller; automatic pools avoid them. */
  readonly occupied: readonly string[];
  /** The host's addresses on interfaces ledgernet does not own; an explicit `--subnet` must not overlap their connected subnets. */
  readonly hostAddrs?: readonly HostAddr[];
  /** A cluster network's pool: `pool` is the subnet the cluster's KV bucket holds. */
  readonly cluster?: PoolCluster;
}

/** An endpoint's MAC when none was given: the one derived from its address, else a random one. */
export interface MacChoice {
  readonly derived: string;
  readonly fallback: string;
}

/** A network's name in Docker. */
export interface NetworkName {
  readonly networkId: string;
  readonly name: string;
}

/** The container an endpoint belongs to, as Docker names it. */
export interface EndpointName {
  readonly networkId: string;
  readonly endpointId: string;
  readonly containerId: string;
  readonly name: string;
}

/** What a caller asks for. `decide` turns a command into events or refuses it. */
export type Command =
  | { readonly type: 'CreateNetwork'; readonly spec: NetworkSpec }
  | { readonly type: 'DeleteNetwork'; readonly networkId: string }
  | { readonly type: 'RollbackNetwork'; readonly networkId: string; readonly reason: string }
  /** Docker's API positively said the network is gone: forget it, its endpoints and its IPAM pools. */
  | { readonly type: 'CollectNetwork'; readonly networkId: string; readonly reason: string }
  /**
   * `requestedMac`: spec.mac was asked for by name (ledgernet.mac), so no other endpoint of the network may have it.
   * `macChoice` (spec.mac null): the MAC to give it, chosen against the decided state: `derived`
   * (from its IPv4 address, as Docker's bridge driver does) unless another endpoint of the
   * network has it, then `fallback` (random, drawn by the caller); recorded in `endpoint.created`.
   */
  | { readonly type: 'CreateEndpoint'; readonly spec: EndpointSpec; readonly requestedMac?: boolean; readonly macChoice?: MacChoice }
  | { readonly type: 'Join'; readonly networkId: string; readonly endpointId: string; readonly sandboxKey: string }
  | { readonly type: 'Leave'; readonly networkId: string; readonly endpointId: string }
  | { readonly type: 'DeleteEndpoint'; readonly networkId: string; readonly endpointId: string }
  | { readonly type: 'RollbackEndpoint'; readonly networkId: string; readonly endpointId: string; readonly reason: string }
  /** Answer a CreateEndpoint whose body was lost (`{}`) and create its endpoint at the Join that names it. */
  | { readonly type: 'DeferEndpoint'; readonly reason: string }
  /** Answer a CreateNetwork whose body was lost (`{}`) and take the network from Docker's API once Docker stored it. */
  | { readonly type: 'DeferNetwork'; readonly reason: string }
  /** A deferred endpoint's addresses and MAC as Docker configured them in its container. */
  | {
      readonly type: 'AddressEndpoint';
      readonly networkId: string;
      readonly endpointId: string;
      readonly address: string | null;
      readonly addressV6: string | null;
      readonly mac: string | null;
    }
  | {
      readonly type: 'ProgramExternal';
      readonly networkId: string;
      readonly endpointId: string;
      readonly portmap: readonly PortBinding[];
      /** Docker 28+ said another endpoint of the container is its IPv6 gateway (`no_proxy_6to4`). */
      readonly ipv6Elsewhere?: boolean;
      /** Sockets programs on the host listen on, read by the caller: their ports are not published. */
      readonly hostListeners?: readonly HostListener[];
      /**
       * The endpoint's container, as Docker's API names it, read by the caller only when another
       * endpoint of the network holds a host port asked for (portRivals): an older endpoint of
       * this container on this network is stale and released in the same call.
       */
      readonly containerId?: string;
    }
  /** Docker's names for networks and the containers of endpoints, as its API lists them (names.ts). */
  | { readonly type: 'RecordNames'; readonly networks: readonly NetworkName[]; readonly endpoints: readonly EndpointName[] }
  /** The log's events first..last were archived (log/archive.ts): recorded in the new file. */
  | { readonly type: 'RecordArchive'; readonly first: number; readonly last: number; readonly archive: string; readonly bytes: number }
  /** A cluster host was forgotten (events/cluster/kv.ts forgetHost, networks.ts forgetNetworks): recorded by the host that did it. */
  | { readonly type: 'RecordForgottenHost'; readonly host: string; readonly networks: readonly string[]; readonly retired: readonly string[]; readonly blocks: number }
  | { readonly type: 'RevokeExternal'; readonly networkId: string; readonly endpointId: string }
  | { readonly type: 'MarkLost'; readonly endpointId: string; readonly reason: string }
  | { readonly type: 'RequestPool'; readonly request: PoolRequest }
  | { readonly type: 'ReleasePool'; readonly poolId: string }
  | {
      readonly type: 'RequestAddress';
      readonly poolId: string;
      /** The address the caller named (gateway, aux, --ip), canonical, or null to let ledgernet choose. */
      readonly address: string | null;
      readonly gateway: boolean;
      readonly name: string | null;
    }
  | { readonly type: 'ReleaseAddress'; readonly poolId: string; readonly address: string; readonly reason?: string }
  /** A change of another host seen in the cluster's KV bucket; `self` is this host's name. */
  | { readonly type: 'PeerChange'; readonly change: PeerChange; readonly self: string }
  /** Record a block of a cluster pool this host claimed in the KV bucket. */
  | { readonly type: 'ClaimBlock'; readonly poolId: string; readonly block: string }
  | {
      readonly type: 'RecordReconcile';
      readonly trigger: string;
      readonly actions: readonly string[];
      readonly failures: readonly string[];
    };
