// Which connection-tracking entries a pass made stale, as Docker's bridge driver judges it
// (clearConntrackEntries at Program/RevokeExternalConnectivity, moby/moby#8795): once a UDP or SCTP
// host port's DNAT rule came or went, the entries to that port (they keep the mapping of before:
// the old container, or the host itself); once an endpoint's address is gone (the endpoint
// removed, or its external connectivity revoked), the entries with that address in either
// direction (a stale DNAT to it, its masqueraded flows). TCP by port is left alone, as Docker
// does: a TCP flow needs a handshake, which the rules of now decide.
// Computed from what changed since the last pass whose firewall was written (the desired state
// of then and of now), not from desired-versus-kernel: an entry is not ledgernet's object, and
// nothing in the table says which mapping it holds is stale. So it is no action of the plan, and
// `reconcile --dry-run` (which changes nothing) shows none. A pass that changed nothing flushes
// nothing, and reads no table.
import type { EndpointState, State } from '../events/domain/types.ts';
import type { ConntrackFlush } from '../kernel/index.ts';
import type { FirewallNetworkPolicy, PortForward } from '../kernel/types.ts';
import { diffRecords } from './scope.ts';

/** The protocols whose entries to a host port go stale without a handshake to end them. */
const BY_PORT: ReadonlySet<PortForward['proto']> = new Set(['udp', 'sctp']);

/** A flush's identity: the same flush asked twice runs once. */
export const flushKey = (f: ConntrackFlush): string => (f.kind === 'port' ? `${f.proto} ${f.hostIp ?? '*'}:${f.port}` : f.address);

/** The UDP and SCTP host ports a network's DNAT rules publish (both families), by what each rule does: its flush. */
function publishedFlows(n: FirewallNetworkPolicy): Map<string, ConntrackFlush> {
  const out = new Map<string, ConntrackFlush>();
  for (const f of [...n.forwards, ...(n.nat6?.forwards ?? [])]) {
    if (!BY_PORT.has(f.proto)) continue;
    for (let port = f.hostPorts[0]; port <= f.hostPorts[1]; port++) {
      const flush: ConntrackFlush = f.hostIp === '' ? { kind: 'port', proto: f.proto, port } : { kind: 'port', proto: f.proto, port, hostIp: f.hostIp };
      out.set(`${flushKey(flush)} ${f.ip}:${f.port + port - f.hostPorts[0]}`, flush);
    }
  }
  return out;
}

const addressesOf = (ep: EndpointState): string[] => [ep.address, ep.addressV6].flatMap((a) => (a === null ? [] : [a.split('/')[0] ?? a]));

/** The addresses of endpoints removed between `before` and `after`, or whose external connectivity was revoked. */
export function goneAddresses(before: State['endpoints'], after: State['endpoints']): string[] {
  if (before === after) return [];
  const out: string[] = [];
  diffRecords(before, after, (_id, was, now) => {
    if (was === undefined) return;
    const revoked = now === undefined || (was.programmed && !now.programmed);
    for (const a of addressesOf(was)) if (revoked || !addressesOf(now ?? was).includes(a)) out.push(a);
  });
  return out;
}

/** What one network publishes, kept by its policy object (an unchanged network is the same object). */
interface Published {
  readonly policy: FirewallNetworkPolicy;
  readonly flows: ReadonlyMap<string, ConntrackFlush>;
}

/** The flushes of a change, and what the baseline becomes once they ran (`commit`). */
export interface ConntrackPlan {
  readonly flushes: readonly ConntrackFlush[];
  readonly commit: () => void;
}

/**
 * Pass after pass: the flushes the change since the last committed pass asks for. The first pass
 * only takes its baseline (nothing tells what changed before it: see RELIABILITY.md). A pass whose
 * firewall was not all written does not commit, so the next one that writes it flushes.
 */
export class ConntrackPlanner {
  private networks: ReadonlyMap<string, Published> | null = null;
  private endpoints: State['endpoints'] | null = null;

  plan(state: State, policies: readonly FirewallNetworkPolicy[]): ConntrackPlan {
    const before = this.networks;
    const next = new Map<string, Published>();
    const flushes = new Map<string, ConntrackFlush>();
    const add = (f: ConntrackFlush) => flushes.set(flushKey(f), f);
    for (const policy of policies) {
      const was = before?.get(policy.networkId);
      const now = was?.policy === policy ? was : { policy, flows: publishedFlows(policy) };
      next.set(policy.networkId, now);
      if (before === null || was === now) continue;
      for (const [k, f] of now.flows) if (!was?.flows.has(k)) add(f);
      for (const [k, f] of was?.flows ?? []) if (!now.flows.has(k)) add(f);
    }
    if (before !== null && this.endpoints !== null) {
      for (const [id, was] of before) if (!next.has(id)) for (const f of was.flows.values()) add(f);
      for (const a of goneAddresses(this.endpoints, state.endpoints)) add({ kind: 'address', address: a });
    }
    return {
      flushes: [...flushes.values()].sort((a, b) => (flushKey(a) < flushKey(b) ? -1 : flushKey(a) > flushKey(b) ? 1 : 0)),
      commit: () => {
        this.networks = next;
        this.endpoints = state.endpoints;
      },
    };
  }
}
