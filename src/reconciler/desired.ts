import type { State } from '../events/domain/types.ts';
import { ifbName, ownerAlias } from '../events/domain/naming.ts';
import { gatewayModes, networkPolicy } from '../events/domain/options.ts';
import type { FirewallPolicy, VethSpec } from '../kernel/types.ts';
import { peerVteps } from './cluster.ts';
import { bridgeGateways, firewallPolicy, needsLocalnet, type FirewallNetwork } from './firewall.ts';

export interface DesiredBridge {
  readonly networkId: string;
  readonly name: string;
  readonly alias: string;
  readonly mtu: number;
  /** Gateway addresses, sorted. */
  readonly addrs: readonly string[];
  /** route_localnet=1: published ports are reachable from the host on 127.0.0.1. */
  readonly routeLocalnet: boolean;
  /** The kernel's IPv6 link-local address; false for the `isolated` IPv6 gateway mode (the bridge has no address at all). */
  readonly linkLocal: boolean;
}

export interface DesiredVeth extends VethSpec {
  readonly networkId: string;
  readonly endpointId: string;
  /** Joined: the peer is in the container, so a vanished veth cannot be recreated. */
  readonly joined: boolean;
  /** ledgernet.ingress_rate in bit/s: a tbf at the root of this (host-side) veth, or null. */
  readonly ingressRate: number | null;
  /** ledgernet.egress_rate in bit/s: what the container sends is redirected to `ifb` and shaped there. */
  readonly egressRate: number | null;
  readonly ifb: { readonly name: string; readonly alias: string } | null;
}

export interface DesiredState {
  readonly bridges: readonly DesiredBridge[];
  readonly veths: readonly DesiredVeth[];
  /** What the firewall must do for every network; the plan leaves out networks whose bridge name is taken. */
  readonly firewall: FirewallPolicy;
}

/** The last frozen state asked about and its answer: a pass with no new intent (the timer's, most of them) reuses it. */
let last: { readonly state: State; readonly desired: DesiredState } | null = null;

/**
 * The kernel objects the folded state asks for. Pure; output sorted by name. The daemon's states
 * are frozen (immer): the same one again gets the same answer without computing it (27 ms of
 * CPU at 2,000 endpoints).
 */
export function desiredFromState(state: State): DesiredState {
  if (!Object.isFrozen(state)) return computeDesired(state);
  if (last?.state !== state) last = { state, desired: computeDesired(state) };
  return last.desired;
}

function computeDesired(state: State): DesiredState {
  const networks = Object.values(state.networks).sort(byKey((n) => n.bridge));
  const endpoints = Object.values(state.endpoints)
    .filter((ep) => !ep.lost)
    .sort(byKey((ep) => ep.endpointId));
  const byNetwork = new Map<string, (typeof endpoints)[number][]>();
  for (const ep of endpoints) byNetwork.set(ep.networkId, [...(byNetwork.get(ep.networkId) ?? []), ep]);
  const fw: FirewallNetwork[] = networks.map((net) => ({
    net,
    policy: networkPolicy(net.options),
    endpoints: byNetwork.get(net.networkId) ?? [],
  }));
  const policies = new Map(fw.map((f) => [f.net.networkId, f.policy]));
  const bridges = networks.map(
    (n, i): DesiredBridge => ({
      networkId: n.networkId,
      name: n.bridge,
      alias: ownerAlias('network', n.networkId),
      mtu: n.mtu,
      // A family in the `isolated` gateway mode has no address on the bridge: the host does not reach it.
      addrs: bridgeGateways(n).sort(),
      routeLocalnet: needsLocalnet(fw[i] as FirewallNetwork),
      linkLocal: !(n.ipv6Data.length > 0 && gatewayModes(n.options, n.internal).v6 === 'isolated'),
    }),
  );
  const veths: DesiredVeth[] = [];
  for (const ep of Object.values(state.endpoints)) {
    const net = state.networks[ep.networkId];
    if (!net || ep.lost) continue;
    const policy = policies.get(net.networkId);
    veths.push({
      networkId: ep.networkId,
      endpointId: ep.endpointId,
      name: ep.veth,
      peer: ep.peer,
      alias: ownerAlias('endpoint', ep.endpointId),
      peerAlias: ownerAlias('peer', ep.endpointId),
      mtu: net.mtu,
      master: net.bridge,
      peerMac: ep.mac,
      joined: ep.joined,
      ingressRate: policy?.ingressRate ?? null,
      egressRate: policy?.egressRate ?? null,
      ifb: policy?.egressRate == null ? null : { name: ifbName(ep.endpointId), alias: ownerAlias('ifb', ep.endpointId) },
    });
  }
  veths.sort(byKey((v) => v.name));
  const vxlanPeers = peerVteps(state);
  return { bridges, veths, firewall: { ...firewallPolicy(fw), ...(vxlanPeers.length > 0 ? { vxlanPeers } : {}) } };
}

export function byKey<T>(key: (t: T) => string): (a: T, b: T) => number {
  return (a, b) => {
    const ka = key(a);
    const kb = key(b);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  };
}
