// Which of a pass's applied actions repaired drift: the one decision behind the metric
// ledgernet_drift_repaired_total and the pass's warn line (loop.ts).
// Design: drift is the kernel differing from what ledgernet itself last left there, not from
// what it wants now. A Docker call, a docker-sync or a Docker bridge coming and going changes
// what ledgernet wants of shared objects (LEDGERNET-FORWARD, a network's POSTROUTING chain,
// route_localnet, …); the pass that follows rewrites them, and the planner calls that `drifted`
// (the kernel differs from the desired state), which is not someone else's doing. So the loop
// keeps the kernel as its last pass left it (`before`: the model of that pass, kept even when
// a drift notice drops the model) and an action repairs drift when the object it is about was
// there then and the kernel read now (`found`) holds it otherwise: changed or removed since,
// by someone else, whatever the trigger. An object that was not there (new) is not drift; an
// object the snapshots do not describe (routes, IPv6 forwarding: not in the model) is judged as
// before (`legacy`), as is the first pass after start (nothing left yet: a start's repairs of the
// replayed state against the kernel are repairs).
import { HOOK_BEHIND_DOCKER, isProxyChange, isReserveChange } from '../kernel/index.ts';
import { canon, elementKeys } from '../kernel/nftables/canon.ts';
import type { IptablesTable, KernelSnapshot, Link } from '../kernel/types.ts';
import { actionKey, type Action } from './actions.ts';

/** The kernel as the last pass left it, and the objects whose actions failed in it (not known). */
export interface LeftBehind {
  readonly kernel: KernelSnapshot;
  readonly unsure: ReadonlySet<string>;
}

/** A snapshot's links by name and addresses (`dev cidr`), made once per snapshot: a pass may judge thousands of actions. */
const indexes = new WeakMap<KernelSnapshot, { readonly links: ReadonlyMap<string, Link>; readonly addrs: ReadonlySet<string> }>();

function indexOf(s: KernelSnapshot): { readonly links: ReadonlyMap<string, Link>; readonly addrs: ReadonlySet<string> } {
  let out = indexes.get(s);
  if (out === undefined) {
    out = { links: new Map(s.links.map((l) => [l.name, l])), addrs: new Set(s.addrs.map((x) => `${x.dev} ${x.cidr}`)) };
    indexes.set(s, out);
  }
  return out;
}

/**
 * What `s` holds of the object `a` is about: a fingerprint of the parts the planner compares;
 * null when it is not there; undefined when `s` does not say (not read, or not in the model).
 */
function objectIn(s: KernelSnapshot, a: Action): string | null | undefined {
  switch (a.kind) {
    case 'bridge.create':
    case 'veth.create':
    case 'ifb.create':
    case 'link.set':
    case 'link.delete': {
      const l = indexOf(s).links.get(a.name);
      return l === undefined ? null : canon({ kind: l.kind, mtu: l.mtu, alias: l.alias, master: l.master, up: l.up, addrGenMode: l.addrGenMode ?? null });
    }
    case 'addr.add':
    case 'addr.del':
      return indexOf(s).addrs.has(`${a.dev} ${a.cidr}`) ? 'present' : null;
    case 'route.add':
      return s.routes === undefined ? undefined : s.routes.some((r) => r.dev === a.dev && r.dst === a.dst) ? 'present' : null;
    case 'bridge.localnet':
      return indexOf(s).links.has(a.name) ? String(s.routeLocalnet[a.name] ?? false) : null;
    case 'bridge.accept_ra':
      if (!indexOf(s).links.has(a.name)) return null;
      return s.acceptRa === undefined || !Object.hasOwn(s.acceptRa, a.name) ? undefined : String(s.acceptRa[a.name]);
    case 'sysctl.ipv6_forwarding':
      return s.ipv6Forwarding === undefined ? undefined : canon(s.ipv6Forwarding);
    case 'qdisc.set':
    case 'qdisc.delete': {
      // The burst is read back a little under what was written: the kind and rate say enough.
      const q = s.qdiscs.find((x) => x.dev === a.name && x.root);
      return q === undefined ? null : canon({ kind: q.kind, rate: q.rate });
    }
    case 'redirect.set':
    case 'redirect.delete': {
      const ingress = s.qdiscs.some((x) => x.dev === a.name && x.kind === 'ingress');
      return ingress ? canon(s.ingressRedirects[a.name] ?? []) : null;
    }
    case 'chain.write':
    case 'chain.delete': {
      const t = iptablesTable(s, a.table);
      if (t === undefined) return undefined;
      const c = t?.chains[a.chain];
      return c === undefined ? null : c.rules.join('\n');
    }
    case 'hook.add':
    case 'hook.delete': {
      const t = iptablesTable(s, a.table);
      if (t === undefined) return undefined;
      const copies = (t?.chains[a.from]?.rules ?? []).filter((r) => r === a.rule).length;
      return copies === 0 ? null : String(copies);
    }
    case 'nft.table.delete':
      return s.nftables === undefined ? undefined : s.nftables === null ? null : canon(s.nftables);
    case 'nft.chain.write':
    case 'nft.chain.delete': {
      if (s.nftables === undefined) return undefined;
      const c = s.nftables?.chains[a.chain];
      return c === undefined ? null : canon(c);
    }
    case 'nft.set.write':
    case 'nft.set.delete': {
      if (s.nftables === undefined) return undefined;
      const set = s.nftables?.sets[a.set];
      if (set === undefined) return null;
      const { elements, ...spec } = set;
      return `${canon(spec)} ${[...elementKeys(elements)].sort().join(',')}`;
    }
    case 'nft.element.add':
    case 'nft.element.delete': {
      if (s.nftables === undefined) return undefined;
      const set = s.nftables?.sets[a.set];
      return set !== undefined && elementKeys(set.elements).has(canon(a.element)) ? 'present' : null;
    }
    default:
      // The userland proxy's listeners and the port reservations are this process's own sockets;
      // conflicts and lost endpoints are not repairs.
      return undefined;
  }
}

/** A table of `s` by the key a firewall change names; undefined: not read; null: cannot be read. */
function iptablesTable(s: KernelSnapshot, table: string): IptablesTable | null | undefined {
  switch (table) {
    case 'filter':
    case 'nat':
    case 'filter6':
    case 'nat6':
    case 'mangle':
    case 'mangle6':
      return s[table];
    default:
      return undefined;
  }
}

/**
 * The applied actions that repaired drift. Never Docker's own changes: a hook moved back because
 * Docker inserted its rules above it, objects of a container (`vanished`) or a network (`orphan`)
 * Docker removed. With `seen` (the kernel the last pass left, and the one this pass planned
 * against): an object that was there when ledgernet last left the kernel and is found otherwise
 * now (objectIn), whatever the trigger; not what the desired state changed (the kernel was as
 * ledgernet left it), not a new object, not a retry of an action that failed, not the daemon's own
 * sockets. Without it, or for an object the snapshots do not describe, as judged before there was
 * one: `drifted`, or `missing` on a pass nobody asked for (timer, startup, kernel notice).
 */
export function driftRepaired(
  r: { readonly trigger: string; readonly applied: readonly Action[] },
  seen?: { readonly before: LeftBehind | null; readonly found: KernelSnapshot },
): Action[] {
  const unasked = r.trigger.split(',').every((t) => t === 'timer' || t === 'startup' || t === 'kernel');
  const key = (a: { table: string; from: string; rule: string }) => `${a.table} ${a.from} ${a.rule}`;
  const moved = new Set(r.applied.flatMap((a) => (a.kind === 'hook.delete' && a.detail === HOOK_BEHIND_DOCKER ? [key(a)] : [])));
  const before = seen?.before ?? null;
  return r.applied.filter((a) => {
    if ((a.kind === 'hook.delete' || a.kind === 'hook.add') && moved.has(key(a))) return false;
    if (a.reason !== 'drifted' && a.reason !== 'missing') return false;
    if (seen !== undefined && before !== null) {
      if (isProxyChange(a) || isReserveChange(a) || before.unsure.has(actionKey(a))) return false;
      const was = objectIn(before.kernel, a);
      const is = objectIn(seen.found, a);
      if (was !== undefined && is !== undefined) return was !== null && was !== is;
    }
    return a.reason === 'drifted' || unasked;
  });
}
