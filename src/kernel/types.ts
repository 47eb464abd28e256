// Typed facts read from the kernel. Parsers in this folder turn `ip -j` / `iptables-save`
// output into these values; the reconciler compares them with the desired state.

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
  /** Runs all lines with one `tc -force -batch -`; reports the lines that failed. */
  tcBatch(lines: readonly string[]): Promise<BatchResult>;
  /** Sets `net.ipv4.conf.<iface>.route_localnet` for each interface, with one `sysctl -w`. */
  setRouteLocalnet(values: Readonly<Record<string, boolean>>): Promise<void>;
}
