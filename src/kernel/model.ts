// Design: the kernel as ledgernet last saw it, kept current by its own applies. A full `observe`
// reads the whole host (every link and address, all of iptables-save including Docker's rules,
// ip6tables, tc): its cost grows with everything on the host. Docker's calls instead plan against
// this model and write only the delta; the model is replaced by a full observe on the repair
// timer, at start, after a drift notice (`ip monitor`) that is not the echo of our own apply, and
// after any failed apply (the kernel then holds something the model cannot predict).
// Why links, addresses and shaping here and the firewall in its backend: a backend owns its own
// syntax (iptables chains today, nftables next) and knows how its changes land.
import type { LinkChange, ShapingChange } from './changes.ts';
import { tbfShape } from './tc/render.ts';
import type { Addr, KernelSnapshot, Link, Qdisc } from './types.ts';

/** What a link looks like right after ledgernet created it (index and MAC are unknown: 0, null). */
function created(name: string, kind: string, fields: Partial<Link>): Link {
  return { name, index: 0, kind, master: null, mtu: 1500, up: true, alias: null, group: 'default', mac: null, peer: null, peerInOtherNetns: false, ...fields };
}

/**
 * The link-level parts of a snapshot, mutable, while one batch of changes is folded in: one copy
 * per batch instead of one per change (at 2,000 endpoints the per-change copies took 85 ms).
 */
class LinkDraft {
  readonly links: Map<string, Link>;
  readonly addrs = new Map<string, Addr[]>();
  readonly routeLocalnet: Record<string, boolean>;
  readonly acceptRa: Record<string, boolean> | undefined;
  readonly ingressRedirects: Record<string, readonly string[]>;
  private qdiscs: Map<string, Qdisc[]> | null = null;
  /** master → the links enslaved to it; made at the first delete. */
  private slaves: Map<string, Set<string>> | null = null;

  private readonly s: KernelSnapshot;

  constructor(s: KernelSnapshot) {
    this.s = s;
    this.links = new Map(s.links.map((l) => [l.name, l]));
    for (const a of s.addrs) this.addrsOf(a.dev).push(a);
    this.routeLocalnet = { ...s.routeLocalnet };
    this.acceptRa = s.acceptRa === undefined ? undefined : { ...s.acceptRa };
    this.ingressRedirects = { ...s.ingressRedirects };
  }

  addrsOf(dev: string): Addr[] {
    let list = this.addrs.get(dev);
    if (!list) this.addrs.set(dev, (list = []));
    return list;
  }

  /** `l` in place of the link of its name; `created`: a new link, listed last (as `ip` lists a new ifindex). */
  put(l: Link, isNew = false): void {
    if (isNew) this.links.delete(l.name);
    this.links.set(l.name, l);
    if (l.master !== null && this.slaves !== null) addTo(this.slaves, l.master, l.name);
  }

  delete(names: ReadonlySet<string>): void {
    if (names.size === 0) return;
    const gone = new Set(names);
    // Deleting one end of a veth deletes the other.
    for (const n of names) {
      const peer = this.links.get(n)?.peer;
      if (peer) gone.add(peer);
    }
    this.slaves ??= this.indexSlaves();
    this.qdiscs ??= byDev(this.s.qdiscs);
    for (const n of gone) {
      this.links.delete(n);
      this.addrs.delete(n);
      this.qdiscs.delete(n);
      delete this.routeLocalnet[n];
      if (this.acceptRa) delete this.acceptRa[n];
      delete this.ingressRedirects[n];
    }
    // A link enslaved to a deleted bridge is released by the kernel.
    for (const n of gone) {
      for (const name of this.slaves.get(n) ?? []) {
        const l = this.links.get(name);
        if (l?.master === n) this.links.set(name, { ...l, master: null });
      }
      this.slaves.delete(n);
    }
  }

  private indexSlaves(): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>();
    for (const l of this.links.values()) if (l.master !== null) addTo(out, l.master, l.name);
    return out;
  }

  done(): KernelSnapshot {
    return {
      ...this.s,
      links: [...this.links.values()],
      addrs: [...this.addrs.values()].flat(),
      qdiscs: this.qdiscs === null ? this.s.qdiscs : [...this.qdiscs.values()].flat(),
      routeLocalnet: this.routeLocalnet,
      ...(this.acceptRa === undefined ? {} : { acceptRa: this.acceptRa }),
      ingressRedirects: this.ingressRedirects,
    };
  }
}

function addTo(index: Map<string, Set<string>>, key: string, name: string): void {
  const set = index.get(key);
  if (set) set.add(name);
  else index.set(key, new Set([name]));
}

/** Items (addresses, qdiscs) by their device, in order. */
export function byDev<T extends { readonly dev: string }>(items: readonly T[]): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const list = out.get(item.dev);
    if (list) list.push(item);
    else out.set(item.dev, [item]);
  }
  return out;
}

function linkChange(d: LinkDraft, c: LinkChange): void {
  if ('replaces' in c) d.delete(new Set(c.replaces ?? []));
  switch (c.kind) {
    case 'bridge.create':
      d.put(created(c.name, 'bridge', { mtu: c.mtu, alias: c.alias, ...(c.noLinkLocal ? { addrGenMode: 'none' } : {}) }), true);
      d.routeLocalnet[c.name] = false;
      // Made with accept_ra 0 (run-kernel.ts), when the read knows accept_ra at all.
      if (d.acceptRa) d.acceptRa[c.name] = false;
      return;
    case 'veth.create':
      d.put(created(c.name, 'veth', { mtu: c.mtu, alias: c.alias, master: c.master, peer: c.peer }), true);
      d.put(created(c.peer, 'veth', { mtu: c.mtu, alias: c.peerAlias, up: false, peer: c.name, mac: c.peerMac }), true);
      return;
    case 'ifb.create':
      d.put(created(c.name, 'ifb', { alias: c.alias, mtu: 1500 }), true);
      return;
    case 'link.set': {
      const l = d.links.get(c.name);
      if (!l) return;
      d.put({
        ...l,
        ...(c.mtu !== undefined ? { mtu: c.mtu } : {}),
        ...(c.alias !== undefined ? { alias: c.alias, group: 'default' } : {}),
        ...(c.master !== undefined ? { master: c.master } : {}),
        ...(c.up ? { up: true } : {}),
        ...(c.noLinkLocal ? { addrGenMode: 'none' } : {}),
      });
      return;
    }
    case 'addr.add':
      d.addrsOf(c.dev).push({ dev: c.dev, family: c.cidr.includes(':') ? 'inet6' : 'inet', cidr: c.cidr, scope: 'global' });
      return;
    case 'addr.del': {
      const list = d.addrs.get(c.dev);
      if (list) d.addrs.set(c.dev, list.filter((a) => a.cidr !== c.cidr));
      return;
    }
    case 'link.delete':
      d.delete(new Set([c.name]));
      return;
    // Routes are not in the model (withoutRoutes).
    case 'route.add':
      return;
  }
}

function shapingChange(qdiscs: Map<string, Qdisc[]>, redirects: Record<string, readonly string[]>, c: ShapingChange): void {
  const others = (pred: (q: Qdisc) => boolean) => (qdiscs.get(c.name) ?? []).filter((q) => !pred(q));
  switch (c.kind) {
    case 'qdisc.set':
      qdiscs.set(c.name, [...others((q) => q.root), { dev: c.name, kind: 'tbf', handle: '8001:', root: true, parent: null, rate: c.rate / 8, ...tbfShape(c.rate, c.mtu) }]);
      return;
    case 'qdisc.delete':
      qdiscs.set(c.name, others((q) => q.root));
      return;
    case 'redirect.set':
      qdiscs.set(c.name, [...others((q) => q.kind === 'ingress'), { dev: c.name, kind: 'ingress', handle: 'ffff:', root: false, parent: 'ffff:fff1', rate: null, burst: null, limit: null }]);
      redirects[c.name] = [c.to];
      return;
    case 'redirect.delete':
      qdiscs.set(c.name, others((q) => q.kind === 'ingress'));
      delete redirects[c.name];
      return;
  }
}

/**
 * `s` without its routes: the model Docker's calls plan against does not follow routes (an
 * address added to an up bridge makes one), so it plans none; the full observe reads them. Nor
 * does it follow forwarding or bridge filtering (a sysctl changes them, with no notice): they go too. Pure.
 */
export function withoutRoutes(s: KernelSnapshot): KernelSnapshot {
  if (s.routes === undefined && s.forwardingOff === undefined && s.ipv6Forwarding === undefined && s.bridgeNf === undefined) return s;
  const { routes: _routes, forwardingOff: _forwardingOff, ipv6Forwarding: _ipv6Forwarding, bridgeNf: _bridgeNf, ...rest } = s;
  return rest;
}

/** The kernel after `changes` were applied to `s` without failing. Pure. */
export function afterLinkChanges(s: KernelSnapshot, changes: readonly LinkChange[]): KernelSnapshot {
  if (changes.length === 0) return s;
  const d = new LinkDraft(s);
  for (const c of changes) linkChange(d, c);
  return d.done();
}

/** The kernel after shaping `changes` were applied to `s` without failing. Pure. */
export function afterShapingChanges(s: KernelSnapshot, changes: readonly ShapingChange[]): KernelSnapshot {
  if (changes.length === 0) return s;
  const qdiscs = byDev(s.qdiscs);
  const ingressRedirects = { ...s.ingressRedirects };
  for (const c of changes) shapingChange(qdiscs, ingressRedirects, c);
  return { ...s, qdiscs: [...qdiscs.values()].flat(), ingressRedirects };
}

/** The kernel after accept_ra was set to 0 on bridges. Pure. */
export function afterAcceptRaOff(s: KernelSnapshot, bridges: readonly string[]): KernelSnapshot {
  return { ...s, acceptRa: { ...s.acceptRa, ...Object.fromEntries(bridges.map((b) => [b, false])) } };
}

/** The kernel after route_localnet was set on bridges. Pure. */
export function afterRouteLocalnet(s: KernelSnapshot, values: Readonly<Record<string, boolean>>): KernelSnapshot {
  return { ...s, routeLocalnet: { ...s.routeLocalnet, ...values } };
}
