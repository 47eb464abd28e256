// Design: plan is a pure diff of desired kernel objects against what `observe` read. It only
// looks at objects ledgernet owns: links carrying a `ledgernet:` ifalias (or, for a moment after
// `ip link add`, none yet and ledgernet's creation group); the firewall backend (kernel/iptables/)
// diffs the firewall policy against only its own chains and tagged rules. Everything else is
// invisible, so it can never touch Docker's or the operator's objects.
// Why not go by name: a name is no proof. A custom bridge name (ledgernet.bridge) may be taken by
// the operator's link after the network was created (a WireGuard wg0, a br-lan made at boot),
// and anyone can create a link called lnb-…; such a link is foreign, reported as a conflict that
// blocks the network (or endpoint) wanting the name, and left alone: no alias, master, address,
// route_localnet or firewall rule is ever set for it, and it is never deleted.
// Why not recreate a joined endpoint's veth: its peer lived in the container's namespace; a new
// pair would not be in the container, so the endpoint is reported lost instead.
import { CREATE_GROUP, byDev, defaultFirewall, dockerBridgesOf, tbfShape } from '../kernel/index.ts';
import type { Addr, FirewallBackend, FirewallPolicy, KernelSnapshot, Link, Qdisc, Route } from '../kernel/types.ts';
import { bits, formatIp, formatPrefix, parseAddrLen, parsePrefix } from '../events/domain/cidr.ts';
import { isOwnerTagged, parseOwnerAlias, short } from '../events/domain/naming.ts';
import { KIND_ORDER, actionKey, type Action, type Owner } from './actions.ts';
import type { DesiredBridge, DesiredState, DesiredVeth } from './desired.ts';
import { planSubnetClashes } from './subnet-clash.ts';

/** A link ledgernet made: it carries a `ledgernet:` ifalias, or none yet and the creation group. */
export function isOwnedLink(l: Pick<Link, 'alias' | 'group'>): boolean {
  return isOwnerTagged(l.alias) || isUnlabelled(l);
}

/** Created by ledgernet, which stopped before the command that sets the alias (a crash). */
function isUnlabelled(l: Pick<Link, 'alias' | 'group'>): boolean {
  return l.alias === null && l.group === CREATE_GROUP;
}

/**
 * Whose is the link that holds `name`, a name ledgernet wants for an object with ifalias `alias`:
 * `ours` (that alias, or unlabelled: the alias is then set), `orphan` (another `ledgernet:`
 * alias: a leftover of ours, replaced), or `foreign` (anything else: never touched). A link that
 * holds the name as an altname only (the kernel resolves it to that link, and refuses a new link
 * of that name) is never `ours`: a leftover of ours is replaced, anything else is foreign.
 */
function claim(link: Link, name: string, alias: string): 'ours' | 'orphan' | 'foreign' {
  if (link.name !== name) return isOwnedLink(link) ? 'orphan' : 'foreign';
  if (link.alias === alias || isUnlabelled(link)) return 'ours';
  return isOwnerTagged(link.alias) ? 'orphan' : 'foreign';
}

/**
 * `links`, and each altname of theirs that no link has as its name (the kernel's names are one
 * namespace: a name is a link's name or an altname, never both). `links` itself when no link has
 * an altname (nearly always: one pass over the values, no copy).
 */
function withAltnames(links: ReadonlyMap<string, Link>): ReadonlyMap<string, Link> {
  let out: Map<string, Link> | null = null;
  for (const l of links.values()) {
    if (l.altnames === undefined) continue;
    out ??= new Map(links);
    for (const alt of l.altnames) if (!out.has(alt)) out.set(alt, l);
  }
  return out ?? links;
}

/**
 * The sorted actions that bring the kernel from `actual` to `desired`. Pure. The firewall part
 * is planned by `firewall` (the backend) from the policy of the networks that are not blocked.
 */
export function plan(desired: DesiredState, actual: KernelSnapshot, firewall: FirewallBackend = defaultFirewall): Action[] {
  return planInFull(desired, actual, firewall).actions;
}

/** `plan`, and the firewall policy it gave the backend (scoped.ts compares the next pass's with it). */
export function planInFull(desired: DesiredState, actual: KernelSnapshot, firewall: FirewallBackend): { actions: Action[]; policy: FirewallPolicy } {
  const { actions, blocked } = planObjects(desired.bridges, desired.veths, new Map(actual.links.map((l) => [l.name, l])), actual);
  actions.push(...planOrphanLinks(wantedLinkAliases(desired), actual.links, replacedNames(actions)));
  const policy = unblockedPolicy(desired.firewall, blocked, actual);
  actions.push(...firewall.plan(policy, actual));
  return { actions: sortActions(actions), policy };
}

/**
 * The actions for these bridges and veths (links, addresses, route_localnet, shaping, conflicts,
 * lost endpoints), unsorted, and the networks whose bridge name a foreign link holds (`blocked`:
 * nothing of theirs goes into the kernel). `byName`: the links of `actual` by name (at least those
 * the objects are named by, or have as an altname).
 */
export function planObjects(
  bridges: readonly DesiredBridge[],
  veths: readonly DesiredVeth[],
  byName: ReadonlyMap<string, Link>,
  actual: KernelSnapshot,
): { actions: Action[]; blocked: Set<string> } {
  // A link found by an altname holds that name too (claim): a foreign one is a conflict.
  const links = withAltnames(byName);
  const actions: Action[] = [];
  const blocked = new Set<string>();
  const qdiscsOf = byDev(actual.qdiscs);
  const addrsOf = byDev(actual.addrs);
  const routes = actual.routes === undefined ? null : routeDsts(actual.routes);
  for (const b of bridges) {
    const bridge = planBridge(b, links.get(b.name), actual, addrsOf.get(b.name) ?? [], routes);
    if (bridge.some((a) => a.kind === 'link.conflict')) blocked.add(b.networkId);
    actions.push(...bridge);
  }
  // Named with the route conflicts: on the passes that read routes (the loop keeps them in between).
  // (A network whose bridge name a foreign link holds is in conflict already.)
  if (routes !== null) actions.push(...planSubnetClashes(bridges.filter((b) => !blocked.has(b.networkId)), actual, isOwnedLink));
  for (const v of veths) {
    if (blocked.has(v.networkId)) {
      // No veth is created or enslaved to a link that is not ours; a vanished one is still lost.
      if (v.joined && !ownedAs(links.get(v.name), v.name, v.alias)) actions.push(lostAction(v));
      continue;
    }
    const veth = planVeth(v, links);
    actions.push(...veth);
    if (veth.some((a) => a.kind === 'endpoint.lost' || a.kind === 'link.conflict')) continue;
    const exists = ownedAs(links.get(v.name), v.name, v.alias) && !veth.some((a) => a.kind === 'veth.create');
    actions.push(...planQdisc(v, v.name, v.ingressRate, exists, qdiscsOf.get(v.name) ?? []));
    actions.push(...planEgress(v, exists, links, actual, qdiscsOf));
  }
  return { actions, blocked };
}

/** The names of links that actions replace (a leftover under a name we want): no orphan delete for them. */
export function replacedNames(actions: readonly Action[]): Set<string> {
  return new Set(actions.flatMap((a) => ('replaces' in a ? (a.replaces ?? []) : [])));
}

/** The policy the firewall backend plans: without the networks whose bridge name a foreign link holds, with Docker's custom-named bridges `actual` shows. */
export function unblockedPolicy(policy: FirewallPolicy, blocked: ReadonlySet<string>, actual: KernelSnapshot): FirewallPolicy {
  const networks = policy.networks.filter((n) => !blocked.has(n.networkId));
  // Docker's custom-named bridges, as the kernel read shows them: isolated like docker0 and br-*.
  // Not a name a network here has now (Docker's rules of a network removed meanwhile, still in a model).
  const ours = new Set(networks.map((n) => n.bridge));
  const docker = dockerBridgesOf(actual, policy.bridgePrefix).filter((b) => !ours.has(b));
  return { ...policy, networks, ...(docker.length > 0 ? { dockerBridges: docker } : {}) };
}

export function sortActions(actions: Action[]): Action[] {
  const rank = (a: Action) => KIND_ORDER.indexOf(a.kind);
  return actions.sort((a, b) => rank(a) - rank(b) || cmp(actionKey(a), actionKey(b)));
}

function ownedAs(link: Link | undefined, name: string, alias: string): boolean {
  return link !== undefined && claim(link, name, alias) === 'ours';
}

/** A foreign link holds a name that `owner` needs: say so, and how to resolve it. */
function conflictAction(role: 'bridge' | 'veth' | 'peer' | 'ifb', link: Link, owner: Owner, wanted: string): Action {
  const alias = link.alias === null ? 'no ifalias' : `ifalias ${JSON.stringify(link.alias)}`;
  const altname = link.name === wanted ? '' : `, which has ${wanted} as an altname`;
  const held = `${link.kind ?? 'plain'} link ${link.name} (ifindex ${link.index}, ${alias}${altname}) is not ledgernet's and is left alone`;
  const net = short(owner.networkId ?? '');
  const freed = link.name === wanted ? 'that link is renamed or deleted' : `that altname is removed (ip link property del dev ${link.name} altname ${wanted}) or the link deleted`;
  const detail =
    role === 'bridge'
      ? `${held}; network ${net} gets no bridge, addresses or firewall rules until ${freed}, or the network is removed (docker network rm ${net})`
      : `${held}; endpoint ${short(owner.endpointId ?? '')} (network ${net}) cannot be set up until ${freed}, or the endpoint is removed`;
  return { kind: 'link.conflict', name: link.name, role, found: { index: link.index, kind: link.kind, alias: link.alias }, owner, reason: 'conflict', detail };
}

/**
 * The destinations of `routes` as `ip` prints them (glibc's inet_ntop: the canonical text of
 * formatPrefix, but for an IPv6 address written with an IPv4 tail, made canonical here). Text, not
 * parsed: a host has a route per link (IPv6 link-local), and parsing 2,000 took 25 ms a pass.
 */
function routeDsts(routes: readonly Route[]): Map<string, (string | null)[]> {
  const out = new Map<string, (string | null)[]>();
  for (const r of routes) {
    const p = r.family === 6 && r.dst.includes('.') ? parsePrefix(r.dst) : null;
    const dst = p === null ? r.dst : formatPrefix(p);
    const devs = out.get(dst);
    if (devs) devs.push(r.dev);
    else out.set(dst, [r.dev]);
  }
  return out;
}

/** A gateway address of a bridge and the connected route the kernel makes for it. */
interface SubnetRoute {
  readonly cidr: string;
  readonly dst: string;
  readonly src: string;
}

/** The subnet routes of each desired bridge: the desired state is the same object pass after pass. */
const subnetRoutesOf = new WeakMap<DesiredBridge, readonly SubnetRoute[]>();

/** The connected routes of the bridge's gateway addresses; a /32 or /128 address has none. */
function subnetRoutes(b: DesiredBridge): readonly SubnetRoute[] {
  let out = subnetRoutesOf.get(b);
  if (out === undefined) {
    out = b.addrs.flatMap((cidr) => {
      const a = parseAddrLen(cidr);
      return a === null || a.len === bits(a.family) ? [] : [{ cidr, dst: formatPrefix(a.prefix), src: formatIp(a.family, a.value) }];
    });
    subnetRoutesOf.set(b, out);
  }
  return out;
}

/**
 * The connected subnet route of each gateway address the bridge has (`have`), put back when it
 * is missing (deleted by hand: the kernel makes it only when the address is added or the bridge
 * comes up). Only for a bridge that is ours and up: down, or without the address, the kernel has
 * no route either, and the link or address repair brings it back. A route to the subnet through
 * another device only is someone else's (the operator's): left alone, and reported as a conflict
 * (the host and published ports reach the network's containers through that device, not the bridge).
 */
function planRoutes(b: DesiredBridge, have: readonly string[], routes: ReadonlyMap<string, readonly (string | null)[]>, owner: Owner): Action[] {
  const out: Action[] = [];
  for (const r of subnetRoutes(b)) {
    const devs = routes.get(r.dst);
    if (!have.includes(r.cidr) || devs?.includes(b.name)) continue;
    if (devs === undefined) {
      out.push({ kind: 'route.add', dev: b.name, dst: r.dst, src: r.src, owner, reason: 'drifted', detail: 'deleted (the kernel makes it only when the address is added or the bridge comes up)' });
      continue;
    }
    const through = devs.map((d) => d ?? 'no device (blackhole, unreachable or prohibit)').join(', ');
    const del = devs[0] ? `ip route del ${r.dst} dev ${devs[0]}` : `ip route del ${r.dst}`;
    const detail =
      `the route to ${r.dst} goes through ${through}, not ${b.name}: someone else's, left alone; the host and ` +
      `published ports reach network ${short(b.networkId)}'s containers through it until it is removed (${del}), then ledgernet puts its own back`;
    out.push({ kind: 'route.conflict', dev: b.name, dst: r.dst, found: [...devs], owner, reason: 'conflict', detail });
  }
  return out;
}

function planBridge(b: DesiredBridge, link: Link | undefined, actual: KernelSnapshot, addrs: readonly Addr[], routes: ReadonlyMap<string, readonly (string | null)[]> | null): Action[] {
  const owner: Owner = { networkId: b.networkId, endpointId: null };
  const claimed = link ? claim(link, b.name, b.alias) : null;
  if (link && claimed === 'foreign') return [conflictAction('bridge', link, owner, b.name)];
  const live = link && claimed === 'ours' && link.kind === 'bridge' ? link : undefined;
  const out: Action[] = [];
  let have: string[] = [];
  if (!live) {
    const create = { kind: 'bridge.create', name: b.name, alias: b.alias, mtu: b.mtu, owner, ...(b.linkLocal ? {} : { noLinkLocal: true as const }) } as const;
    if (!link) out.push({ ...create, reason: 'missing' });
    else {
      const detail = claimed === 'orphan' ? `held by a leftover with ifalias ${link.alias ?? ''}` : `is a ${link.kind ?? 'plain'} link, not a bridge`;
      out.push({ ...create, reason: 'drifted', detail: `${detail}: replaced`, replaces: [link.name] });
    }
  } else {
    const set = linkDrift(live, { mtu: b.mtu, alias: b.alias, master: null, noLinkLocal: !b.linkLocal });
    if (set) out.push({ kind: 'link.set', name: b.name, owner, ...set });
    // Link-local addresses are the kernel's, except on a bridge that must have none (isolated);
    // with inhibit_ipv4 the IPv4 ones are the operator's.
    have = addrs.filter((a) => (a.scope !== 'link' || !b.linkLocal) && !(b.foreignIpv4 && a.family === 'inet')).map((a) => a.cidr);
  }
  const localnet = live ? (actual.routeLocalnet[b.name] ?? false) : false;
  if (localnet !== b.routeLocalnet) {
    const detail = `route_localnet ${b.routeLocalnet ? 1 : 0} expected, ${localnet ? 1 : 0} found`;
    out.push({ kind: 'bridge.localnet', name: b.name, on: b.routeLocalnet, owner, reason: live ? 'drifted' : 'missing', ...(live ? { detail } : {}) });
  }
  // The host must not take router advertisements its containers send (CVE-2020-13401): a bridge
  // gets accept_ra 0 when made (kernel/run-kernel.ts), as Docker's do; found on, it is put back.
  if (live && actual.acceptRa?.[b.name] === true) {
    out.push({ kind: 'bridge.accept_ra', name: b.name, owner, reason: 'drifted', detail: 'accept_ra 0 expected, found on: the host would take router advertisements from its containers' });
  }
  for (const cidr of b.addrs) {
    if (!have.includes(cidr)) out.push({ kind: 'addr.add', dev: b.name, cidr, owner, reason: 'missing' });
  }
  for (const cidr of have) {
    if (!b.addrs.includes(cidr)) out.push({ kind: 'addr.del', dev: b.name, cidr, owner, reason: 'orphan' });
  }
  if (live?.up && routes !== null) out.push(...planRoutes(b, have, routes, owner));
  return out;
}

function lostAction(v: DesiredVeth): Action {
  const owner: Owner = { networkId: v.networkId, endpointId: v.endpointId };
  return { kind: 'endpoint.lost', name: v.name, owner, reason: 'vanished', detail: 'its container namespace is gone' };
}

function planVeth(v: DesiredVeth, links: ReadonlyMap<string, Link>): Action[] {
  const owner: Owner = { networkId: v.networkId, endpointId: v.endpointId };
  const link = links.get(v.name);
  const peer = links.get(v.peer);
  const claimed = link ? claim(link, v.name, v.alias) : null;
  if (link && claimed === 'foreign') return [conflictAction('veth', link, owner, v.name)];
  if (link && claimed === 'ours') {
    const set = linkDrift(link, { mtu: v.mtu, alias: v.alias, master: v.master });
    const out: Action[] = set ? [{ kind: 'link.set', name: v.name, owner, ...set }] : [];
    // The container end, still here and unlabelled: the crash came between the two commands.
    if (peer && isUnlabelled(peer)) {
      out.push({ kind: 'link.set', name: v.peer, alias: v.peerAlias, owner, reason: 'drifted', detail: `alias ${v.peerAlias} expected, none found` });
    }
    return out;
  }
  // Missing, or only a leftover of ours under its name.
  if (v.joined) return [lostAction(v)];
  if (peer && claim(peer, v.peer, v.peerAlias) === 'foreign') return [conflictAction('peer', peer, owner, v.peer)];
  // Deleting a veth takes its peer along; a leftover under either name goes first.
  const replaces = [link?.name, peer && peer.peer !== v.name ? peer.name : undefined].filter((n): n is string => n !== undefined);
  const { name, peer: peerName, alias, peerAlias, mtu, master, peerMac } = v;
  const create = { kind: 'veth.create', name, peer: peerName, alias, peerAlias, mtu, master, peerMac, owner } as const;
  if (replaces.length === 0) return [{ ...create, reason: 'missing' }];
  return [{ ...create, reason: 'drifted', detail: `held by a leftover of ledgernet's: replaced`, replaces }];
}

/**
 * A tbf at the root of `dev` (`qdiscs`: those of `dev`): on the host-side veth it shapes what the container receives
 * (ingress_rate), on the endpoint's ifb what it sends (egress_rate).
 */
function planQdisc(v: DesiredVeth, dev: string, rate: number | null, exists: boolean, qdiscs: readonly Qdisc[]): Action[] {
  const owner: Owner = { networkId: v.networkId, endpointId: v.endpointId };
  const root = exists ? qdiscs.find((q) => q.root) : undefined;
  const tbf = root?.kind === 'tbf' ? root : undefined;
  if (rate === null) {
    return tbf ? [{ kind: 'qdisc.delete', name: dev, owner, reason: 'orphan', detail: 'no rate wanted' }] : [];
  }
  const drift = tbf ? tbfDrift(tbf, rate, v.mtu) : [`tbf ${rate} bit/s expected, ${root?.kind ?? 'none'} found`];
  if (drift.length === 0) return [];
  return [
    {
      kind: 'qdisc.set',
      name: dev,
      rate,
      mtu: v.mtu,
      owner,
      reason: exists ? 'drifted' : 'missing',
      detail: exists ? drift.join('; ') : `tbf ${rate} bit/s`,
    },
  ];
}

/**
 * How the tbf found differs from the one a `qdisc.set` of `rate` for `mtu` writes (tbfShape); empty
 * when it does not. The rate may be 1% off; the burst and limit by what reading them back rounds
 * away: the kernel keeps the bucket in 64 ns ticks and tc prints it in whole microseconds at the
 * rate, rounded down (so 2 µs of traffic and 2 bytes). A burst or limit not read (null) is not compared.
 */
function tbfDrift(tbf: Qdisc, rate: number, mtu: number): string[] {
  const want = tbfShape(rate, mtu);
  const have = tbf.rate === null ? null : tbf.rate * 8;
  const slack = Math.ceil(rate / 8 / 500_000) + 2;
  const diffs: string[] = [];
  if (have === null || Math.abs(have - rate) > rate * 0.01) diffs.push(`tbf ${rate} bit/s expected, tbf${have === null ? '' : ` ${have} bit/s`} found`);
  if (tbf.burst !== null && Math.abs(tbf.burst - want.burst) > slack) diffs.push(`burst ${want.burst} expected, ${tbf.burst} found`);
  if (tbf.limit !== null && Math.abs(tbf.limit - want.limit) > slack) diffs.push(`limit ${want.limit} expected, ${tbf.limit} found`);
  return diffs;
}

/** egress_rate: the veth's ingress redirected to the endpoint's ifb, and a tbf on the ifb. */
function planEgress(v: DesiredVeth, veth: boolean, links: ReadonlyMap<string, Link>, actual: KernelSnapshot, qdiscsOf: ReadonlyMap<string, readonly Qdisc[]>): Action[] {
  const owner: Owner = { networkId: v.networkId, endpointId: v.endpointId };
  const ingress = veth && (qdiscsOf.get(v.name) ?? []).some((q) => q.kind === 'ingress');
  if (v.ifb === null || v.egressRate === null) {
    return ingress ? [{ kind: 'redirect.delete', name: v.name, owner, reason: 'orphan', detail: 'no egress_rate wanted' }] : [];
  }
  const out: Action[] = [];
  const found = links.get(v.ifb.name);
  const claimed = found ? claim(found, v.ifb.name, v.ifb.alias) : null;
  // Nothing is redirected to a link that is not ours.
  if (found && claimed === 'foreign') return [conflictAction('ifb', found, owner, v.ifb.name)];
  const ifb = claimed === 'ours' ? found : undefined;
  if (!ifb) {
    const create = { kind: 'ifb.create', name: v.ifb.name, alias: v.ifb.alias, owner } as const;
    out.push(found ? { ...create, reason: 'drifted', detail: `held by a leftover of ledgernet's: replaced`, replaces: [found.name] } : { ...create, reason: 'missing' });
  } else {
    const set = linkDrift(ifb, { mtu: ifb.mtu, alias: v.ifb.alias, master: null });
    if (set) out.push({ kind: 'link.set', name: ifb.name, owner, ...set });
  }
  out.push(...planQdisc(v, v.ifb.name, v.egressRate, ifb !== undefined, qdiscsOf.get(v.ifb.name) ?? []));
  const redirected = (actual.ingressRedirects[v.name] ?? []).includes(v.ifb.name);
  if (!ingress || !redirected) {
    const detail = veth ? `redirect to ${v.ifb.name} expected, ${ingress ? 'other filters' : 'no ingress qdisc'} found` : `redirect to ${v.ifb.name}`;
    out.push({ kind: 'redirect.set', name: v.name, to: v.ifb.name, replace: ingress, owner, reason: veth ? 'drifted' : 'missing', detail });
  }
  return out;
}

type LinkSet = { reason: 'drifted'; detail: string; mtu?: number; master?: string; alias?: string; up?: true; noLinkLocal?: true };

function linkDrift(link: Link, want: { mtu: number; alias: string; master: string | null; noLinkLocal?: boolean }): LinkSet | null {
  const diffs: string[] = [];
  const set: LinkSet = { reason: 'drifted', detail: '' };
  if (link.mtu !== want.mtu) {
    set.mtu = want.mtu;
    diffs.push(`mtu ${want.mtu} expected, ${link.mtu} found`);
  }
  if (link.alias !== want.alias) {
    set.alias = want.alias;
    diffs.push(`alias ${want.alias} expected, ${link.alias ?? 'none'} found`);
  }
  if (want.master !== null && link.master !== want.master) {
    set.master = want.master;
    diffs.push(`master ${want.master} expected, ${link.master ?? 'none'} found`);
  }
  if (want.noLinkLocal && link.addrGenMode !== undefined && link.addrGenMode !== 'none') {
    set.noLinkLocal = true;
    diffs.push(`addrgenmode none expected, ${link.addrGenMode} found`);
  }
  if (!link.up) {
    set.up = true;
    diffs.push('up expected, down found');
  }
  if (diffs.length === 0) return null;
  set.detail = diffs.join('; ');
  return set;
}

/** Each link name `desired` wants, with the alias its link must carry. */
function wantedLinkAliases(desired: DesiredState): Map<string, string> {
  return new Map<string, string>([
    ...desired.bridges.map((b): [string, string] => [b.name, b.alias]),
    ...desired.veths.flatMap((v): [string, string][] => [
      [v.name, v.alias],
      [v.peer, v.peerAlias],
      ...(v.ifb ? [[v.ifb.name, v.ifb.alias] as [string, string]] : []),
    ]),
  ]);
}

/**
 * Deletes the links of `links` that are ours and not wanted where they are (`wanted`: the alias
 * the desired state wants under a name); a foreign link is never an orphan, whatever its name.
 */
export function planOrphanLinks(wanted: { get(name: string): string | undefined }, links: readonly Link[], replaced: ReadonlySet<string>): Action[] {
  const isOrphan = (l: Link) => {
    const want = wanted.get(l.name);
    // A cluster network's VXLAN device is wanted or not by the cluster's own planner (cluster.ts).
    if (parseOwnerAlias(l.alias)?.kind === 'vxlan') return false;
    return isOwnedLink(l) && !(want !== undefined && claim(l, l.name, want) === 'ours') && !replaced.has(l.name);
  };
  const orphans = links.filter(isOrphan);
  const doomed = new Set(orphans.map((l) => l.name));
  const out: Action[] = [];
  for (const l of orphans) {
    // Deleting one end of a veth removes the other; only delete the pair once.
    if (l.peer && ((doomed.has(l.peer) && l.peer < l.name) || replaced.has(l.peer))) continue;
    out.push({ kind: 'link.delete', name: l.name, owner: ownerFromAlias(l.alias), reason: 'orphan' });
  }
  return out;
}

function ownerFromAlias(alias: string | null): Owner {
  const o = parseOwnerAlias(alias);
  if (!o) return { networkId: null, endpointId: null };
  return o.kind === 'network' ? { networkId: o.id, endpointId: null } : { networkId: null, endpointId: o.id };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
