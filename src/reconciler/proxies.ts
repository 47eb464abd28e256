// The userland proxy's listeners, desired and planned. Ports published on a host address the
// kernel cannot DNAT from (the IPv6 loopback) are served by listeners the daemon holds
// (kernel/proxy/); like the firewall, the set of listeners converges to what the log asks for, so
// after a restart (SIGKILL included) the first pass opens them again. Pure.
import { isProxiedHostIp } from '../events/domain/host-address.ts';
import { PROTO_NAME, routed } from '../events/domain/ports.ts';
import type { State } from '../events/domain/types.ts';
import { proxyName, proxyTarget, type ProxyChange, type ProxyListener, type ProxySpec } from '../kernel/index.ts';

export interface DesiredProxy {
  readonly name: string;
  readonly spec: ProxySpec;
  readonly owner: { readonly networkId: string; readonly endpointId: string };
}

/**
 * A listener for each tcp/udp port an endpoint publishes on ::1, to its IPv6 address, or its IPv4
 * one when it has none (6→4, as docker-proxy). Sorted by name. Nothing for an --internal network
 * or one that maps no host port (routed), nor for a lost endpoint; with split gateways (Docker 28+)
 * only the container's IPv6 gateway serves them.
 */
export function desiredProxies(state: State): DesiredProxy[] {
  const out: DesiredProxy[] = [];
  // Split gateways (Docker 28+): the IPv6 side of a container's ports, ::1 included, is its IPv6 gateway's.
  const v6Gateways = new Set(Object.values(state.endpoints).flatMap((e) => (e.portFamily === 6 && e.sandboxKey ? [e.sandboxKey] : [])));
  for (const ep of Object.values(state.endpoints)) {
    const net = state.networks[ep.networkId];
    if (!net || net.internal || ep.lost || routed(state, ep)) continue;
    if (ep.portFamily === 4 || (ep.portFamily === undefined && !!ep.sandboxKey && v6Gateways.has(ep.sandboxKey))) continue;
    const targetIp = (ep.addressV6 ?? ep.address)?.split('/')[0];
    if (targetIp === undefined) continue;
    for (const p of ep.portmap) {
      const proto = PROTO_NAME[p.proto];
      if (!isProxiedHostIp(p.hostIp) || p.hostPort <= 0 || (proto !== 'tcp' && proto !== 'udp')) continue;
      const spec: ProxySpec = { proto, hostIp: p.hostIp, hostPort: p.hostPort, targetIp, targetPort: p.port };
      out.push({ name: proxyName(spec), spec, owner: { networkId: ep.networkId, endpointId: ep.endpointId } });
    }
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Opens what is missing, closes what no endpoint wants, and reopens a listener whose target
 * changed (closed and opened again: its connections go to the old container).
 */
export function planProxies(desired: readonly DesiredProxy[], actual: readonly ProxyListener[]): ProxyChange[] {
  const have = new Map(actual.map((l) => [l.name, l]));
  const want = new Set(desired.map((d) => d.name));
  const out: ProxyChange[] = [];
  for (const l of actual) {
    if (!want.has(l.name)) out.push({ kind: 'proxy.close', name: l.name, owner: l.owner, reason: 'orphan', detail: `to ${proxyTarget(l)}` });
  }
  for (const d of desired) {
    const l = have.get(d.name);
    if (l && l.targetIp === d.spec.targetIp && l.targetPort === d.spec.targetPort) continue;
    const detail = l ? `to ${proxyTarget(d.spec)} expected, to ${proxyTarget(l)} found` : `to ${proxyTarget(d.spec)}`;
    out.push({ kind: 'proxy.open', name: d.name, spec: d.spec, owner: d.owner, reason: l ? 'drifted' : 'missing', detail });
  }
  return out;
}
