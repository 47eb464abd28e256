// The host ports the daemon holds, desired and planned. Every tcp/udp host address and port a
// DNAT rule publishes is held by a socket of the daemon (kernel/reservations/), as Docker's bridge
// driver holds each port it maps. They are derived from the same firewall policy as the DNAT
// rules, so they follow their life exactly: held once a ProgramExternalConnectivity is applied,
// released at RevokeExternalConnectivity, DeleteEndpoint, network removal or a lost endpoint. None
// where no DNAT rule is written: a family in the `routed` gateway mode (Docker maps no host port
// there either), an --internal network, a port on ::1 (the userland proxy's listener holds it).
// SCTP is not held: Node has no SCTP sockets.
// Docker's calls plan them too: from scratch that costs ~2 ms at 2,000 published ports, so the
// daemon's passes go through ReservationPlanner, which follows the networks and endpoints that
// changed and checks only their ports; a pass that reads the whole kernel checks every port.
import { reservationName, type ReserveChange, type Reservation, type ReservePort, type ReserveSpec } from '../kernel/index.ts';
import type { FirewallNetworkPolicy, PortForward } from '../kernel/types.ts';
import { byKey } from './desired.ts';

export interface DesiredReservation {
  readonly name: string;
  readonly spec: ReserveSpec;
  readonly owner: { readonly networkId: string; readonly endpointId: string };
  /** Where its DNAT rule sends the port (`10.0.0.2:80`): said in plans and errors. */
  readonly to: string;
}

const byName = byKey((r: { readonly name: string }) => r.name);

/** The reservations of one forward: a forward on every address of its family (`''`) on that family's wildcard (`every`), any other on its address; one per port of a range. */
function forwardHeld(networkId: string, f: PortForward, every: string): DesiredReservation[] {
  if (f.proto === 'sctp') return [];
  const out: DesiredReservation[] = [];
  const hostIp = f.hostIp === '' ? every : f.hostIp;
  const ip = f.ip.includes(':') ? `[${f.ip}]` : f.ip;
  for (let port = f.hostPorts[0]; port <= f.hostPorts[1]; port++) {
    const spec: ReserveSpec = { proto: f.proto, hostIp, hostPort: port };
    out.push({ name: reservationName(spec), spec, owner: { networkId, endpointId: f.endpointId }, to: `${ip}:${f.port + port - f.hostPorts[0]}` });
  }
  return out;
}

/** A network's forwards with the wildcard of their family: IPv4 (`0.0.0.0`) and IPv6 (`::`, IPv6 only). */
function forwardsOf(n: FirewallNetworkPolicy): [PortForward, string][] {
  return [...n.forwards.map((f): [PortForward, string] => [f, '0.0.0.0']), ...(n.nat6?.forwards ?? []).map((f): [PortForward, string] => [f, '::'])];
}

/**
 * Of the reservations asking for one name, the one that holds it: split gateways (Docker 28+)
 * publish a port on every address from two endpoints, one per family, so both ask for it; the
 * lowest network and endpoint id (then target) holds it, whatever the order they are met in.
 */
function holder(candidates: readonly DesiredReservation[]): DesiredReservation | undefined {
  const key = (r: DesiredReservation) => `${r.owner.networkId}/${r.owner.endpointId} ${r.to}`;
  return candidates.reduce<DesiredReservation | undefined>((best, r) => (best === undefined || key(r) < key(best) ? r : best), undefined);
}

/** A reservation for each tcp/udp host address and port the networks' DNAT rules publish, one per name. Pure; sorted by name. */
export function desiredReservations(networks: readonly FirewallNetworkPolicy[]): DesiredReservation[] {
  const byNames = new Map<string, DesiredReservation[]>();
  for (const n of networks) for (const [f, every] of forwardsOf(n)) for (const r of forwardHeld(n.networkId, f, every)) byNames.set(r.name, [...(byNames.get(r.name) ?? []), r]);
  return [...byNames.values()].flatMap((c) => holder(c) ?? []).sort(byName);
}

const reserve = (d: DesiredReservation): ReserveChange => ({ kind: 'port.reserve', name: d.name, spec: d.spec, owner: d.owner, reason: 'missing', detail: `published to ${d.to}` });
const release = (h: Reservation): ReserveChange => ({ kind: 'port.release', name: h.name, owner: h.owner, reason: 'orphan' });

/** Releases what no endpoint publishes any more (sorted by name), then holds what is missing. Pure. */
export function planReservations(desired: readonly DesiredReservation[], held: readonly Reservation[]): ReserveChange[] {
  const want = new Set(desired.map((d) => d.name));
  const have = new Set(held.map((h) => h.name));
  return [...held.filter((h) => !want.has(h.name)).sort(byName).map(release), ...desired.filter((d) => !have.has(d.name)).map(reserve)];
}

type Forwards = readonly (readonly [PortForward, string])[];

/** One endpoint's forwards in a network, and the reservations they ask for. */
interface EndpointHeld {
  readonly forwards: Forwards;
  readonly held: readonly DesiredReservation[];
}

/** The same forwards, field by field (a network derived again makes new objects). */
function sameForwards(a: Forwards, b: Forwards): boolean {
  if (a.length !== b.length) return false;
  return a.every(([f, every], i) => {
    const [g, other] = b[i] ?? [];
    return g !== undefined && every === other && f.proto === g.proto && f.hostIp === g.hostIp && f.hostPorts[0] === g.hostPorts[0] && f.hostPorts[1] === g.hostPorts[1] && f.ip === g.ip && f.port === g.port;
  });
}

/** A network's forwards by endpoint, in their order. */
function byEndpoint(n: FirewallNetworkPolicy): Map<string, [PortForward, string][]> {
  const out = new Map<string, [PortForward, string][]>();
  for (const pair of forwardsOf(n)) {
    const list = out.get(pair[0].endpointId);
    if (list) list.push(pair);
    else out.set(pair[0].endpointId, [pair]);
  }
  return out;
}

/**
 * The daemon's plan of its reservations, pass after pass. What each network asks for is kept by
 * its policy object (an unchanged network is the same object) and, within a network derived
 * again, by endpoint (one whose forwards say the same is not derived again): a pass looks again
 * only at the names of the endpoints that changed, and at the names its last plan acted on (one
 * that failed is planned again). The plan equals planReservations(desiredReservations(networks),
 * held) as long as only its own plans change what is held; `full` (a pass that reads the whole
 * kernel) checks every name anyway.
 */
export class ReservationPlanner {
  private readonly networks = new Map<string, { readonly policy: FirewallNetworkPolicy; readonly endpoints: ReadonlyMap<string, EndpointHeld> }>();
  /** Name → the reservations asking for it (usually one). */
  private readonly wanted = new Map<string, DesiredReservation[]>();
  private suspects = new Set<string>();
  private primed = false;

  plan(networks: readonly FirewallNetworkPolicy[], host: Pick<ReservePort, 'list' | 'find'>, full: boolean): ReserveChange[] {
    this.advance(networks);
    let out: ReserveChange[];
    if (full || !this.primed) {
      out = planReservations([...this.wanted.values()].flatMap((c) => holder(c) ?? []).sort(byName), host.list());
    } else {
      const releases: ReserveChange[] = [];
      const reserves: ReserveChange[] = [];
      for (const name of [...this.suspects].sort()) {
        const want = holder(this.wanted.get(name) ?? []);
        const have = host.find(name);
        if (want && !have) reserves.push(reserve(want));
        else if (!want && have) releases.push(release(have));
      }
      out = [...releases, ...reserves];
    }
    this.primed = true;
    this.suspects = new Set(out.map((c) => c.name));
    return out;
  }

  /** Brings `wanted` to `networks`: the reservations of endpoints whose forwards came, went or changed are put in or taken out, their names suspects. */
  private advance(networks: readonly FirewallNetworkPolicy[]): void {
    const seen = new Set<string>();
    for (const n of networks) {
      seen.add(n.networkId);
      const before = this.networks.get(n.networkId);
      if (before?.policy === n) continue;
      const endpoints = new Map<string, EndpointHeld>();
      for (const [id, forwards] of byEndpoint(n)) {
        const old = before?.endpoints.get(id);
        if (old && sameForwards(old.forwards, forwards)) endpoints.set(id, old);
        else endpoints.set(id, { forwards, held: this.put(forwards.flatMap(([f, every]) => forwardHeld(n.networkId, f, every))) });
      }
      for (const [id, old] of before?.endpoints ?? []) if (endpoints.get(id) !== old) this.take(old.held);
      this.networks.set(n.networkId, { policy: n, endpoints });
    }
    if (seen.size === this.networks.size) return;
    for (const [id, { endpoints }] of this.networks) {
      if (seen.has(id)) continue;
      for (const e of endpoints.values()) this.take(e.held);
      this.networks.delete(id);
    }
  }

  private put(rs: readonly DesiredReservation[]): readonly DesiredReservation[] {
    for (const r of rs) {
      this.wanted.set(r.name, [...(this.wanted.get(r.name) ?? []), r]);
      this.suspects.add(r.name);
    }
    return rs;
  }

  private take(rs: readonly DesiredReservation[]): void {
    for (const r of rs) {
      const rest = (this.wanted.get(r.name) ?? []).filter((x) => x !== r);
      if (rest.length > 0) this.wanted.set(r.name, rest);
      else this.wanted.delete(r.name);
      this.suspects.add(r.name);
    }
  }
}
