// What the iptables renderers share: the desired chain's shape, the owner-tag comment, and the
// interface patterns of ledgernet's bridges.
import type { FirewallNetworkPolicy } from '../types.ts';

/** `filter6`, `nat6` and `mangle6` are ip6tables' filter, nat and mangle tables. */
export type Table = 'filter' | 'nat' | 'filter6' | 'nat6' | 'mangle' | 'mangle6';

export interface DesiredHook {
  readonly from: string;
  readonly rule: string;
  /** `early`: right after `-j DOCKER-USER` (or first); `append`: anywhere in the chain. */
  readonly placement: 'early' | 'append';
}

export interface DesiredChain {
  readonly table: Table;
  readonly name: string;
  /** Rules as `iptables-save` prints them after `-A <chain> `. */
  readonly rules: readonly string[];
  /** The jumps into this chain from built-in chains. */
  readonly hooks: readonly DesiredHook[];
  /** The network whose chain this is (LEDGERNET-EG-…, -LAN-…, -ING-…), for plans; absent: shared. */
  readonly networkId?: string;
}

/** `-m comment` with the policy's owner tag (`ledgernet:` + who the rule is for). */
export const tag = (t: string, owner: string) => `-m comment --comment "${t}${owner}"`;

export const owned = (t: string, n: FirewallNetworkPolicy) => (role: string) => tag(t, `network:${n.networkId}:${role}`);

/**
 * Interface patterns that cover every ledgernet bridge: the prefix wildcard (`lnb-+`), plus each
 * custom bridge name (`ledgernet.bridge`) that the wildcard does not match, sorted.
 */
export function bridgePatterns(prefix: string, nets: readonly FirewallNetworkPolicy[]): string[] {
  const custom = nets.map((n) => n.bridge).filter((b) => !b.startsWith(prefix));
  return [`${prefix}+`, ...[...new Set(custom)].sort()];
}

// Why a memo: a Docker pass that creates or removes one network plans the firewall of all of them
// (one policy), but a network's rules are a pure function of its policy object, and the reconciler
// keeps that object while the network does not change (reconciler/scope.ts). So each network's
// rule text is made once: a create at 200 networks assembles the strings it made before, and the
// diff compares them with the model's (which holds the same strings) by reference, instead of
// building and comparing every rule anew (8.2 ms of planning per pass at 200 networks, 0.3 ms now;
// tmp/fwplan.ts). A new policy object (a changed network, a full plan) is rendered again.
const memos = new WeakMap<FirewallNetworkPolicy, Map<string, unknown>>();

/** `make()` once per network policy object and `key` (which must name everything else it reads, e.g. the owner tag). */
export function perNetwork<T>(n: FirewallNetworkPolicy, key: string, make: () => T): T {
  let m = memos.get(n);
  if (m === undefined) memos.set(n, (m = new Map()));
  if (m.has(key)) return m.get(key) as T;
  const v = make();
  m.set(key, v);
  return v;
}
