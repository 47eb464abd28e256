// Design: the desired state per network, kept current from one folded state to the next by what
// changed, so that a pass for Docker derives (and plans) only the networks an intent touched.
// States are immutable and folded with structural sharing (immer), so what changed is found by
// reference: an unchanged network or endpoint is the same object. The comparison walks the keys
// of the maps that changed (pointer checks, microseconds at thousands of endpoints); every
// derivation, name index and firewall policy is redone only for the networks that changed.
// Why not the trigger's network id: a burst of intents is planned in one pass, a rollback or a
// lost endpoint changes other objects than the call's, and a missed network is a missed repair;
// the state itself says exactly what changed.
import { isProxiedHostIp } from '../events/domain/host-address.ts';
import { lookup, type EndpointState, type State } from '../events/domain/types.ts';
import { peerVteps } from './cluster.ts';
import { byKey, desiredOfNetwork, type NetworkDesired } from './desired.ts';

/** A link the desired state wants: the alias it must carry, whether it lives in the host namespace (not a container end), and whose. */
interface Want {
  readonly alias: string;
  readonly host: boolean;
  readonly networkId: string;
  readonly bridge: boolean;
}

/** What changed since the last `take`: the networks, and the links they wanted before (candidates for orphan deletes). */
export interface Touched {
  readonly networks: ReadonlySet<string>;
  readonly names: ReadonlySet<string>;
}

function wantsOf(d: NetworkDesired): [string, Want][] {
  const networkId = d.bridge.networkId;
  const want = (alias: string, host: boolean, bridge = false): Want => ({ alias, host, networkId, bridge });
  return [
    [d.bridge.name, want(d.bridge.alias, true, true)],
    ...d.veths.flatMap((v): [string, Want][] => [
      [v.name, want(v.alias, true)],
      [v.peer, want(v.peerAlias, false)],
      ...(v.ifb ? [[v.ifb.name, want(v.ifb.alias, true)] as [string, Want]] : []),
    ]),
  ];
}

/** Calls `changed` for each key whose value is not the same object in `a` and `b`. */
export function diffRecords<T>(a: Readonly<Record<string, T>>, b: Readonly<Record<string, T>>, changed: (key: string, before: T | undefined, after: T | undefined) => void): void {
  for (const k of Object.keys(b)) {
    const x = lookup(a, k);
    const y = b[k];
    if (x !== y) changed(k, x, y);
  }
  for (const k of Object.keys(a)) if (!Object.hasOwn(b, k)) changed(k, a[k], undefined);
}

const proxied = (ep: EndpointState) => !ep.lost && ep.portmap.some((p) => isProxiedHostIp(p.hostIp));

/** The VTEPs of the cluster's other hosts (none without peers, without looking at every network). */
const vtepsOf = (state: State) => (state.peers && Object.keys(state.peers).length > 0 ? peerVteps(state) : []);

/**
 * The desired state of every network, advanced from state to state by what changed, and what
 * changed since the last `take`.
 */
export class DesiredIndex {
  private state: State | null = null;
  private readonly networks = new Map<string, NetworkDesired>();
  private readonly endpoints = new Map<string, Map<string, EndpointState>>();
  /** Link name → who wants it (more than one: a clash, which only a full plan judges). */
  private readonly wanted = new Map<string, Want[]>();
  /** Endpoints with a binding the userland proxy serves (a port on ::1). */
  private readonly proxied = new Set<string>();
  private touched: { networks: Set<string>; names: Set<string> } | null = null;
  private vteps: readonly string[] = [];

  /** Brings the index to `state`, deriving again only the networks that changed. */
  advance(state: State): void {
    const prev = this.state;
    if (prev === state) return;
    this.state = state;
    if (prev === null) return this.rebuild(state);
    const nets = new Set<string>();
    if (prev.networks !== state.networks) diffRecords(prev.networks, state.networks, (id) => nets.add(id));
    if (prev.endpoints !== state.endpoints) {
      diffRecords(prev.endpoints, state.endpoints, (id, before, after) => {
        if (before) (nets.add(before.networkId), this.endpoints.get(before.networkId)?.delete(id));
        if (after) (nets.add(after.networkId), this.endpointsOf(after.networkId).set(id, after));
        if (after && proxied(after)) this.proxied.add(id);
        else this.proxied.delete(id);
      });
    }
    for (const id of nets) this.derive(id, state);
    if (prev.networks !== state.networks || prev.pools !== state.pools || prev.peers !== state.peers) this.vteps = vtepsOf(state);
  }

  /** What changed since the last take (null: everything, as after the first advance), and starts over. */
  take(): Touched | null {
    const t = this.touched;
    this.touched = { networks: new Set(), names: new Set() };
    return t;
  }

  network(id: string): NetworkDesired | undefined {
    return this.networks.get(id);
  }

  /** Every network's desired state, sorted by bridge (as desiredFromState orders them). */
  all(): NetworkDesired[] {
    return [...this.networks.values()].sort(byKey((d) => d.bridge.name));
  }

  get vxlanPeers(): readonly string[] {
    return this.vteps;
  }

  /** Some endpoint publishes a port the userland proxy serves. */
  get proxies(): boolean {
    return this.proxied.size > 0;
  }

  /** The alias the desired state wants on link `name`, if exactly one object wants it (plan.ts: planOrphanLinks). */
  get(name: string): string | undefined {
    const w = this.wanted.get(name);
    return w?.length === 1 ? w[0]?.alias : undefined;
  }

  /** More than one object wants link `name`: only a full plan says who gets it. */
  clashes(name: string): boolean {
    return (this.wanted.get(name)?.length ?? 0) > 1;
  }

  /** A link the desired state wants in the host namespace: a bridge, a host-side veth, an ifb (notices.ts). */
  wantsHostLink(name: string): boolean {
    return this.wanted.get(name)?.some((w) => w.host) ?? false;
  }

  /** The bridge of some network is named `name`. */
  isBridge(name: string): boolean {
    return this.wanted.get(name)?.some((w) => w.bridge) ?? false;
  }

  private endpointsOf(networkId: string): Map<string, EndpointState> {
    let m = this.endpoints.get(networkId);
    if (!m) this.endpoints.set(networkId, (m = new Map()));
    return m;
  }

  private rebuild(state: State): void {
    for (const ep of Object.values(state.endpoints)) {
      this.endpointsOf(ep.networkId).set(ep.endpointId, ep);
      if (proxied(ep)) this.proxied.add(ep.endpointId);
    }
    for (const id of Object.keys(state.networks)) this.derive(id, state);
    this.vteps = vtepsOf(state);
    this.touched = null;
  }

  /** Network `id` derived again from `state`; what it wanted before is remembered as touched. */
  private derive(id: string, state: State): void {
    const before = this.networks.get(id);
    if (before) {
      for (const [name] of wantsOf(before)) {
        this.touched?.names.add(name);
        const rest = (this.wanted.get(name) ?? []).filter((w) => w.networkId !== id);
        if (rest.length > 0) this.wanted.set(name, rest);
        else this.wanted.delete(name);
      }
    }
    this.touched?.networks.add(id);
    const net = lookup(state.networks, id);
    if (!net) {
      this.networks.delete(id);
      if (this.endpoints.get(id)?.size === 0) this.endpoints.delete(id);
      return;
    }
    const now = desiredOfNetwork(net, [...(this.endpoints.get(id)?.values() ?? [])]);
    this.networks.set(id, now);
    for (const [name, w] of wantsOf(now)) this.wanted.set(name, [...(this.wanted.get(name) ?? []), w]);
  }
}
