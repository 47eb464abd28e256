// The kernel side of cluster networks, desired and planned: per network a VXLAN device enslaved
// to its bridge, the FDB entries that send each remote MAC to its host's VTEP (and the flood list
// to every member's VTEP), and permanent neighbour entries on the bridge for remote addresses (so
// the bridge answers ARP locally: nothing ARPs across the tunnel, the gateway included). Pure.
import { canonicalIp } from '../events/domain/cidr.ts';
import { VXLAN_OVERHEAD } from '../events/domain/cluster.ts';
import { clusterOf } from '../events/domain/options.ts';
import { ownerAlias, parseOwnerAlias, vxlanName } from '../events/domain/naming.ts';
import type { ClusterPeers } from '../events/domain/peers.ts';
import { lookup, type NetworkState, type State } from '../events/domain/types.ts';
import { applyVxlan, observeVxlan, observeVxlanLinks } from '../kernel/index.ts';
import type { Link } from '../kernel/types.ts';
import { FLOOD_MAC, type Neigh, type VxlanFdb } from '../kernel/parse-vxlan.ts';
import { VXLAN_PORT, type VxlanChange } from '../kernel/iproute/vxlan.ts';


export interface DesiredVxlan {
  readonly networkId: string;
  readonly cluster: string;
  readonly name: string;
  readonly alias: string;
  readonly vni: number;
  readonly local: string;
  readonly mtu: number;
  readonly bridge: string;
  /** Sorted by mac, then dst (null, the bridge's entry, first). */
  readonly fdb: readonly { readonly mac: string; readonly dst: string | null }[];
  /** On the bridge; sorted by address. */
  readonly neighs: readonly { readonly dst: string; readonly lladdr: string }[];
}

/** This host's side of the cluster: its VTEP and the underlay's MTU. */
interface Underlay {
  readonly vtep: string;
  readonly mtu: number;
}

/** This host's networks that are cluster networks on a pool of the same cluster, with their VNI. */
function clusterNetworks(state: State): { net: NetworkState; cluster: string; vni: number }[] {
  return Object.values(state.networks).flatMap((net) => {
    const cluster = clusterOf(net.options);
    const pool = net.ipv4Data[0] ? lookup(state.pools, `ledgernet/${net.ipv4Data[0].pool}`) : undefined;
    return cluster !== null && pool?.cluster?.name === cluster ? [{ net, cluster, vni: pool.cluster.vni }] : [];
  });
}

/** The VXLAN objects the state asks for: one per cluster network on a cluster pool. */
export function desiredVxlans(state: State, peers: Readonly<Record<string, ClusterPeers>>, underlay: Underlay): DesiredVxlan[] {
  const out: DesiredVxlan[] = [];
  for (const { net, cluster, vni } of clusterNetworks(state)) {
    const p = peers[cluster] ?? { members: {}, endpoints: {} };
    const eps = Object.values(p.endpoints);
    const fdb = [
      ...Object.values(p.members).map((m) => ({ mac: FLOOD_MAC, dst: m.vtep })),
      ...eps.flatMap((e) => [{ mac: e.mac, dst: null }, { mac: e.mac, dst: e.vtep }]),
    ].sort((a, b) => cmp(a.mac, b.mac) || cmp(a.dst ?? '', b.dst ?? ''));
    const neighs = eps.map((e) => ({ dst: e.address, lladdr: e.mac })).sort((a, b) => cmp(a.dst, b.dst));
    const name = vxlanName(net.networkId);
    // The network's MTU (underlay − 50 unless a smaller one was given); never above what the underlay carries.
    const mtu = Math.min(net.mtu, underlay.mtu - VXLAN_OVERHEAD);
    out.push({ networkId: net.networkId, cluster, name, alias: ownerAlias('vxlan', net.networkId), vni, local: underlay.vtep, mtu, bridge: net.bridge, fdb, neighs });
  }
  return out.sort((a, b) => cmp(a.name, b.name));
}

/**
 * The VTEPs of the other members of this host's cluster networks, sorted: their VXLAN packets
 * (UDP 4789) are accepted in INPUT. Empty once the last cluster network is gone. IPv4 only (an
 * IPv6 underlay gets no INPUT rule yet).
 */
export function peerVteps(state: State): string[] {
  const members = clusterNetworks(state).flatMap(({ cluster }) => Object.values(state.peers?.[cluster]?.members ?? {}));
  const vteps = members.map((m) => m.vtep).filter((v) => !v.includes(':'));
  return [...new Set(vteps)].sort(cmp);
}

/** What the kernel holds of cluster networks: links, the VXLAN devices' FDB, the bridges' neighbours. */
export interface VxlanActual {
  readonly links: readonly Link[];
  readonly fdb: readonly VxlanFdb[];
  readonly neighs: readonly Neigh[];
}

/**
 * The changes that bring the VXLAN objects to `desired`: a missing device is created (its
 * entries follow in the same pass), a drifted one is set right; one made with another tunnel
 * (VNI, local address: this host's VTEP changed; port) is deleted and created again, its FDB
 * entries all added again in the same pass (they went with it). FDB and neighbour entries are
 * added and removed one by one. A device whose name a link that is not ours holds is left alone.
 */
export function planVxlans(desired: readonly DesiredVxlan[], actual: VxlanActual): VxlanChange[] {
  const out: VxlanChange[] = [];
  for (const d of desired) {
    const owner = { networkId: d.networkId, endpointId: null };
    const link = actual.links.find((l) => l.name === d.name);
    if (link && link.alias !== d.alias) continue;
    const tunnel = link ? tunnelDrift(d, link) : null;
    const create = { kind: 'vxlan.create', name: d.name, alias: d.alias, vni: d.vni, local: d.local, mtu: d.mtu, master: d.bridge, owner } as const;
    if (!link) out.push({ ...create, reason: 'missing' });
    else if (tunnel !== null) {
      // A device's VNI and local address cannot be changed in place: deleted, then made again
      // (applyVxlan deletes it before it creates it), on its bridge, with all of its entries.
      out.push({ kind: 'vxlan.delete', name: d.name, owner, reason: 'drifted', detail: `${tunnel}: deleted, then created again` });
      out.push({ ...create, reason: 'drifted', detail: `${tunnel}: created again, with its FDB entries` });
    } else out.push(...deviceDrift(d, link));
    const have = link && tunnel === null ? actual.fdb.filter((f) => f.dev === d.name) : [];
    const key = (f: { mac: string; dst: string | null }) => `${f.mac} ${f.dst ?? 'bridge'}`;
    const haveKeys = new Set(have.map(key));
    const wantKeys = new Set(d.fdb.map(key));
    for (const f of d.fdb) if (!haveKeys.has(key(f))) out.push({ kind: 'fdb.add', dev: d.name, mac: f.mac, dst: f.dst, owner, reason: 'missing' });
    for (const f of have) if (!wantKeys.has(key(f))) out.push({ kind: 'fdb.del', dev: d.name, mac: f.mac, dst: f.dst, owner, reason: 'orphan' });
    // Only permanent entries are ours: the bridge's learned ones are its local containers'.
    const neighs = actual.neighs.filter((n) => n.dev === d.bridge && n.permanent);
    for (const n of d.neighs) {
      const found = neighs.find((h) => h.dst === n.dst);
      if (found?.lladdr === n.lladdr) continue;
      out.push({ kind: 'neigh.set', dev: d.bridge, dst: n.dst, lladdr: n.lladdr, owner, reason: found ? 'drifted' : 'missing', ...(found ? { detail: `lladdr ${n.lladdr} expected, ${found.lladdr ?? 'none'} found` } : {}) });
    }
    for (const n of neighs) if (!d.neighs.some((w) => w.dst === n.dst)) out.push({ kind: 'neigh.del', dev: d.bridge, dst: n.dst, owner, reason: 'orphan' });
  }
  return out;
}

/** A device of ours with another MTU, off its bridge, or down: set right (a detached port also lost its flags). */
function deviceDrift(d: DesiredVxlan, link: Link): VxlanChange[] {
  const found = [
    ...(link.mtu !== d.mtu ? [`mtu ${d.mtu} expected, ${link.mtu} found`] : []),
    ...(link.master !== d.bridge ? [`master ${d.bridge} expected, ${link.master ?? 'none'} found`] : []),
    ...(link.up ? [] : ['up expected, down found']),
  ];
  if (found.length === 0) return [];
  return [{ kind: 'vxlan.set', name: d.name, mtu: d.mtu, master: d.bridge, owner: { networkId: d.networkId, endpointId: null }, reason: 'drifted', detail: found.join(', ') }];
}

/**
 * What of a device's tunnel differs from `d` (VNI, local address, port), null when nothing
 * does or the link was read without it.
 */
function tunnelDrift(d: DesiredVxlan, link: Link): string | null {
  const t = link.vxlan;
  if (t === undefined) return null;
  const local = t.local === null ? null : (canonicalIp(t.local) ?? t.local);
  const want = canonicalIp(d.local) ?? d.local;
  const found = [
    ...(t.vni !== d.vni ? [`vni ${d.vni} expected, ${t.vni} found`] : []),
    ...(local !== want ? [`local ${want} expected, ${local ?? 'none'} found`] : []),
    ...(t.port !== VXLAN_PORT ? [`dstport ${VXLAN_PORT} expected, ${t.port} found`] : []),
  ];
  return found.length === 0 ? null : found.join(', ');
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Devices of ours whose cluster network is gone: deleted. */
function orphanVxlans(desired: readonly DesiredVxlan[], links: readonly Link[]): VxlanChange[] {
  return links
    .filter((l) => parseOwnerAlias(l.alias)?.kind === 'vxlan' && !desired.some((d) => d.name === l.name))
    .map((l) => ({ kind: 'vxlan.delete', name: l.name, owner: { networkId: parseOwnerAlias(l.alias)?.id ?? null, endpointId: null }, reason: 'orphan' }));
}

const isVxlanLink = (l: Link) => parseOwnerAlias(l.alias)?.kind === 'vxlan';

/**
 * Reads the VXLAN devices, their FDB and the bridges' neighbours, and plans them (only when this
 * host has cluster networks, or `leftovers` says a device of ours may be left over: else nothing
 * is read). `devices`: how many devices of ours the kernel holds once the changes are applied.
 */
export async function planClusterObjects(state: State, vtep: string, leftovers: boolean, where: Where = {}): Promise<{ changes: VxlanChange[]; devices: number }> {
  const clustered = Object.values(state.networks).some((n) => clusterOf(n.options) !== null);
  if (!clustered && !leftovers) return { changes: [], devices: 0 };
  const { links, underlayMtu } = await observeVxlanLinks(vtep, where);
  const desired = desiredVxlans(state, state.peers ?? {}, { vtep, mtu: underlayMtu ?? 1500 });
  if (desired.length === 0 && !links.some(isVxlanLink)) return { changes: [], devices: 0 };
  const bridges = new Set(desired.map((d) => d.bridge));
  const seen = await observeVxlan(new Set(links.map((l) => l.name)), bridges, where);
  return { changes: [...planVxlans(desired, { links, ...seen }), ...orphanVxlans(desired, links)], devices: desired.length };
}

type Where = { readonly netns?: string };

/**
 * One pass over the VXLAN objects, after the pass that made the bridges: plans (see
 * planClusterObjects; `leftovers`: the pass's links hold a device of ours, or an earlier
 * convergence left one) and applies. Returns what it applied and how many devices are left;
 * throws what the kernel said.
 */
export async function convergeVxlans(state: State, vtep: string, leftovers: boolean, where: Where = {}): Promise<{ applied: VxlanChange[]; devices: number }> {
  const { changes, devices } = await planClusterObjects(state, vtep, leftovers, where);
  if (changes.length > 0) await applyVxlan(changes, where);
  return { applied: changes, devices };
}

/** Whether `links` (a pass's snapshot) hold a VXLAN device of ours. */
export function holdsVxlan(links: readonly Link[]): boolean {
  return links.some(isVxlanLink);
}
