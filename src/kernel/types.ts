// Typed facts read from the kernel. Parsers in this folder turn `ip -j` / `iptables-save`
// output into these values; the reconciler compares them with the desired state.
import type { FirewallChange, LinkChange, NftHook, NftRule, NftSetSpec, ShapingChange } from './changes.ts';
import type { ConntrackFlush, ConntrackResult } from './conntrack.ts';

export type { FirewallChange, LinkChange, NftHook, NftRule, NftSetSpec, RuleEdits, ShapingChange, VethSpec } from './changes.ts';

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
  /** `inet6_addr_gen_mode` (`eui64`, `none`, …): `none` gives the link no IPv6 link-local address; absent when not printed. */
  readonly addrGenMode?: string;
  /**
   * Alternative names (`ip link property add … altname`); absent when none. The kernel finds a
   * link by any of them as by its name (`ip link set dev <altname>`, RTM_GETLINK, `link add`
   * fails with EEXIST), so a link is the holder of each.
   */
  readonly altnames?: readonly string[];
  /**
   * For a VXLAN device read in full (`ip -j -d link show`, a link dump): what it was made with.
   * Absent for other kinds, and where only the plain link was read (`ip -j link show`, the model).
   */
  readonly vxlan?: VxlanInfo;
}

/** A VXLAN device's tunnel: `id`, `local` (or `local6`) and `dstport` as `ip link add … type vxlan` took them. */
export interface VxlanInfo {
  readonly vni: number;
  /** The source address of its packets (this host's VTEP), as `ip` prints it; null when it has none. */
  readonly local: string | null;
  /** The remote UDP port. */
  readonly port: number;
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
  /**
   * For tbf: the burst in bytes, as tc prints it back from the kernel's bucket in ticks (whole
   * microseconds at the rate, rounded down: a little under what was written); null for other kinds.
   */
  readonly burst: number | null;
  /** For tbf: the queue's limit in bytes (what was written); null for other kinds, or not read. */
  readonly limit: number | null;
}

/** Everything the reconciler needs to know about the kernel, read in one go. */
export interface KernelSnapshot {
  readonly links: readonly Link[];
  readonly addrs: readonly Addr[];
  readonly filter: IptablesTable;
  readonly nat: IptablesTable;
  /** `ip6tables-save -t filter`; null when ip6tables cannot run (IPv6 disabled or not installed). */
  readonly filter6: IptablesTable | null;
  /**
   * `ip6tables-save -t nat` (IPv6 NAT: masquerade, SNAT, published ports); null when ip6tables
   * cannot run; absent when it was not read (then nothing is planned for it).
   */
  readonly nat6?: IptablesTable | null;
  /** `iptables-save -t mangle` and `ip6tables-save -t mangle` (direct-access protection); null: cannot be read; absent: not read. */
  readonly mangle?: IptablesTable | null;
  readonly mangle6?: IptablesTable | null;
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
  /**
   * The unicast routes of the main table, both families (one dump; the full observe only):
   * what a network's connected subnet route is checked against. Absent: not read (the model
   * Docker's calls plan against), and then no route is planned.
   */
  readonly routes?: readonly Route[];
  /**
   * The links whose IPv4 forwarding is off (`net.ipv4.conf.<link>.forwarding = 0`; the kernel
   * forwards a packet only when the link it came in on has it on). From the full observe's link
   * dump; absent when not read (the model, or the links read with processes).
   */
  readonly forwardingOff?: readonly string[];
  /**
   * The namespace's IPv6 forwarding (`net.ipv6.conf.all.forwarding`: the kernel forwards IPv6
   * only when on; `.default`: what new links start with). From the full observe's netconf dump;
   * absent when not read (as `forwardingOff`) or when the kernel has no IPv6.
   */
  readonly ipv6Forwarding?: Ipv6Forwarding;
  /**
   * Per bridge, whether `net.ipv6.conf.<bridge>.accept_ra` is not 0: the host would take router
   * advertisements a container sends (CVE-2020-13401), so a bridge of ledgernet's must have it 0.
   * From the full observe's link dump, kept by the model; absent when not read (the links read
   * with processes), and a bridge missing from it is not known.
   */
  readonly acceptRa?: Readonly<Record<string, boolean>>;
  /** Bridge filtering (what `icc=false` needs); from the full observe, absent when not read. */
  readonly bridgeNf?: BridgeNf;
}

/**
 * Whether bridged traffic passes the firewall: `net.bridge.bridge-nf-call-iptables` and
 * `-ip6tables`; null where the setting does not exist (the br_netfilter module is not loaded).
 */
export interface BridgeNf {
  readonly iptables: boolean | null;
  readonly ip6tables: boolean | null;
}

export interface Ipv6Forwarding {
  readonly all: boolean;
  readonly default: boolean;
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

/** A change of the batch that failed: its index in the changes given, and the kernel's words. */
export interface ChangeFailure {
  readonly index: number;
  readonly message: string;
}

export interface ChangesResult {
  readonly failures: readonly ChangeFailure[];
}

/** The iptables tables ledgernet writes; `filter6`, `nat6` and `mangle6` are ip6tables' tables (the `6` suffix). */
export type IptablesTableKey = 'filter' | 'nat' | 'filter6' | 'nat6' | 'mangle' | 'mangle6';

/**
 * The reconciler's only door to the kernel: observed facts out, typed changes in; the kernel
 * renders them in each tool's syntax. `main.ts` passes a real one (processes), tests pass a real one
 * bound to a throwaway netns, or a fake (test/helpers/fake-kernel.ts).
 */
export interface Kernel {
  observe(): Promise<KernelSnapshot>;
  /** Routes of the main table, IPv4 then IPv6. */
  observeRoutes(): Promise<Route[]>;
  /**
   * What an automatic IPAM pool must not overlap: every address (`local/prefixlen`), then every
   * main-table route's destination (IPv4, then IPv6); `routes` false: the addresses only. Address
   * and route dumps in this process, no link dump; else `ip` reads.
   */
  observePrefixes(routes?: boolean): Promise<string[]>;
  /**
   * The link that has `name` as its name or an altname, as far as telling whose it is needs (one
   * RTM_GETLINK request in this process, no dump; else `ip link show dev`); null when none has.
   */
  observeLinkNamed(name: string): Promise<Pick<Link, 'name' | 'alias' | 'group'> | null>;
  /** Every link and every address (rtnetlink dumps in this process, else two `ip` reads): for callers on a Docker call's path. */
  observeInterfaces(): Promise<{ readonly links: readonly Link[]; readonly addrs: readonly Addr[] }>;
  /**
   * Applies all changes, every request of each even after one failed (as `ip -force -batch -`):
   * rtnetlink requests from this process, or one `ip` process (kernel/iproute/); reports the
   * changes that failed, by index. Throws when the changes could not be sent at all.
   */
  applyLinks(changes: readonly LinkChange[]): Promise<ChangesResult>;
  /** Applies all changes, every step of each: rtnetlink requests from this process, or one `tc -force -batch -` (kernel/tc/); reports the failed ones by index. */
  applyShaping(changes: readonly ShapingChange[]): Promise<ChangesResult>;
  /**
   * Applies the changes of one table, all or nothing: one `iptables-restore --noflush`
   * (`ip6tables-restore` for `filter6`) with the input kernel/iptables/ renders. Throws when it fails.
   */
  restoreIptables(table: IptablesTableKey, changes: readonly FirewallChange[]): Promise<void>;
  /** Sets `net.ipv4.conf.<iface>.route_localnet` for each interface, with one `sysctl -w`. */
  setRouteLocalnet(values: Readonly<Record<string, boolean>>): Promise<void>;
  /**
   * Sets `net.ipv6.conf.<bridge>.accept_ra` to 0 on each bridge (nothing where the kernel has no
   * IPv6). Throws naming the bridge when it cannot.
   */
  setAcceptRaOff(bridges: readonly string[]): Promise<void>;
  /**
   * Turns IPv6 forwarding on in the namespace as Docker's bridge driver does for an IPv6 network of
   * its own (`serve --ipv6-forwarding`): `net.ipv6.conf.default.forwarding` then `.all.forwarding`
   * set to 1 where 0. Returns the settings it changed; throws naming the setting when it cannot.
   */
  setIpv6ForwardingOn(): Promise<string[]>;
  /**
   * Runs one `nft -j -f` with `json` (`{"nftables": [...]}`, built by kernel/nftables/): one atomic
   * transaction. `after`: our table as the transaction leaves it (evolve.ts), which the full
   * observe may use instead of a read when nobody else changed the table since.
   */
  nftApply(json: string, after?: (table: NftTable | null | undefined) => NftTable | null | undefined): Promise<void>;
  /**
   * Deletes the connection-tracking entries any of `flushes` matches (kernel/conntrack.ts:
   * ctnetlink from this process, no process). `unavailable` when ctnetlink cannot be reached.
   * Absent: a kernel that keeps no such table (test fakes).
   * @throws DriverError `LN_ERR_KERNEL_EXEC` when the table cannot be read or an entry deleted.
   */
  flushConntrack?(flushes: readonly ConntrackFlush[]): Promise<ConntrackResult>;
}

/**
 * The real kernel (`createKernel`): the port, and the command-level doors its typed methods are
 * built on. Only the kernel layer and the tests of the real commands use the latter.
 */
export interface HostKernel extends Kernel {
  /**
   * Runs all lines with one `ip -force -batch -` (`force` false: without `-force`, `ip` stops at
   * the first failed line); reports the lines that failed.
   */
  ipBatch(lines: readonly string[], force?: boolean): Promise<BatchResult>;
  /** Runs all lines with one `tc -force -batch -`; reports the lines that failed. */
  tcBatch(lines: readonly string[]): Promise<BatchResult>;
  /**
   * Runs one `iptables-restore --noflush` (family 4, the default) or `ip6tables-restore --noflush`
   * (family 6) with `input` (a whole `*table … COMMIT` block).
   */
  iptablesRestore(input: string, family?: 4 | 6): Promise<void>;
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
  /** The other VTEPs of this host's cluster networks: their VXLAN (UDP 4789) is accepted in INPUT. Absent: none. */
  readonly vxlanPeers?: readonly string[];
  /**
   * Docker's bridges beyond its name patterns (docker0, br-*, docker_gwbridge): custom names, as
   * Docker's isolation chains list them (kernel/docker-bridges.ts). Isolated like the others. Absent: none.
   */
  readonly dockerBridges?: readonly string[];
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
  /**
   * IPv6 NAT (Docker 27+): the IPv6 pools masqueraded (or SNATed to `snat`) when they leave the
   * bridge (empty: none), and published ports over IPv6 (`hostIp` '' for every address, else an
   * IPv6 address; `ip` the endpoint's IPv6 address). With IPv6 forwards, hairpin connections
   * from `pools` through them are masqueraded. Absent: no IPv6 NAT at all.
   */
  readonly nat6?: FirewallNat6;
  /** `com.docker.network.host_ipv4`: the source address IPv4 egress is SNATed to instead of masquerade; null: masquerade. */
  readonly snat4?: string | null;
  /** What the containers may open connections to outside the network; null: no egress policy. */
  readonly egress: FirewallEgress | null;
  /** Docker's gateway mode of each family; how each backend carries it out: its gateway-mode.ts. */
  readonly gatewayMode: { readonly 4: FirewallGatewayMode; readonly 6: FirewallGatewayMode };
  /** `trusted_host_interfaces`: packets from these may address containers directly (published ports). */
  readonly trusted: readonly string[];
  /** The network's subnets (both families), canonical: what direct-access protection guards. */
  readonly subnets: readonly string[];
  /** The addresses of the bridge (gateways, without prefix length): the host's own, never guarded. */
  readonly gateways: readonly string[];
  /** Published container ports, per endpoint address: opened to direct access in `routed`, and from trusted interfaces in `nat`. */
  readonly opened: readonly OpenedPort[];
  /**
   * `serve --allow-direct-routing` (Docker 28's daemon-wide `--allow-direct-routing`): no
   * direct-access protection, and the published container ports are reachable directly from every
   * interface (as if each were trusted). Absent: off.
   */
  readonly directRouting?: boolean;
}

/**
 * Docker 28's gateway modes, per family: `nat` (masquerade, published ports through DNAT, packets
 * from outside addressed to a container dropped unless they come from a trusted interface),
 * `nat-unprotected` (the same NAT, nothing filtered: every port reachable directly), `routed` (no
 * NAT; published ports open the container port to direct access, and ICMP), `isolated` (internal
 * only; the bridge gets no address).
 */
type FirewallGatewayMode = 'nat' | 'nat-unprotected' | 'routed' | 'isolated';

export interface OpenedPort {
  readonly endpointId: string;
  readonly family: 4 | 6;
  readonly ip: string;
  readonly proto: 'tcp' | 'udp' | 'sctp';
  /** Inclusive container port range. */
  readonly ports: readonly [number, number];
}

/**
 * The egress policy of one network (`ledgernet.egress_deny` / `ledgernet.egress_allow`), per
 * family. It judges only a packet that opens a connection (conntrack state new; nftables
 * `ct state new`) and arrives from the network's bridge (`iif`), both when it is forwarded (to
 * anywhere but the bridge itself: the outside, other interfaces) and when it is addressed to the
 * host itself (input). Replies and related packets (`established`/`related`: answers to inbound
 * connections, ICMP errors) and packets conntrack does not track (neighbour discovery) are never
 * judged. Every address and port below is matched against the connection's original destination,
 * the one the container addressed, before any DNAT on the host (iptables `--ctorigdst` /
 * `--ctorigdstport`; nftables `ct original ip daddr` / `ct original ip6 daddr` / `ct original
 * proto-dst`), so a published port reached through a host address counts as that address. A
 * judged packet, in this order:
 * 1. original destination inside one of `own` (the network's subnets, so its gateway too): passes;
 * 2. matches a `deny` item: refused (deny wins over allow);
 * 3. `allow` is not null and it matches no `allow` item: refused (an allow-list without an item
 *    of a family refuses that whole family);
 * 4. otherwise it passes, and the rest of the policy (isolation, ingress) still applies, as if
 *    there were no egress policy: passing never accepts in `input` (the host's own rules decide).
 * The judgement comes before any accept such a packet could meet in forward (another network's
 * published-port or allow-list accept, the network's own egress accept), else a new connection to
 * a port published by another network would slip past it; isolation drops may come first.
 * "Refused" is a reject with ICMP port unreachable (ICMPv6 for IPv6), so clients fail at once.
 * IPv6 items and rules apply only to networks with IPv6 (`ipv6`); an item of one family never
 * matches a packet of the other.
 */
export interface FirewallEgress {
  readonly own: readonly string[];
  readonly deny: readonly FirewallEgressItem[];
  /** null: everything that is not denied passes. */
  readonly allow: readonly FirewallEgressItem[] | null;
}

export interface FirewallEgressItem {
  readonly family: 4 | 6;
  /** Canonical CIDR; a single address is a /32 or /128. */
  readonly cidr: string;
  /** The connection's protocol; null: any. `icmp` is ICMPv6 in an IPv6 item. */
  readonly proto: 'tcp' | 'udp' | 'icmp' | null;
  /** Inclusive destination port range (tcp/udp only); null: any port. */
  readonly ports: readonly [number, number] | null;
}

export interface FirewallAllow {
  readonly proto: 'tcp' | 'udp' | 'icmp';
  /** Inclusive port range; null for icmp (ICMPv6 on the IPv6 side). */
  readonly ports: readonly [number, number] | null;
}

export interface FirewallNat6 {
  readonly masquerade: readonly string[];
  /** `com.docker.network.host_ipv6`: SNAT to this address instead of masquerade; null: masquerade. */
  readonly snat: string | null;
  readonly pools: readonly string[];
  readonly forwards: readonly PortForward[];
}

export interface PortForward {
  readonly endpointId: string;
  readonly proto: 'tcp' | 'udp' | 'sctp';
  /** The host address it is published on; '' for all of them (of the forward's family). */
  readonly hostIp: string;
  /** Inclusive host port range. */
  readonly hostPorts: readonly [number, number];
  /** The endpoint's address (IPv4; IPv6 in `nat6.forwards`) and the first container port of the range. */
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
 * through the kernel's typed method for its tool (`restoreIptables`). Adding one: a folder under
 * kernel/, its typed method on the Kernel port (real and fake), and one line in kernel/index.ts.
 */
export interface FirewallBackend {
  readonly name: string;
  /** The changes that bring the observed firewall to `policy`, unsorted. Pure. */
  plan(policy: FirewallPolicy, observed: KernelSnapshot): FirewallChange[];
  /**
   * The same changes as `plan(policy, observed)`, when `observed` holds all that
   * `plan(before, ·)` asked for (its plan was applied in full): planned from what changed since,
   * for Docker's passes (reconciler/scoped.ts). Optional: without it, `plan`. Pure.
   */
  planFrom?(policy: FirewallPolicy, before: FirewallPolicy, observed: KernelSnapshot): FirewallChange[];
  /** Applies changes (one batch per table); returns the ones that failed. */
  apply(changes: readonly FirewallChange[], kernel: Kernel): Promise<FirewallFailure[]>;
  /**
   * The snapshot once `applied` (changes that did not fail) landed, without reading the kernel:
   * the model Docker's calls plan against (kernel/model.ts). Pure. Null when the backend cannot
   * say: the next pass then reads the kernel.
   */
  after(observed: KernelSnapshot, applied: readonly FirewallChange[]): KernelSnapshot | null;
}
