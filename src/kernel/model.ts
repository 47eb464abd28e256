// Design: the kernel as ledgernet last saw it, kept current by its own applies. A full `observe`
// reads the whole host (every link and address, all of iptables-save including Docker's rules,
// ip6tables, tc): its cost grows with everything on the host. Docker's calls instead plan against
// this model and write only the delta; the model is replaced by a full observe on the repair
// timer, at start, after a drift notice (`ip monitor`) that is not the echo of our own apply, and
// after any failed apply (the kernel then holds something the model cannot predict).
// Why links, addresses and shaping here and the firewall in its backend: a backend owns its own
// syntax (iptables chains today, nftables next) and knows how its changes land.
import type { LinkChange, ShapingChange } from './changes.ts';
import type { Addr, KernelSnapshot, Link, Qdisc } from './types.ts';

/** What a link looks like right after ledgernet created it (index and MAC are unknown: 0, null). */
function created(name: string, kind: string, fields: Partial<Link>): Link {
  return { name, index: 0, kind, master: null, mtu: 1500, up: true, alias: null, group: 'default', mac: null, peer: null, peerInOtherNetns: false, ...fields };
}

function withoutLinks(s: KernelSnapshot, names: ReadonlySet<string>): KernelSnapshot {
  if (names.size === 0) return s;
  const gone = new Set(names);
  // Deleting one end of a veth deletes the other.
  for (const l of s.links) if (gone.has(l.name) && l.peer !== null) gone.add(l.peer);
  // Keyed by every bridge (Docker's too): copied only when a deleted link is among them.
  const without = <T>(r: Readonly<Record<string, T>>) => ([...gone].some((k) => Object.hasOwn(r, k)) ? Object.fromEntries(Object.entries(r).filter(([k]) => !gone.has(k))) : r);
  const routeLocalnet = without(s.routeLocalnet);
  const ingressRedirects = without(s.ingressRedirects);
  return {
    ...s,
    // A link enslaved to a deleted bridge is released by the kernel.
    links: s.links.filter((l) => !gone.has(l.name)).map((l) => (l.master !== null && gone.has(l.master) ? { ...l, master: null } : l)),
    addrs: s.addrs.filter((a) => !gone.has(a.dev)),
    qdiscs: s.qdiscs.filter((q) => !gone.has(q.dev)),
    routeLocalnet,
    ingressRedirects,
  };
}

function replaceLink(s: KernelSnapshot, name: string, f: (l: Link) => Link): KernelSnapshot {
  return { ...s, links: s.links.map((l) => (l.name === name ? f(l) : l)) };
}

function linkChange(s: KernelSnapshot, c: LinkChange): KernelSnapshot {
  const base = 'replaces' in c ? withoutLinks(s, new Set(c.replaces ?? [])) : s;
  switch (c.kind) {
    case 'bridge.create':
      return {
        ...base,
        links: [...base.links, created(c.name, 'bridge', { mtu: c.mtu, alias: c.alias, ...(c.noLinkLocal ? { addrGenMode: 'none' } : {}) })],
        routeLocalnet: { ...base.routeLocalnet, [c.name]: false },
      };
    case 'veth.create': {
      const host = created(c.name, 'veth', { mtu: c.mtu, alias: c.alias, master: c.master, peer: c.peer });
      const peer = created(c.peer, 'veth', { mtu: c.mtu, alias: c.peerAlias, up: false, peer: c.name, mac: c.peerMac });
      return { ...base, links: [...base.links, host, peer] };
    }
    case 'ifb.create':
      return { ...base, links: [...base.links, created(c.name, 'ifb', { alias: c.alias, mtu: 1500 })] };
    case 'link.set':
      return replaceLink(base, c.name, (l) => ({
        ...l,
        ...(c.mtu !== undefined ? { mtu: c.mtu } : {}),
        ...(c.alias !== undefined ? { alias: c.alias, group: 'default' } : {}),
        ...(c.master !== undefined ? { master: c.master } : {}),
        ...(c.up ? { up: true } : {}),
        ...(c.noLinkLocal ? { addrGenMode: 'none' } : {}),
      }));
    case 'addr.add': {
      const addr: Addr = { dev: c.dev, family: c.cidr.includes(':') ? 'inet6' : 'inet', cidr: c.cidr, scope: 'global' };
      return { ...base, addrs: [...base.addrs, addr] };
    }
    case 'addr.del':
      return { ...base, addrs: base.addrs.filter((a) => !(a.dev === c.dev && a.cidr === c.cidr)) };
    case 'link.delete':
      return withoutLinks(base, new Set([c.name]));
  }
}

function shapingChange(s: KernelSnapshot, c: ShapingChange): KernelSnapshot {
  const others = (pred: (q: Qdisc) => boolean) => s.qdiscs.filter((q) => !(q.dev === c.name && pred(q)));
  const { [c.name]: _dropped, ...redirectsWithout } = s.ingressRedirects;
  switch (c.kind) {
    case 'qdisc.set': {
      const tbf: Qdisc = { dev: c.name, kind: 'tbf', handle: '8001:', root: true, parent: null, rate: c.rate / 8 };
      return { ...s, qdiscs: [...others((q) => q.root), tbf] };
    }
    case 'qdisc.delete':
      return { ...s, qdiscs: others((q) => q.root) };
    case 'redirect.set': {
      const ingress: Qdisc = { dev: c.name, kind: 'ingress', handle: 'ffff:', root: false, parent: 'ffff:fff1', rate: null };
      return { ...s, qdiscs: [...others((q) => q.kind === 'ingress'), ingress], ingressRedirects: { ...redirectsWithout, [c.name]: [c.to] } };
    }
    case 'redirect.delete':
      return { ...s, qdiscs: others((q) => q.kind === 'ingress'), ingressRedirects: redirectsWithout };
  }
}

/** The kernel after `changes` were applied to `s` without failing. Pure. */
export function afterLinkChanges(s: KernelSnapshot, changes: readonly LinkChange[]): KernelSnapshot {
  return changes.reduce(linkChange, s);
}

/** The kernel after shaping `changes` were applied to `s` without failing. Pure. */
export function afterShapingChanges(s: KernelSnapshot, changes: readonly ShapingChange[]): KernelSnapshot {
  return changes.reduce(shapingChange, s);
}

/** The kernel after route_localnet was set on bridges. Pure. */
export function afterRouteLocalnet(s: KernelSnapshot, values: Readonly<Record<string, boolean>>): KernelSnapshot {
  return { ...s, routeLocalnet: { ...s.routeLocalnet, ...values } };
}
