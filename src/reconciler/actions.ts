/** Who an action is for: the network and/or endpoint it belongs to (null for shared objects). */
export interface Owner {
  readonly networkId: string | null;
  readonly endpointId: string | null;
}

export type Reason = 'missing' | 'orphan' | 'drifted' | 'vanished';

interface Base {
  readonly owner: Owner;
  readonly reason: Reason;
  /** For `drifted`: what was expected and what was found, for the plan output. */
  readonly detail?: string;
}

export type Action =
  | (Base & { readonly kind: 'bridge.create'; readonly name: string; readonly alias: string; readonly mtu: number })
  | (Base & {
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
  | (Base & { readonly kind: 'ifb.create'; readonly name: string; readonly alias: string })
  | (Base & { readonly kind: 'redirect.set'; readonly name: string; readonly to: string; readonly replace: boolean })
  | (Base & { readonly kind: 'redirect.delete'; readonly name: string })
  | (Base & { readonly kind: 'addr.add'; readonly dev: string; readonly cidr: string })
  | (Base & { readonly kind: 'addr.del'; readonly dev: string; readonly cidr: string })
  | (Base & { readonly kind: 'link.delete'; readonly name: string })
  | (Base & { readonly kind: 'endpoint.lost'; readonly name: string })
  | (Base & {
      readonly kind: 'chain.write';
      readonly table: string;
      readonly chain: string;
      readonly rules: readonly string[];
      /** For display: `+ rule` to be added, `- rule` to be removed. */
      readonly diff?: readonly string[];
    })
  | (Base & { readonly kind: 'chain.delete'; readonly table: string; readonly chain: string })
  | (Base & {
      readonly kind: 'hook.add';
      readonly table: string;
      readonly from: string;
      readonly rule: string;
      /** 1-based `-I` position, or null to append. */
      readonly position: number | null;
    })
  | (Base & { readonly kind: 'hook.delete'; readonly table: string; readonly from: string; readonly rule: string });

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
