// Host ports for published ports. Docker leaves the choice to the driver for `-P` and `-p 80`
// (HostPort 0) and for `-p 8000-8010:80` (a host range for one container port). The choice is
// made here, in `decide`, from the state alone: deterministic (the lowest port not published by
// another ledgernet endpoint on an overlapping host address), and recorded in the
// `endpoint.external.programmed` event, so a replay or a second daemon reading the log arrives
// at the same rules.
import { DriverError } from '../../errors.ts';
import { parseIp, withPort } from './cidr.ts';
import { isProxiedHostIp } from './host-address.ts';
import { gatewayModes } from './options.ts';
import type { EndpointState, NewEvent, PortBinding, State } from './types.ts';

/** Docker's own range for ephemeral published ports on Linux. */
const EPHEMERAL_PORTS: readonly [number, number] = [49153, 65535];

export const PROTO_NAME: Readonly<Record<number, string>> = { 6: 'tcp', 17: 'udp', 132: 'sctp' };

function key(proto: number, port: number): string {
  return `${proto}/${port}`;
}

/**
 * A socket of a program on the host (read by the caller from /proc/net, ledgernet's own userland
 * proxy left out): TCP in LISTEN, UDP bound and unconnected, SCTP bound. `address` is an IP address (`0.0.0.0`,
 * `::` for all of a family).
 */
export interface HostListener {
  readonly proto: 'tcp' | 'udp' | 'sctp';
  readonly address: string;
  readonly port: number;
}

/**
 * The host listener that a binding on `hostIp` (`''`: every address of both families) and
 * `hostPort` would take traffic from, or undefined; as the bind of docker-proxy (Docker's bridge
 * driver) would fail with "address already in use". A binding covers an address of the listener's
 * family when one of the two is the family's wildcard or both are the same; a listener on `::`
 * counts for IPv4 too (a dual-stack socket, the default, takes IPv4 as well).
 */
function listenerInTheWay(listeners: readonly HostListener[], proto: number, hostIp: string, hostPort: number): HostListener | undefined {
  const name = PROTO_NAME[proto];
  const bound = hostIp === '' ? null : parseIp(hostIp);
  return listeners.find((l) => {
    if (l.proto !== name || l.port !== hostPort) return false;
    const a = parseIp(l.address);
    if (a === null) return false;
    if (bound === null) return true;
    if (a.value === 0n) return a.family === bound.family || a.family === 6;
    return a.family === bound.family && (bound.value === 0n || a.value === bound.value);
  });
}

/**
 * Whether two bindings of one host port share a host address, so that one would take the other's
 * traffic (as docker-proxy's binds would collide in Docker's bridge driver): no address (`''`) is
 * every address of both families, `0.0.0.0` and `::` every address of their family, and any other
 * address only itself. `127.0.0.1:8080` and `127.0.0.2:8080` are two containers' to have;
 * `0.0.0.0:8080` and `[::]:8080` too (no address is in both families). Pure.
 */
function hostIpsOverlap(a: string, b: string): boolean {
  if (a === '' || b === '') return true;
  const [x, y] = [parseIp(a), parseIp(b)];
  if (x === null || y === null) return true; // not an address: never let it pass as another's
  return x.family === y.family && (x.value === 0n || y.value === 0n || x.value === y.value);
}

/** The bindings of one proto and host port, by `proto/port`, with whatever each carries. */
class PortHolders<T> {
  private readonly byPort = new Map<string, { readonly hostIp: string; readonly what: T }[]>();
  add(proto: number, port: number, hostIp: string, what: T): void {
    const k = key(proto, port);
    const list = this.byPort.get(k);
    if (list) list.push({ hostIp, what });
    else this.byPort.set(k, [{ hostIp, what }]);
  }
  /** The first binding of `proto`/`port` whose host address overlaps `hostIp`. */
  find(proto: number, port: number, hostIp: string): { readonly hostIp: string; readonly what: T } | undefined {
    return this.byPort.get(key(proto, port))?.find((h) => hostIpsOverlap(h.hostIp, hostIp));
  }
}

/**
 * The first pair of fixed bindings in `portmap` that publish one host port on overlapping host
 * addresses (`[first, second]` indexes), or undefined. A range or HostPort 0 is chosen later.
 */
export function portGivenTwice(portmap: readonly PortBinding[]): [number, number] | undefined {
  const seen = new PortHolders<number>();
  for (const [i, b] of portmap.entries()) {
    if (b.hostPort === 0 || b.hostPortEnd > b.hostPort) continue;
    const first = seen.find(b.proto, b.hostPort, b.hostIp);
    if (first !== undefined) return [first.what, i];
    seen.add(b.proto, b.hostPort, b.hostIp, i);
  }
  return undefined;
}

function hostAddress(ip: string): string {
  return ip === '' ? 'every host address' : ip.includes(':') ? `[${ip}]` : ip;
}

/** A network that maps no host port: IPv4 `routed`, and IPv6 too when it has IPv6 (else IPv6 NAT maps them). */
export function routed(state: State, ep: EndpointState): boolean {
  const net = state.networks[ep.networkId];
  if (net === undefined) return false;
  const mode = gatewayModes(net.options, net.internal);
  return mode.v4 === 'routed' && (net.ipv6Data.length === 0 || mode.v6 === 'routed');
}

/**
 * Resolves every binding to one host port (`hostPort === hostPortEnd`). Keeps the ports the
 * endpoint already holds when Docker repeats the call.
 * A port a program on the host listens on (`listeners`) is not taken: a fixed one is refused, a
 * range or `-P` skips it; unless this endpoint (or its partner) already publishes it (Docker
 * repeating the call).
 * @throws DriverError `LN_ERR_CONFLICT` when a fixed port is taken on an overlapping host address or a range has no free port;
 *   `LN_ERR_PORT_IN_USE` when a program on the host listens on a fixed one.
 */
export function resolvePorts(
  portmap: readonly PortBinding[],
  state: State,
  ep: EndpointState,
  partner: EndpointState | null = null,
  listeners: readonly HostListener[] = [],
): PortBinding[] {
  // The `routed` gateway mode maps no host port (only the container port is opened): nothing to
  // choose or to collide with, as in Docker (unless the other family is NATed and maps them).
  if (routed(state, ep)) return [...portmap];
  const taken = new PortHolders<string>();
  for (const other of Object.values(state.endpoints)) {
    // The partner publishes the same host ports in the other family: shared, not taken.
    if (other.endpointId === ep.endpointId || other.endpointId === partner?.endpointId || routed(state, other)) continue;
    for (const p of other.portmap) taken.add(p.proto, p.hostPort, p.hostIp, other.endpointId);
  }
  const out: PortBinding[] = [];
  const mine = new PortHolders<true>();
  // What this endpoint (and its partner) publish already (Docker repeating the call): by host
  // port, and by container port for a range's previous choice. Looked up, not searched: a range
  // of thousands of ports asks once a port.
  const held = [...ep.portmap, ...(partner?.portmap ?? [])];
  const heldHostPorts = new Set(held.map((q) => `${q.proto}/${q.hostIp}/${q.hostPort}`));
  const heldByPort = new Map<string, PortBinding[]>();
  for (const q of held) {
    const k = `${q.proto}/${q.hostIp}/${q.port}`;
    const list = heldByPort.get(k);
    if (list) list.push(q);
    else heldByPort.set(k, [q]);
  }
  const inTheWay = (p: PortBinding, n: number) => (heldHostPorts.has(`${p.proto}/${p.hostIp}/${n}`) ? undefined : listenerInTheWay(listeners, p.proto, p.hostIp, n));
  // Fixed ports first, so a range never takes a port a fixed binding of this call asks for.
  const fixed = new Set(portmap.filter((p) => p.hostPort !== 0 && p.hostPortEnd <= p.hostPort));
  for (const p of fixed) {
    const held = taken.find(p.proto, p.hostPort, p.hostIp);
    if (held !== undefined) {
      const owner = held.what;
      // Named as Docker names it (`docker ps`), once the daemon has read the container's name.
      const container = state.endpoints[owner]?.container?.name;
      const on = held.hostIp === '' ? '' : ` on ${hostAddress(held.hostIp)}`;
      throw new DriverError(
        'LN_ERR_CONFLICT',
        `host port ${PROTO_NAME[p.proto] ?? p.proto}/${p.hostPort}${on} is already published by ${container === undefined ? '' : `container ${container}, `}endpoint ${owner.slice(0, 12)}`,
      );
    }
    const listener = inTheWay(p, p.hostPort);
    if (listener !== undefined) {
      throw new DriverError(
        'LN_ERR_PORT_IN_USE',
        `host port ${PROTO_NAME[p.proto] ?? p.proto}/${p.hostPort} on ${hostAddress(p.hostIp)} is in use: a program on the host listens on ` +
          `${listener.proto} ${withPort(listener.address, listener.port)}; stop it or publish another host port (nothing was published)`,
      );
    }
    mine.add(p.proto, p.hostPort, p.hostIp, true);
  }
  /** Where the last scan of a host range (by protocol, host address and range start) found its port. */
  const scannedTo = new Map<string, number>();
  for (const p of portmap) {
    if (fixed.has(p)) {
      out.push({ ...p, hostPortEnd: p.hostPort });
      continue;
    }
    const [lo, hi] = p.hostPort === 0 ? EPHEMERAL_PORTS : [p.hostPort, p.hostPortEnd];
    const previous = heldByPort.get(`${p.proto}/${p.hostIp}/${p.port}`)?.find((q) => q.hostPort >= lo && q.hostPort <= hi);
    const free = (n: number) => !taken.find(p.proto, n, p.hostIp) && !mine.find(p.proto, n, p.hostIp) && inTheWay(p, n) === undefined;
    let chosen = previous && free(previous.hostPort) ? previous.hostPort : 0;
    // A port found taken stays taken for the rest of the call (it only takes more): the next
    // scan of this protocol, host address and range start goes on from where the last one ended.
    const scan = `${p.proto}/${p.hostIp}/${lo}`;
    for (let n = Math.max(lo, scannedTo.get(scan) ?? lo); chosen === 0 && n <= hi; n++) {
      if (free(n)) {
        chosen = n;
        scannedTo.set(scan, n);
      }
    }
    if (chosen === 0) {
      throw new DriverError('LN_ERR_CONFLICT', `no free host port in ${lo}-${hi} for ${PROTO_NAME[p.proto] ?? p.proto}/${p.port}`);
    }
    mine.add(p.proto, chosen, p.hostIp, true);
    out.push({ ...p, hostPort: chosen, hostPortEnd: chosen });
  }
  return out;
}

/**
 * The other endpoints of `ep`'s network whose container Docker's API named and that publish a
 * fixed host port `portmap` asks for (same protocol and port, overlapping host address): the ones
 * worth asking Docker about before the call is refused. Pure.
 */
export function portRivals(portmap: readonly PortBinding[], state: State, ep: { readonly networkId: string; readonly endpointId: string }): EndpointState[] {
  const fixed = portmap.filter((p) => p.hostPort !== 0 && p.hostPortEnd <= p.hostPort);
  return Object.values(state.endpoints).filter(
    (o) =>
      o.networkId === ep.networkId &&
      o.endpointId !== ep.endpointId &&
      o.container !== undefined &&
      o.portmap.some((q) => fixed.some((p) => p.proto === q.proto && p.hostPort === q.hostPort && (p.hostIp === '' || q.hostIp === '' || p.hostIp === q.hostIp))),
  );
}

/** Whether two container ids name one container (Docker's API gives 64 hex, the log may hold a prefix). */
const sameContainer = (a: string, b: string) => a.length >= 12 && b.length >= 12 && (a.startsWith(b) || b.startsWith(a));

/**
 * The older endpoints of container `containerId` on `ep`'s network, other than `ep`: stale, since
 * Docker holds one endpoint per container and network (their teardown calls were lost, e.g. while
 * ledgernet was down), as `endpoint.deleted` events naming why. Pure.
 */
export function staleEndpoints(state: State, ep: EndpointState, containerId: string | undefined): NewEvent[] {
  if (containerId === undefined) return [];
  return Object.values(state.endpoints)
    .filter((o) => o.networkId === ep.networkId && o.endpointId !== ep.endpointId && o.container !== undefined && sameContainer(o.container.id, containerId))
    .map((o) => ({
      type: 'endpoint.deleted',
      data: {
        networkId: o.networkId,
        endpointId: o.endpointId,
        reason:
          `superseded by endpoint ${ep.endpointId.slice(0, 12)} of the same container ${o.container?.name ?? containerId.slice(0, 12)} on the same network: ` +
          'Docker holds one endpoint per container and network, so the older one is stale (its teardown calls were lost)',
      },
    }));
}

export interface GatewayRole {
  /** The family this endpoint publishes its ports in; undefined: both. */
  readonly family: 4 | 6 | undefined;
  /** The sandbox-mate that publishes the same ports in the other family: its host ports are shared, not taken. */
  readonly partner: EndpointState | null;
  /** Sandbox-mates whose role this call changes, as they become. */
  readonly mates: EndpointState[];
}

/**
 * Docker 28+ picks a container's IPv4 and IPv6 gateway endpoints apart and sends
 * ProgramExternalConnectivity to each, with the same ports; the remote shim does not say which
 * family a call is for. What it does say, and in which order, decides it: Docker updates the old
 * gateways before the new one, so the endpoints of the same container (sandbox) still programmed
 * when a call arrives are its current gateways. A call flagged `ipv6Elsewhere` comes to the IPv4
 * gateway: it publishes the IPv4 side of the ports, and a programmed sandbox-mate that published
 * IPv4 keeps only the IPv6 side (nothing, without an IPv6 address). A call without it while a
 * sandbox-mate publishes IPv4 comes to the IPv6 gateway: it publishes the IPv6 side, on the same
 * host ports, and the mate keeps the IPv4 side. An endpoint without an IPv6 address has no IPv6
 * side: its family stays undefined (as with one gateway). Docker 20.10 (one gateway, the old one
 * revoked before the new one is programmed) never meets any of this.
 * @throws DriverError `LN_ERR_INVALID_OPTION` when the IPv6 gateway has no IPv6 address.
 */
export function gatewayRole(state: State, ep: EndpointState, ipv6Elsewhere: boolean): GatewayRole {
  const holders = Object.values(state.endpoints).filter(
    // An empty sandbox key is unknown (a Join answered from the model), not a shared sandbox.
    (o) => o.endpointId !== ep.endpointId && !!ep.sandboxKey && o.sandboxKey === ep.sandboxKey && o.programmed && o.portmap.length > 0,
  );
  const only4 = (e: EndpointState) => (e.addressV6 === null ? undefined : 4);
  const v6 = holders.find((m) => m.portFamily === 6) ?? null;
  if (ipv6Elsewhere) {
    const mates = holders
      .filter((m) => m.portFamily !== 6)
      .map((m): EndpointState => (m.addressV6 === null ? { ...m, portmap: [] } : { ...m, portFamily: 6 }));
    return { family: only4(ep), partner: v6 ?? mates.find((m) => m.portFamily === 6) ?? null, mates };
  }
  const v4 = holders.find((m) => m.portFamily !== 6);
  if (v4 === undefined) return { family: v6 ? only4(ep) : undefined, partner: v6, mates: [] };
  if (ep.addressV6 === null) {
    throw new DriverError(
      'LN_ERR_INVALID_OPTION',
      `endpoint ${ep.endpointId.slice(0, 12)} is programmed as the container's IPv6 gateway (no no_proxy_6to4 while endpoint ${v4.endpointId.slice(0, 12)} ` +
        `publishes its ports over IPv4), but it has no IPv6 address: its network needs --ipv6`,
    );
  }
  return { family: 6, partner: v4, mates: v4.portFamily === undefined && v4.addressV6 !== null ? [{ ...v4, portFamily: 4 }] : [] };
}

/**
 * A binding on an IPv6 host address (`-p [::]:8080:80`, or a host_binding_ipv4 that is IPv6) needs
 * an IPv6 address on the endpoint: Docker's bridge driver would reach an IPv4-only container
 * through its userland proxy, which a network plugin does not have, so it is refused rather than
 * left unpublished.
 * @throws DriverError `LN_ERR_INVALID_OPTION` naming the binding.
 */
export function checkPortFamilies(portmap: readonly PortBinding[], ep: EndpointState): void {
  if (ep.addressV6 !== null) return;
  // The IPv6 loopback is served by the userland proxy, which forwards 6→4 as docker-proxy does.
  const v6 = portmap.find((p) => p.hostIp.includes(':') && !isProxiedHostIp(p.hostIp));
  if (v6 === undefined) return;
  throw new DriverError(
    'LN_ERR_INVALID_OPTION',
    `port ${PROTO_NAME[v6.proto] ?? v6.proto}/${v6.port} is published on the IPv6 address ${v6.hostIp}, but the container has no IPv6 address on this network ` +
      `(create the network with --ipv6, or publish on an IPv4 address)`,
  );
}

/**
 * The userland proxy serving the IPv6 loopback speaks TCP and UDP; Node has no SCTP sockets, so an
 * SCTP port on ::1 is refused by name rather than left unserved.
 * @throws DriverError `LN_ERR_INVALID_OPTION` naming the binding.
 */
export function checkProxiedPorts(portmap: readonly PortBinding[]): void {
  const sctp = portmap.find((p) => isProxiedHostIp(p.hostIp) && PROTO_NAME[p.proto] === 'sctp');
  if (sctp === undefined) return;
  throw new DriverError(
    'LN_ERR_INVALID_OPTION',
    `port sctp/${sctp.port} cannot be published on [${sctp.hostIp}]:${sctp.hostPort}: the IPv6 loopback is served by ledgernet's userland proxy, ` +
      `which forwards tcp and udp only (the kernel cannot NAT from ::1); publish it on 127.0.0.1 or on one of the host's IPv6 addresses`,
  );
}
