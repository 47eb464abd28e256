// Typed facts read from the kernel. Parsers in this folder turn `ip -j` / `iptables-save`
// output into these values; the reconciler compares them with the desired state.
import type { FirewallChange, NftHook, NftRule, NftSetSpec } from './changes.ts';

export type { FirewallChange, LinkChange, NftHook, NftRule, NftSetSpec, ShapingChange, VethSpec } from './changes.ts';

/** One network interface as `ip -j -d link show` reports it. */
export interface Link {
  readonly name: string;
  readonly index: number;
  /** `linkinfo.info_kind` (`bridge`, `veth`, `vxlan`…), null for plain devices such as `lo`. */
  readonly kind: string | null;
  /** Name of the bridge this link is enslaved to, or null. */
  readonly master: string | null;
  readonly mtu: number;
  /** Administratively up (`UP` in flags), not the carrier state. */
  readonly up: boolean;
  readonly alias: string | null;
  /**
   * The device group as `ip` prints it: `default` (0), a number, or a name from
   * /etc/iproute2/group; null when not printed. ledgernet creates links in a group of its own
   * and moves them back to `default` in the command that sets their alias (see apply.ts).
   */
  readonly group: string | null;
  readonly mac: string | null;
  /** For a veth: the peer's name when the peer is in the same namespace, else null. */
  readonly peer: string | null;
  /** For a veth: true when the peer lives in another network namespace (`link_netnsid`). */
  readonly peerInOtherNetns: boolean;
}

/** One address as `ip -j addr show` reports it. */
export interface Addr {
  readonly dev: string;
  readonly family: 'inet' | 'inet6';
  /** `local/prefixlen`, e.g. `10.231.7.1/24`. */
  readonly cidr: string;
  readonly scope: string;
}

/** One route of the main table, as `ip -j route show` reports it. */
export interface Route {
  readonly family: 4 | 6;
  /** Destination as a CIDR (`0.0.0.0/0` for the default route, `/32` or `/128` for a host route). */
  readonly dst: string;
  readonly dev: string | null;
}

/** One iptables chain as `iptables-save -t <table>` prints it. */
export interface Chain {
  readonly name: string;
  /** Policy of a built-in chain (`ACCEPT`, `DROP`), null for a user chain (`-`). */
  readonly policy: string | null;
  /** Rules exactly as printed, without the leading `-A <chain> `. */
  readonly rules: readonly string[];
}

export interface IptablesTable {
  readonly name: string;
  readonly chains: Readonly<Record<string, Chain>>;
}

/** One nftables table as `nft -j list table` reports it (handles left out). */
export interface NftTable {
  readonly family: string;
  readonly name: string;
  readonly sets: Readonly<Record<string, NftSetSpec & { readonly elements: readonly unknown[] }>>;
  readonly chains: Readonly<Record<string, { readonly hook: NftHook | null; readonly rules: readonly NftRule[] }>>;
}

/** One qdisc as `tc -j qdisc show` reports it. */
export interface Qdisc {
  readonly dev: string;
  readonly kind: string;
  readonly handle: string;
  /** Attached at the root (egress) of the device. */
  readonly root: boolean;
  readonly parent: string | null;
  /** For tbf: the rate in bytes/s; null for other kinds. */
  readonly rate: number | null;
}

/** Everything the reconciler needs to know about the kernel, read in one go. */
export interface KernelSnapshot {
  readonly links: readonly Link[];
  readonly addrs: readonly Addr[];
  readonly filter: IptablesTable;
  readonly nat: IptablesTable;
  /** `ip6tables-save -t filter`; null when ip6tables cannot run (IPv6 disabled or not installed). */
  readonly filter6: IptablesTable | null;
  /** `net.ipv4.conf.<bridge>.route_localnet` of every bridge, by bridge name. */
  readonly routeLocalnet: Readonly<Record<string, boolean>>;
  readonly qdiscs: readonly Qdisc[];
  /**
   * For each device with an ingress qdisc whose name starts with one of the prefixes given to
   * `createKernel`: the devices its ingress filters redirect to.
   */
  readonly ingressRedirects: Readonly<Record<string, readonly string[]>>;
  /**
   * nftables' `inet ledgernet` table (the nftables backend's, and what the iptables backend
   * removes after a switch): null when it does not exist; absent when `nft` cannot run.
   */
  readonly nftables?: NftTable | null;
}

export interface BatchFailure {
  /** 0-based index of the failing line in the batch that was sent. */
  readonly line: number;
  readonly command: string;
  readonly message: string;
}

export interface BatchResult {
  readonly failures: readonly BatchFailure[];
}

/**
 * The reconciler's only door to the kernel. `main.ts` passes a real one (execa), tests pass a
 * real one bound to a throwaway netns, or a fake.
 */
export interface Kernel {
  observe(): Promise<KernelSnapshot>;
  /** Routes of the main table, IPv4 then IPv6 (what automatic IPAM pools must not overlap). */
  observeRoutes(): Promise<Route[]>;
  /** Links and addresses only (two `ip` reads): for callers on a Docker call's path. */
  observeInterfaces(): Promise<{ readonly links: readonly Link[]; readonly addrs: readonly Addr[] }>;
  /** Runs all lines with one `ip -force -batch -`; reports the lines that failed. */
  ipBatch(lines: readonly string[]): Promise<BatchResult>;
  /**
   * Runs one `iptables-restore --noflush` (family 4, the default) or `ip6tables-restore --noflush`
   * (family 6) with `input` (a whole `*table … COMMIT` block).
   */
  iptablesRestore(input: string, family?: 4 | 6): Promise<void>;
  /** Runs one `nft -j -f -` with `json` (`{"nftables": [...]}`): one atomic transaction. */
  nftApply(json: string): Promise<void>;
  /** Runs all lines with one `tc -force -batch -`; reports the lines that failed. */
  tcBatch(lines: readonly string[]): Promise<BatchResult>;
  /** Sets `net.ipv4.conf.<iface>.route_localnet` for each interface, with one `sysctl -w`. */
  setRouteLocalnet(values: Readonly<Record<string, boolean>>): Promise<void>;
}

/**
 * The firewall as data: what each network wants of it, computed by the reconciler. A firewall
 * backend (kernel/iptables/, kernel/nftables/) turns it into its own rules and diffs them against
 * what it observed. Networks are sorted by bridge.
 */
export interface FirewallPolicy {
  /** The prefix of ledgernet's own bridge names (`lnb-`): one wildcard covers them all. */
  readonly bridgePrefix: string;
  /** The comment tag of every rule of ours (`ledgernet:`): the backend marks and finds its own rules by it. */
  readonly ownerTag: string;
  readonly networks: readonly FirewallNetworkPolicy[];
}

export interface FirewallNetworkPolicy {
  readonly networkId: string;
  readonly bridge: string;
  /** No traffic in or out of the bridge (Docker's --internal); only traffic inside it. */
  readonly internal: boolean;
  /** Containers of the network reach each other (enable_icc). */
  readonly icc: boolean;
  /** The network has IPv6 data: the IPv6 filter policy applies to it. */
  readonly ipv6: boolean;
  /** Ingress allow-list; null: only published ports come in. */
  readonly allow: readonly FirewallAllow[] | null;
  /** IPv4 pools masqueraded behind the host's address when they leave the bridge (empty: none). */
  readonly masquerade: readonly string[];
  /**
   * An endpoint publishes ports: host-local traffic to them is SNATed (127.0.0.1, hairpin
   * through the pools below), and only replies may reach 127.0.0.0/8 on the bridge (route_localnet).
   */
  readonly published: boolean;
  /** The network's IPv4 pools, for hairpin traffic through a published port. */
  readonly pools: readonly string[];
  /** Published ports: DNAT from the host to an endpoint, one entry per range. */
  readonly forwards: readonly PortForward[];
}

export interface FirewallAllow {
  readonly proto: 'tcp' | 'udp' | 'icmp';
  /** Inclusive port range; null for icmp (ICMPv6 on the IPv6 side). */
  readonly ports: readonly [number, number] | null;
}

export interface PortForward {
  readonly endpointId: string;
  readonly proto: 'tcp' | 'udp' | 'sctp';
  /** The host address it is published on; '' for all of them. */
  readonly hostIp: string;
  /** Inclusive host port range. */
  readonly hostPorts: readonly [number, number];
  /** The endpoint's IPv4 address and the first container port of the range. */
  readonly ip: string;
  readonly port: number;
}

export interface FirewallFailure {
  readonly change: FirewallChange;
  readonly message: string;
}

/**
 * The port the reconciler calls for the firewall. A backend renders the policy in its own
 * syntax, diffs it against the snapshot (only objects it owns), and applies changes in batches
 * through the kernel. Adding one: a folder under kernel/ and one line in kernel/index.ts.
 */
export interface FirewallBackend {
  readonly name: string;
  /** The changes that bring the observed firewall to `policy`, unsorted. Pure. */
  plan(policy: FirewallPolicy, observed: KernelSnapshot): FirewallChange[];
  /** Applies changes (one batch per table); returns the ones that failed. */
  apply(changes: readonly FirewallChange[], kernel: Kernel): Promise<FirewallFailure[]>;
}
