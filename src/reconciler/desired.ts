import type { EndpointState, NetworkState, State } from '../events/domain/types.ts';
import { ifbName, ownerAlias } from '../events/domain/naming.ts';
import { gatewayModes, inhibitIpv4, networkPolicy } from '../events/domain/options.ts';
import type { FirewallNetworkPolicy, FirewallPolicy, VethSpec } from '../kernel/types.ts';
import { peerVteps } from './cluster.ts';
import { bridgeGateways, firewallNetworkPolicy, firewallPolicy, needsLocalnet, type FirewallNetwork } from './firewall.ts';

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
  /** `inhibit_ipv4`: the IPv4 addresses on the bridge are the operator's, neither added nor removed. */
  readonly foreignIpv4: boolean;
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

/** What one network asks of the kernel: its bridge, its endpoints' veths (sorted by name) and its firewall policy. */
export interface NetworkDesired {
  readonly bridge: DesiredBridge;
  readonly veths: readonly DesiredVeth[];
  readonly policy: FirewallNetworkPolicy;
}

/**
 * The kernel objects one network asks for, from its own state and its endpoints (any order, lost
 * ones included) alone: nothing of another network goes into it, so a pass can derive only the
 * networks a change touched (scope.ts). Pure.
 */
export function desiredOfNetwork(net: NetworkState, endpoints: readonly EndpointState[]): NetworkDesired {
  const eps = endpoints.filter((ep) => !ep.lost).sort(byKey((ep) => ep.endpointId));
  const fw: FirewallNetwork = { net, policy: networkPolicy(net.options), endpoints: eps };
  const { ingressRate, egressRate } = fw.policy;
  const bridge: DesiredBridge = {
    networkId: net.networkId,
    name: net.bridge,
    alias: ownerAlias('network', net.networkId),
    mtu: net.mtu,
    // A family in the `isolated` gateway mode has no address on the bridge: the host does not reach it.
    addrs: bridgeGateways(net).sort(),
    routeLocalnet: needsLocalnet(fw),
    linkLocal: !(net.ipv6Data.length > 0 && gatewayModes(net.options, net.internal).v6 === 'isolated'),
    foreignIpv4: inhibitIpv4(net.options),
  };
  const veths = eps.map(
    (ep): DesiredVeth => ({
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
      ingressRate: ingressRate ?? null,
      egressRate: egressRate ?? null,
      ifb: egressRate == null ? null : { name: ifbName(ep.endpointId), alias: ownerAlias('ifb', ep.endpointId) },
    }),
  );
  return { bridge, veths: veths.sort(byKey((v) => v.name)), policy: firewallNetworkPolicy(fw) };
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
  const byNetwork = new Map<string, EndpointState[]>();
  for (const ep of Object.values(state.endpoints)) {
    const list = byNetwork.get(ep.networkId);
    if (list) list.push(ep);
    else byNetwork.set(ep.networkId, [ep]);
  }
  const networks = Object.values(state.networks).sort(byKey((n) => n.bridge));
  const parts = networks.map((net) => desiredOfNetwork(net, byNetwork.get(net.networkId) ?? []));
  const veths = parts.flatMap((p) => p.veths).sort(byKey((v) => v.name));
  return { bridges: parts.map((p) => p.bridge), veths, firewall: desiredFirewall(parts, peerVteps(state)) };
}

/** The firewall policy of these networks (sorted by bridge) and the cluster's VTEPs. */
export function desiredFirewall(parts: readonly NetworkDesired[], vxlanPeers: readonly string[]): FirewallPolicy {
  return { ...firewallPolicy(parts.map((p) => p.policy)), ...(vxlanPeers.length > 0 ? { vxlanPeers } : {}) };
}

export function byKey<T>(key: (t: T) => string): (a: T, b: T) => number {
  return (a, b) => {
    const ka = key(a);
    const kb = key(b);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  };
}
