// The firewall as data: what each network wants (isolation, icc, internal, allow-list,
// published ports, masquerade and hairpin, egress policy), computed from the folded state. How that is
// written (iptables today) is the firewall backend's business, under src/kernel/.
import { isProxiedHostIp } from '../events/domain/host-address.ts';
import { BRIDGE_PREFIX, OWNER_TAG } from '../events/domain/naming.ts';
import { egressPolicy, gatewayModes, inhibitIpv4, natSources, trustedHostInterfaces, type NetworkPolicy } from '../events/domain/options.ts';
import type { EndpointState, NetworkState, PortBinding } from '../events/domain/types.ts';
import type { FirewallEgress, FirewallNat6, FirewallNetworkPolicy, FirewallPolicy, OpenedPort, PortForward } from '../kernel/types.ts';

export interface FirewallNetwork {
  readonly net: NetworkState;
  readonly policy: NetworkPolicy;
  readonly endpoints: readonly EndpointState[];
}

/** The firewall policy of these networks (sorted by bridge), in the same order. */
export function firewallPolicy(networks: readonly FirewallNetworkPolicy[]): FirewallPolicy {
  return { bridgePrefix: BRIDGE_PREFIX, ownerTag: OWNER_TAG, networks };
}

/** What the firewall must do for one network (its own state and endpoints only). */
export function firewallNetworkPolicy(n: FirewallNetwork): FirewallNetworkPolicy {
  const { net, policy } = n;
  const pools = net.ipv4Data.map((d) => d.pool);
  const nat = natSources(net.options);
  const mode = gatewayModes(net.options, net.internal);
  // `routed`: no masquerade, SNAT or DNAT in that family; published ports are opened on the container
  // instead. `isolated` is only with --internal: no NAT either.
  const nat4 = !net.internal && mode.v4 !== 'routed';
  const nat6on = net.ipv6Data.length > 0 && !net.internal && mode.v6 !== 'routed';
  return {
    networkId: net.networkId,
    bridge: net.bridge,
    internal: net.internal,
    icc: policy.icc,
    ipv6: net.ipv6Data.length > 0,
    allow: policy.allow,
    masquerade: nat4 && policy.masquerade ? pools : [],
    published: needsLocalnet(n),
    pools,
    forwards: nat4 ? n.endpoints.flatMap((ep) => forwards(ep, 4)) : [],
    egress: egress(net),
    ...(nat6on ? { nat6: nat6(n, nat.v6) } : {}),
    ...(nat.v4 === null ? {} : { snat4: nat.v4 }),
    gatewayMode: { 4: mode.v4, 6: mode.v6 },
    trusted: trustedHostInterfaces(net.options),
    subnets: [...net.ipv4Data, ...net.ipv6Data].map((d) => d.pool),
    gateways: bridgeGateways(net).map((g) => g.split('/')[0] ?? g),
    opened: net.internal ? [] : n.endpoints.flatMap(opened),
  };
}

/** IPv6 NAT (Docker 27+): masquerade (or SNAT to host_ipv6) unless enable_ip_masquerade=false, and IPv6 published ports. */
function nat6({ net, policy, endpoints }: FirewallNetwork, snat: string | null): FirewallNat6 {
  const pools = net.ipv6Data.map((d) => d.pool);
  return { masquerade: policy.masquerade ? pools : [], snat, pools, forwards: endpoints.flatMap((ep) => forwards(ep, 6)) };
}

/**
 * The addresses the bridge carries (CIDRs): the gateways, but none of a family whose gateway mode
 * is `isolated` (Docker 20.10 sends a gateway Docker 28 would not have reserved), and no IPv4
 * one with `inhibit_ipv4`.
 */
export function bridgeGateways(net: NetworkState): string[] {
  const mode = gatewayModes(net.options, net.internal);
  const gw = (data: NetworkState['ipv4Data'], m: string) => (m === 'isolated' ? [] : data.map((d) => d.gateway).filter((g): g is string => g !== null));
  return [...(inhibitIpv4(net.options) ? [] : gw(net.ipv4Data, mode.v4)), ...gw(net.ipv6Data, mode.v6)];
}

/**
 * The container ports an endpoint publishes, per family of its addresses: a binding on all host
 * addresses counts for both, one on an IPv4 or IPv6 host address for that family only.
 */
function opened(ep: EndpointState): OpenedPort[] {
  const seen = new Set<string>();
  const out: OpenedPort[] = [];
  for (const p of ep.portmap) {
    const proto = PROTO[p.proto];
    if (proto === undefined) continue;
    for (const [family, addr] of [[4, ep.address], [6, ep.addressV6]] as const) {
      const ip = ep.portFamily === undefined || ep.portFamily === family ? addr?.split('/')[0] : undefined;
      const key = `${family} ${p.proto}/${p.port}`;
      const fits = p.hostIp === '' || p.hostIp.includes(':') === (family === 6);
      if (ip === undefined || !fits || seen.has(key)) continue;
      seen.add(key);
      out.push({ endpointId: ep.endpointId, family, ip, proto, ports: [p.port, p.port] });
    }
  }
  return out;
}

/** The egress policy, or null (none given, or an internal network: nothing leaves it anyway). */
function egress(net: NetworkState): FirewallEgress | null {
  const p = egressPolicy(net.options);
  if (p === null || net.internal) return null;
  return { own: [...net.ipv4Data, ...net.ipv6Data].map((d) => d.pool), deny: p.deny, allow: p.allow };
}

/** A network whose bridge needs route_localnet=1: it has IPv4 published ports (reachable on 127.0.0.1). */
export function needsLocalnet(n: FirewallNetwork): boolean {
  if (n.net.internal || gatewayModes(n.net.options, false).v4 === 'routed') return false;
  return n.endpoints.some((ep) => forwards(ep, 4).length > 0);
}

/** The endpoint's published ports of one family, to its address of that family. */
function forwards(ep: EndpointState, family: 4 | 6): PortForward[] {
  if (ep.portmap.length === 0) return [];
  const ip = (family === 4 ? ep.address : ep.addressV6)?.split('/')[0];
  // Docker 28+ split gateways: only this endpoint's side of the ports.
  if (ip === undefined || (ep.portFamily !== undefined && ep.portFamily !== family)) return [];
  return portRanges(ep.portmap, family).map((r) => ({
    endpointId: ep.endpointId,
    proto: r.proto,
    hostIp: r.hostIp,
    hostPorts: [r.hostLo, r.hostHi] as const,
    ip,
    port: r.port,
  }));
}

const PROTO: Readonly<Record<number, PortForward['proto']>> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };

interface PortRange {
  readonly proto: PortForward['proto'];
  readonly hostIp: string;
  readonly hostLo: number;
  readonly hostHi: number;
  readonly port: number;
}

/**
 * The host address of a binding in `family`, '' for all of them, or null when the binding has no
 * part in that family. As Docker's bridge driver (27+): no address (`-p 8080:80`) is both
 * families, `0.0.0.0` IPv4 only, `::` IPv6 only, `::1` none (proxied), any other address its own family.
 */
function hostAddress(hostIp: string, family: 4 | 6): string | null {
  if (hostIp === '') return '';
  // No DNAT from the IPv6 loopback (it cannot work): the userland proxy serves it (proxies.ts).
  if (isProxiedHostIp(hostIp)) return null;
  if (hostIp.includes(':') !== (family === 6)) return null;
  return hostIp === '0.0.0.0' || hostIp === '::' ? '' : hostIp;
}

/**
 * Docker expands `-p 9000-9002:8000-8002` into one binding per port; consecutive bindings with
 * the same offset become one range again, so one rule serves the whole range. Only the bindings
 * of `family` (IPv4 unless said).
 */
export function portRanges(portmap: readonly PortBinding[], family: 4 | 6 = 4): PortRange[] {
  const singles = portmap
    .flatMap((p) => {
      const proto = PROTO[p.proto];
      const hostIp = hostAddress(p.hostIp, family);
      if (proto === undefined || p.hostPort <= 0 || hostIp === null) return [];
      return [{ proto, hostIp, hostLo: p.hostPort, hostHi: p.hostPort, port: p.port }];
    })
    .sort((a, b) => (a.proto + a.hostIp < b.proto + b.hostIp ? -1 : a.proto + a.hostIp > b.proto + b.hostIp ? 1 : a.hostLo - b.hostLo));
  const out: PortRange[] = [];
  for (const s of singles) {
    const last = out[out.length - 1];
    if (last && last.proto === s.proto && last.hostIp === s.hostIp && s.hostLo === last.hostHi + 1 && s.port - last.port === s.hostLo - last.hostLo) {
      out[out.length - 1] = { ...last, hostHi: s.hostLo };
    } else if (!(last && last.proto === s.proto && last.hostIp === s.hostIp && s.hostLo <= last.hostHi)) out.push(s);
  }
  return out;
}
