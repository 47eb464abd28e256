// The kernel side of cluster networks, desired and planned: per network a VXLAN device enslaved
// to its bridge, the FDB entries that send each remote MAC to its host's VTEP (and the flood list
// to every member's VTEP), and permanent neighbour entries on the bridge for remote addresses (so
// the bridge answers ARP locally: nothing ARPs across the tunnel, the gateway included). Pure.
import { clusterOf } from '../events/domain/options.ts';
import { ownerAlias, parseOwnerAlias, vxlanName } from '../events/domain/naming.ts';
import type { ClusterPeers } from '../events/domain/peers.ts';
import { lookup, type State } from '../events/domain/types.ts';
import { applyVxlan, observeVxlan, observeVxlanLinks } from '../kernel/index.ts';
import type { Link } from '../kernel/types.ts';
import { FLOOD_MAC, type Neigh, type VxlanFdb } from '../kernel/parse-vxlan.ts';
import type { VxlanChange } from '../kernel/iproute/vxlan.ts';

/** Outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14). */
const VXLAN_OVERHEAD = 50;

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

/** The VXLAN objects the state asks for: one per cluster network on a cluster pool. */
export function desiredVxlans(state: State, peers: Readonly<Record<string, ClusterPeers>>, underlay: Underlay): DesiredVxlan[] {
  const out: DesiredVxlan[] = [];
  for (const net of Object.values(state.networks)) {
    const cluster = clusterOf(net.options);
    const pool = net.ipv4Data[0] ? lookup(state.pools, `ledgernet/${net.ipv4Data[0].pool}`) : undefined;
    if (cluster === null || pool?.cluster?.name !== cluster) continue;
    const p = peers[cluster] ?? { members: {}, endpoints: {} };
    const eps = Object.values(p.endpoints);
    const fdb = [
      ...Object.values(p.members).map((m) => ({ mac: FLOOD_MAC, dst: m.vtep })),
      ...eps.flatMap((e) => [{ mac: e.mac, dst: null }, { mac: e.mac, dst: e.vtep }]),
    ].sort((a, b) => cmp(a.mac, b.mac) || cmp(a.dst ?? '', b.dst ?? ''));
    const neighs = eps.map((e) => ({ dst: e.address, lladdr: e.mac })).sort((a, b) => cmp(a.dst, b.dst));
    const name = vxlanName(net.networkId);
    out.push({ networkId: net.networkId, cluster, name, alias: ownerAlias('vxlan', net.networkId), vni: pool.cluster.vni, local: underlay.vtep, mtu: underlay.mtu - VXLAN_OVERHEAD, bridge: net.bridge, fdb, neighs });
  }
  return out.sort((a, b) => cmp(a.name, b.name));
}

/** What the kernel holds of cluster networks: links, the VXLAN devices' FDB, the bridges' neighbours. */
export interface VxlanActual {
  readonly links: readonly Link[];
  readonly fdb: readonly VxlanFdb[];
  readonly neighs: readonly Neigh[];
}

/**
 * The changes that bring the VXLAN objects to `desired`: a missing device is created (its
 * entries follow in the same pass), a drifted one is set right; FDB and neighbour entries are
 * added and removed one by one. A device whose name a link that is not ours holds is left alone.
 */
export function planVxlans(desired: readonly DesiredVxlan[], actual: VxlanActual): VxlanChange[] {
  const out: VxlanChange[] = [];
  for (const d of desired) {
    const owner = { networkId: d.networkId, endpointId: null };
    const link = actual.links.find((l) => l.name === d.name);
    if (link && link.alias !== d.alias) continue;
    if (!link) out.push({ kind: 'vxlan.create', name: d.name, alias: d.alias, vni: d.vni, local: d.local, mtu: d.mtu, master: d.bridge, owner, reason: 'missing' });
    const have = link ? actual.fdb.filter((f) => f.dev === d.name) : [];
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

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Devices of ours whose cluster network is gone: deleted. */
function orphanVxlans(desired: readonly DesiredVxlan[], links: readonly Link[]): VxlanChange[] {
  return links
    .filter((l) => parseOwnerAlias(l.alias)?.kind === 'vxlan' && !desired.some((d) => d.name === l.name))
    .map((l) => ({ kind: 'vxlan.delete', name: l.name, owner: { networkId: parseOwnerAlias(l.alias)?.id ?? null, endpointId: null }, reason: 'orphan' }));
}

/**
 * One pass over the VXLAN objects, after the pass that made the bridges: reads the VXLAN devices,
 * their FDB and the bridges' neighbours (only when this host has cluster networks, or devices
 * left over from them), plans, and applies. Returns what it applied; throws what the kernel said.
 */
export async function convergeVxlans(state: State, vtep: string, known: readonly Link[], where: { readonly netns?: string } = {}): Promise<VxlanChange[]> {
  // A host with no cluster network and no device left over from one (in `known`, the links the
  // pass planned against) spawns nothing: this runs after every pass, Docker's included.
  const clustered = Object.values(state.networks).some((n) => clusterOf(n.options) !== null);
  if (!clustered && !known.some((l) => parseOwnerAlias(l.alias)?.kind === 'vxlan')) return [];
  const { links, underlayMtu } = await observeVxlanLinks(vtep, where);
  const desired = desiredVxlans(state, state.peers ?? {}, { vtep, mtu: underlayMtu ?? 1500 });
  if (desired.length === 0 && !links.some((l) => parseOwnerAlias(l.alias)?.kind === 'vxlan')) return [];
  const bridges = new Set(desired.map((d) => d.bridge));
  const seen = await observeVxlan((dev) => links.some((l) => l.name === dev), (dev) => bridges.has(dev), where);
  const changes = [...planVxlans(desired, { links, ...seen }), ...orphanVxlans(desired, links)];
  if (changes.length > 0) await applyVxlan(changes, where);
  return changes;
}
