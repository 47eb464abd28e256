import type { FirewallChange, LinkChange, ShapingChange } from '../kernel/types.ts';
import type { ProxyChange, ReserveChange } from '../kernel/index.ts';

export { CREATE_GROUP } from '../kernel/index.ts';

/** Who an action is for: the network and/or endpoint it belongs to (null for shared objects). */
export interface Owner {
  readonly networkId: string | null;
  readonly endpointId: string | null;
}

/** `conflict`: the name is held by a link that is not ledgernet's; it is left alone. */
export type Reason = 'missing' | 'orphan' | 'drifted' | 'vanished' | 'conflict';

/** What holds a name ledgernet wants: for the plan output and `status`. */
export interface FoundLink {
  readonly index: number;
  readonly kind: string | null;
  readonly alias: string | null;
}

interface Base {
  readonly owner: Owner;
  readonly reason: Reason;
  /** For `drifted`: what was expected and what was found, for the plan output. */
  readonly detail?: string;
}

/**
 * One step of a plan. Kernel work is typed data the kernel renders (kernel/changes.ts: links and
 * addresses, shaping, firewall); the rest is the reconciler's own.
 */
export type Action =
  | LinkChange
  | ShapingChange
  | FirewallChange
  | ProxyChange
  | ReserveChange
  | (Base & { readonly kind: 'bridge.localnet'; readonly name: string; readonly on: boolean })
  /** `net.ipv6.conf.<bridge>.accept_ra` back to 0 on a bridge found taking router advertisements (a new bridge gets 0 when made). */
  | (Base & { readonly kind: 'bridge.accept_ra'; readonly name: string })
  /**
   * `serve --ipv6-forwarding`: the namespace's IPv6 forwarding (`name`: net.ipv6.conf.all.forwarding)
   * turned on, as Docker's bridge driver does for an IPv6 network of its own; shared (no owner).
   */
  | (Base & { readonly kind: 'sysctl.ipv6_forwarding'; readonly name: string })
  | (Base & { readonly kind: 'endpoint.lost'; readonly name: string })
  /** Not kernel work: a link that is not ledgernet's holds a name it wants; nothing is done to it. */
  | (Base & { readonly kind: 'link.conflict'; readonly name: string; readonly role: 'bridge' | 'veth' | 'peer' | 'ifb'; readonly found: FoundLink })
  /**
   * Not kernel work: the route to a bridge's subnet goes through other devices (`found`; null: a
   * route without one, e.g. blackhole), someone else's; it is reported and left alone.
   */
  | (Base & { readonly kind: 'route.conflict'; readonly dev: string; readonly dst: string; readonly found: readonly (string | null)[] });

export type ActionKind = Action['kind'];

/** Something not ledgernet's in its way, left alone: a link holding a name it wants, or a route to a bridge's subnet. */
export type Conflict = Extract<Action, { kind: 'link.conflict' | 'route.conflict' }>;

/** True for a conflict (nothing is done for it; `!` in a plan); any plan item may be asked. */
export const isConflict = <T extends { readonly kind: string }>(a: T): a is T & Conflict => a.kind === 'link.conflict' || a.kind === 'route.conflict';

/**
 * A sysctl written through /proc (a bridge's route_localnet or accept_ra, IPv6 forwarding): one that
 * could not be written leaves the kernel as the model has it, so its failure does not send the
 * next pass to a full read (reconciler/loop.ts).
 */
export const isSysctl = (a: { readonly kind: string }): boolean => a.kind === 'bridge.localnet' || a.kind === 'bridge.accept_ra' || a.kind === 'sysctl.ipv6_forwarding';

/**
 * Apply order. Creates come first so that Docker waits on as little as possible; slow deletes
 * (a bridge takes ~45 ms in the kernel) come last. A jump is removed before its chain, and a
 * chain is written before the jump into it is added.
 */
export const KIND_ORDER: readonly ActionKind[] = [
  'hook.delete',
  'bridge.create',
  'addr.del',
  'addr.add',
  'veth.create',
  'ifb.create',
  'link.set',
  'bridge.localnet',
  'bridge.accept_ra',
  'sysctl.ipv6_forwarding',
  // A bridge's subnet route, once the bridge is up with its address (links above).
  'route.add',
  'redirect.delete',
  'qdisc.delete',
  'qdisc.set',
  'redirect.set',
  'chain.write',
  'hook.add',
  'chain.delete',
  // nftables: the backend orders them within its one transaction; this is the display order.
  'nft.table.delete',
  'nft.set.write',
  'nft.chain.write',
  'nft.element.add',
  'nft.element.delete',
  'nft.chain.delete',
  'nft.set.delete',
  // The userland proxy (kernel/proxy/): a port moved to another endpoint is closed before it is opened.
  'proxy.close',
  'proxy.open',
  // The sockets that hold published host ports (kernel/reservations/): released before others are held.
  'port.release',
  'port.reserve',
  'link.delete',
  'endpoint.lost',
  'link.conflict',
  'route.conflict',
];

/** The object an action is about, used for sorting and for display. */
export function actionKey(a: Action): string {
  switch (a.kind) {
    case 'addr.add':
    case 'addr.del':
      return `${a.dev} ${a.cidr}`;
    case 'route.add':
    case 'route.conflict':
      return `${a.dst} dev ${a.dev}`;
    case 'chain.write':
    case 'chain.delete':
      return `${a.table}/${a.chain}`;
    case 'hook.add':
    case 'hook.delete':
      return `${a.table}/${a.from} ${a.rule}`;
    case 'nft.table.delete':
      return a.table;
    case 'nft.set.write':
    case 'nft.set.delete':
      return `${a.table}/${a.set}`;
    case 'nft.element.add':
    case 'nft.element.delete':
      return `${a.table}/${a.set} ${a.text}`;
    case 'nft.chain.write':
    case 'nft.chain.delete':
      return `${a.table}/${a.chain}`;
    default:
      return a.name;
  }
}

/** One line per action: `bridge.create lnb-0123 (missing)`. */
export function describeAction(a: Action): string {
  const extra = a.detail ? `: ${a.detail}` : '';
  return `${a.kind} ${actionKey(a)} (${a.reason}${extra})`;
}
