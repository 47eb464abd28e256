// The changes a plan asks of the kernel, as plain data: the reconciler decides them (what), the
// kernel renders them in each tool's syntax (how: iproute/, tc/, iptables/) and applies them in
// batches. They are part of the plan's JSON (docs/plan-json.md), so their fields are stable.

/** Who a change is for (null for shared objects), why, and for `drifted` what was found. */
interface ChangeBase {
  readonly owner: { readonly networkId: string | null; readonly endpointId: string | null };
  readonly reason: 'missing' | 'orphan' | 'drifted';
  readonly detail?: string;
}

/** Links of these names are deleted first (a leftover of ledgernet's own under a name wanted now). */
interface Replaces {
  readonly replaces?: readonly string[];
}

/**
 * The device group links are created in (0x4c4e4554, "LNET"). The kernel ignores an ifalias
 * given to `ip link add`, so a link gets its alias in the next command; a link of this group
 * without an alias is one ledgernet created and could not label yet (a crash between the two
 * commands). Setting the alias moves it back to group `default` in the same netlink message.
 */
export const CREATE_GROUP = '1280198004';

/** A veth pair as created: host side `name` enslaved to `master`, container side `peer`, both labelled. */
export interface VethSpec {
  readonly name: string;
  readonly peer: string;
  readonly alias: string;
  readonly peerAlias: string;
  readonly mtu: number;
  readonly master: string;
  /**
   * The container side's MAC, set at creation (null: the kernel's random one). Docker keeps the
   * interface's own MAC when CreateEndpoint answers without one, so the answer need not carry it.
   */
  readonly peerMac: string | null;
}

/** Link and address work: rtnetlink requests from the daemon, or one `ip -force -batch -` a pass (kernel/iproute/). */
export type LinkChange =
  | (ChangeBase &
      Replaces & {
        readonly kind: 'bridge.create';
        readonly name: string;
        readonly alias: string;
        readonly mtu: number;
        /** No IPv6 link-local address (`addrgenmode none` before the bridge goes up): the `isolated` gateway mode. */
        readonly noLinkLocal?: true;
      })
  | (ChangeBase & Replaces & VethSpec & { readonly kind: 'veth.create' })
  | (ChangeBase & {
      readonly kind: 'link.set';
      readonly name: string;
      readonly mtu?: number;
      readonly master?: string;
      readonly alias?: string;
      readonly up?: true;
      /** `addrgenmode none`: no new IPv6 link-local address. */
      readonly noLinkLocal?: true;
    })
  | (ChangeBase & Replaces & { readonly kind: 'ifb.create'; readonly name: string; readonly alias: string })
  | (ChangeBase & { readonly kind: 'addr.add'; readonly dev: string; readonly cidr: string })
  | (ChangeBase & { readonly kind: 'addr.del'; readonly dev: string; readonly cidr: string })
  /**
   * A bridge's connected subnet route, as the kernel makes it for the bridge's address (`proto
   * kernel`; IPv4 `scope link src <gateway>`, IPv6 metric 256): put back when it was deleted.
   */
  | (ChangeBase & { readonly kind: 'route.add'; readonly dev: string; readonly dst: string; readonly src: string })
  | (ChangeBase & { readonly kind: 'link.delete'; readonly name: string });

/** Bandwidth shaping: rtnetlink requests, or one `tc -force -batch -` a pass (kernel/tc/). */
export type ShapingChange =
  /**
   * A tbf of `rate` bit/s at the root of `name`. `mtu`: the largest packet it must pass (the
   * network's MTU: on the host-side veth, and on the endpoint's ifb, which its veth redirects to).
   */
  | (ChangeBase & { readonly kind: 'qdisc.set'; readonly name: string; readonly rate: number; readonly mtu: number })
  | (ChangeBase & { readonly kind: 'qdisc.delete'; readonly name: string })
  | (ChangeBase & { readonly kind: 'redirect.set'; readonly name: string; readonly to: string; readonly replace: boolean })
  | (ChangeBase & { readonly kind: 'redirect.delete'; readonly name: string });

/** An nftables rule: its statements as `nft -j` prints them (`expr`). */
export type NftRule = readonly unknown[];

/** A set or map of the nftables table, as `nft -j` prints it (`elem` aside). */
export interface NftSetSpec {
  /** `set` or `map` (a verdict map is a map with `map: 'verdict'`). */
  readonly is: 'set' | 'map';
  readonly type: string | readonly string[];
  readonly map?: string;
  readonly flags?: readonly string[];
}

/** A base chain's hook (`type filter hook forward priority 0; policy accept`). */
export interface NftHook {
  readonly type: 'filter' | 'nat';
  readonly hook: string;
  readonly prio: number;
  readonly policy: 'accept';
}

/** nftables work: one `nft -j -f -` transaction per pass (kernel/nftables/). */
type NftChange =
  | (ChangeBase & { readonly kind: 'nft.table.delete'; readonly table: string })
  | (ChangeBase & {
      readonly kind: 'nft.set.write';
      readonly table: string;
      readonly set: string;
      readonly spec: NftSetSpec;
      readonly elements: readonly unknown[];
      /** For display: `+ element` as nft writes it, the first few, then how many more. */
      readonly diff?: readonly string[];
    })
  | (ChangeBase & { readonly kind: 'nft.set.delete'; readonly table: string; readonly set: string })
  | (ChangeBase & {
      readonly kind: 'nft.element.add' | 'nft.element.delete';
      readonly table: string;
      readonly set: string;
      readonly element: unknown;
      /** For display: the element as nft writes it (`tcp . 8080 : 10.231.9.2`). */
      readonly text: string;
    })
  | (ChangeBase & {
      readonly kind: 'nft.chain.write';
      readonly table: string;
      readonly chain: string;
      readonly hook?: NftHook;
      readonly rules: readonly NftRule[];
      /** For display: `+ rule` to be added, `- rule` to be removed, as nft writes them. */
      readonly diff?: readonly string[];
    })
  | (ChangeBase & { readonly kind: 'nft.chain.delete'; readonly table: string; readonly chain: string });

/** Rule-level edits of one iptables chain: `-D` these rules, then `-I` each at its 1-based place, in order. */
export interface RuleEdits {
  readonly deletes: readonly string[];
  readonly inserts: readonly { readonly position: number; readonly rule: string }[];
}

/** Firewall work, planned and applied by the firewall backend (kernel/iptables/, kernel/nftables/). */
export type FirewallChange =
  | NftChange

  | (ChangeBase & {
      readonly kind: 'chain.write';
      readonly table: string;
      readonly chain: string;
      readonly rules: readonly string[];
      /** For display: `+ rule` to be added, `- rule` to be removed. */
      readonly diff?: readonly string[];
      /** When set, the chain holds the planned-against rules and these edits turn them into `rules` (no rewrite). */
      readonly edits?: RuleEdits;
    })
  | (ChangeBase & { readonly kind: 'chain.delete'; readonly table: string; readonly chain: string })
  | (ChangeBase & {
      readonly kind: 'hook.add';
      readonly table: string;
      readonly from: string;
      readonly rule: string;
      /** 1-based `-I` position, or null to append. */
      readonly position: number | null;
    })
  | (ChangeBase & { readonly kind: 'hook.delete'; readonly table: string; readonly from: string; readonly rule: string });

const FIREWALL_KINDS: ReadonlySet<string> = new Set<FirewallChange['kind']>([
  'chain.write',
  'chain.delete',
  'hook.add',
  'hook.delete',
  'nft.table.delete',
  'nft.set.write',
  'nft.set.delete',
  'nft.element.add',
  'nft.element.delete',
  'nft.chain.write',
  'nft.chain.delete',
]);

/** Whether a change is the firewall backend's to apply. */
export function isFirewallChange<T extends { readonly kind: string }>(c: T): c is Extract<T, FirewallChange> {
  return FIREWALL_KINDS.has(c.kind);
}
