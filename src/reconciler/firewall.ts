// The firewall as data: what each network wants (isolation, icc, internal, allow-list,
// published ports, masquerade and hairpin, egress policy), computed from the folded state. How that is
// written (iptables today) is the firewall backend's business, under src/kernel/.
import { BRIDGE_PREFIX, OWNER_TAG } from '../events/domain/naming.ts';
import { egressPolicy, gatewayModes, trustedHostInterfaces, type NetworkPolicy } from '../events/domain/options.ts';
import type { EndpointState, NetworkState, PortBinding } from '../events/domain/types.ts';
import type { FirewallEgress, FirewallNetworkPolicy, FirewallPolicy, OpenedPort, PortForward } from '../kernel/types.ts';

export interface FirewallNetwork {
  readonly net: NetworkState;
  readonly policy: NetworkPolicy;
  readonly endpoints: readonly EndpointState[];
}

/** The firewall policy of these networks (sorted by bridge), in the same order. */
export function firewallPolicy(nets: readonly FirewallNetwork[]): FirewallPolicy {
  return { bridgePrefix: BRIDGE_PREFIX, ownerTag: OWNER_TAG, networks: nets.map(networkPolicy) };
}

function networkPolicy(n: FirewallNetwork): FirewallNetworkPolicy {
  const { net, policy } = n;
  const pools = net.ipv4Data.map((d) => d.pool);
  const mode = gatewayModes(net.options, net.internal);
  // `routed` (IPv4): no masquerade and no DNAT; published ports are opened on the container instead.
  const nat4 = !net.internal && mode.v4 !== 'routed';
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
    forwards: nat4 ? n.endpoints.flatMap(forwards) : [],
    egress: egress(net),
    gatewayMode: { 4: mode.v4, 6: mode.v6 },
    trusted: trustedHostInterfaces(net.options),
    subnets: [...net.ipv4Data, ...net.ipv6Data].map((d) => d.pool),
    gateways: bridgeGateways(net).map((g) => g.split('/')[0] ?? g),
    opened: net.internal ? [] : n.endpoints.flatMap(opened),
  };
}

/**
 * The addresses the bridge carries (CIDRs): the gateways, but none of a family whose gateway mode
 * is `isolated` (Docker 20.10 sends a gateway Docker 28 would not have reserved).
 */
export function bridgeGateways(net: NetworkState): string[] {
  const mode = gatewayModes(net.options, net.internal);
  const gw = (data: NetworkState['ipv4Data'], m: string) => (m === 'isolated' ? [] : data.map((d) => d.gateway).filter((g): g is string => g !== null));
  return [...gw(net.ipv4Data, mode.v4), ...gw(net.ipv6Data, mode.v6)];
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
      const ip = addr?.split('/')[0];
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

/** A network whose bridge needs route_localnet=1: it has published ports (reachable on 127.0.0.1). */
export function needsLocalnet(n: FirewallNetwork): boolean {
  if (n.net.internal || gatewayModes(n.net.options, false).v4 === 'routed') return false;
  return n.endpoints.some((ep) => ep.portmap.length > 0 && ep.address !== null);
}

function forwards(ep: EndpointState): PortForward[] {
  const ip = ep.address?.split('/')[0];
  if (ip === undefined) return [];
  return portRanges(ep.portmap).map((r) => ({
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
 * Docker expands `-p 9000-9002:8000-8002` into one binding per port; consecutive bindings with
 * the same offset become one range again, so one rule serves the whole range.
 */
export function portRanges(portmap: readonly PortBinding[]): PortRange[] {
  const singles = portmap
    .flatMap((p) => {
      const proto = PROTO[p.proto];
      if (proto === undefined || p.hostPort <= 0 || p.hostIp.includes(':')) return [];
      return [{ proto, hostIp: p.hostIp === '0.0.0.0' ? '' : p.hostIp, hostLo: p.hostPort, hostHi: p.hostPort, port: p.port }];
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
