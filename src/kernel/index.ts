// Public API of the kernel layer. Everything else in this folder is internal.
export type {
  Addr,
  BatchFailure,
  BatchResult,
  ChangesResult,
  Chain,
  FirewallBackend,
  FirewallChange,
  FirewallPolicy,
  IptablesTable,
  LinkChange,
  ShapingChange,
  HostKernel,
  Kernel,
  KernelSnapshot,
  Link,
  Route,
  Qdisc,
} from './types.ts';
export type { KernelOptions } from './run-kernel.ts';
export type { BatchProgress } from './parse-errors.ts';
export { createKernel } from './run-kernel.ts';
export { watchNfTables } from './nf-changes.ts';
export { CREATE_GROUP, isFirewallChange } from './changes.ts';
export { dockerBridgesOf } from './docker-bridges.ts';
export { afterAcceptRaOff, afterLinkChanges, afterRouteLocalnet, afterShapingChanges, byDev, withoutRoutes } from './model.ts';
export { ipLines, isLinkChange } from './iproute/render.ts';
export { isShapingChange, tbfShape, tcLines } from './tc/render.ts';
export { parseLinks } from './parse-links.ts';
export { parseAddrs } from './parse-addrs.ts';
export { parseRoutes } from './parse-routes.ts';
export { HOOK_BEHIND_DOCKER, parseIptablesSave } from './iptables/index.ts';
// The firewall backends (`serve --firewall`); the default is the one plans use unless told.
export { iptablesFirewall as defaultFirewall } from './iptables/index.ts';
export { iptablesFirewall } from './iptables/index.ts';
export { nftablesFirewall } from './nftables/index.ts';
export { parseIpBatchErrors } from './parse-errors.ts';
export { watchLinks, type Watch } from './monitor.ts';
export { parseSysctl } from './parse-sysctl.ts';
export { parseIngressRedirects, parseQdiscs, parseTcBatchErrors } from './parse-tc.ts';
export { driftNotice, type DriftKind, type OwnedLinks } from './monitor.ts';
export { routeSource } from './route-source.ts';
export { applyVxlan, observeVxlan, observeVxlanLinks, underlayMtu } from './vxlan.ts';
export { isVxlanChange, vxlanKey, type VxlanChange } from './iproute/vxlan.ts';
export type { Neigh, VxlanFdb } from './parse-vxlan.ts';
// The userland proxy for host addresses the kernel cannot DNAT from (IPv6 loopback).
export { createProxyHost, type ProxyHost } from './proxy/index.ts';
export { isProxyChange, proxyName, proxyTarget, type ProxyChange, type ProxyListener, type ProxyPort, type ProxySpec } from './proxy/types.ts';
// The sockets that hold the host ports published through DNAT, as Docker's bridge driver holds its own.
export { createReserveHost, type ReserveHost } from './reservations/index.ts';
export { isReserveChange, reservationName, type Reservation, type ReserveChange, type ReservePort, type ReserveSpec } from './reservations/types.ts';
// The host's listening sockets (/proc/net), so a published port never takes one a program holds.
export { readHostListeners } from './host-listeners.ts';
export { readSandboxIface, type SandboxIface } from './sandbox-iface.ts';
export { enableBridgeNf } from './bridge-nf.ts';
// Stale connection-tracking entries of published ports and removed endpoints, deleted as Docker's bridge driver does.
export type { ConntrackFlush, ConntrackResult } from './conntrack.ts';
