import type { FirewallChange } from '../kernel/types.ts';

/** Who an action is for: the network and/or endpoint it belongs to (null for shared objects). */
export interface Owner {
  readonly networkId: string | null;
  readonly endpointId: string | null;
}

/** `conflict`: the name is held by a link that is not ledgernet's; it is left alone. */
export type Reason = 'missing' | 'orphan' | 'drifted' | 'vanished' | 'conflict';

/**
 * The device group links are created in (0x4c4e4554, "LNET"). The kernel ignores an ifalias
 * given to `ip link add`, so a link gets its alias in the next command; a link of this group
 * without an alias is one ledgernet created and could not label yet (a crash between the two
 * commands). Setting the alias moves it back to group `default` in the same netlink message.
 */
export const CREATE_GROUP = '1280198004';

/** Links of these names are deleted first (a leftover of ledgernet's own under a name wanted now). */
interface Replaces {
  readonly replaces?: readonly string[];
}

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

export type Action =
  | (Base & Replaces & { readonly kind: 'bridge.create'; readonly name: string; readonly alias: string; readonly mtu: number })
  | (Base & Replaces & {
      readonly kind: 'veth.create';
      readonly name: string;
      readonly peer: string;
      readonly alias: string;
      readonly peerAlias: string;
      readonly mtu: number;
      readonly master: string;
    })
  | (Base & {
      readonly kind: 'link.set';
      readonly name: string;
      readonly mtu?: number;
      readonly master?: string;
      readonly alias?: string;
      readonly up?: true;
    })
  | (Base & { readonly kind: 'bridge.localnet'; readonly name: string; readonly on: boolean })
  | (Base & { readonly kind: 'qdisc.set'; readonly name: string; readonly rate: number })
  | (Base & { readonly kind: 'qdisc.delete'; readonly name: string })
  | (Base & Replaces & { readonly kind: 'ifb.create'; readonly name: string; readonly alias: string })
  | (Base & { readonly kind: 'redirect.set'; readonly name: string; readonly to: string; readonly replace: boolean })
  | (Base & { readonly kind: 'redirect.delete'; readonly name: string })
  | (Base & { readonly kind: 'addr.add'; readonly dev: string; readonly cidr: string })
  | (Base & { readonly kind: 'addr.del'; readonly dev: string; readonly cidr: string })
  | (Base & { readonly kind: 'link.delete'; readonly name: string })
  | (Base & { readonly kind: 'endpoint.lost'; readonly name: string })
  /** Not kernel work: a link that is not ledgernet's holds a name it wants; nothing is done to it. */
  | (Base & { readonly kind: 'link.conflict'; readonly name: string; readonly role: 'bridge' | 'veth' | 'peer' | 'ifb'; readonly found: FoundLink })
  /** Firewall work, planned and applied by the firewall backend (kernel/iptables/). */
  | FirewallChange;

export type ActionKind = Action['kind'];

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
  'redirect.delete',
  'qdisc.delete',
  'qdisc.set',
  'redirect.set',
  'chain.write',
  'hook.add',
  'chain.delete',
  'link.delete',
  'endpoint.lost',
  'link.conflict',
];

/** The object an action is about, used for sorting and for display. */
export function actionKey(a: Action): string {
  switch (a.kind) {
    case 'addr.add':
    case 'addr.del':
      return `${a.dev} ${a.cidr}`;
    case 'chain.write':
    case 'chain.delete':
      return `${a.table}/${a.chain}`;
    case 'hook.add':
    case 'hook.delete':
      return `${a.table}/${a.from} ${a.rule}`;
    default:
      return a.name;
  }
}

/** One line per action: `bridge.create lnb-0123 (missing)`. */
export function describeAction(a: Action): string {
  const extra = a.detail ? `: ${a.detail}` : '';
  return `${a.kind} ${actionKey(a)} (${a.reason}${extra})`;
}
