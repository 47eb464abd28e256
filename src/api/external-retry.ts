// Docker's empty-body retry (moby#39331) of a ProgramExternalConnectivity whose first attempt was
// cut off by a supervisor SIGKILL before its body was journaled (RELIABILITY.md, "The window:
// accepted, not yet journaled"): the request journal cannot say which call it repeats, but the
// model and the calls the journal keeps (src/supervisor/journal.ts keptEntries) often can.
//
// Docker sends ProgramExternalConnectivity to a sandbox's gateway endpoint (never on an internal
// network), with the sandbox's labels as Options (they repeat its Join's portmap and exposed
// ports): right after its Join; after a Revoke of the same endpoint (Docker 28, when the IPv6
// gateway changes); or to the endpoint that takes over when the gateway endpoint leaves. Its retry
// comes within RETRY_WINDOW_MS of the first attempt. So the call repeated is one of the candidates:
// endpoints joined, not programmed, not lost, on a network that is not internal, whose Join or
// Revoke is younger than RECENT_MS. An endpoint that is not its sandbox's gateway can be a
// candidate too (Docker never programs it): that only makes the rule stricter.
//
// - an endpoint that left its container in that time and is not deleted yet: its container's
//   connectivity may be moving to an endpoint joined long ago, which no rule can name: refused;
// - every candidate's Join is known and publishes no port: whichever call it repeats, there is
//   nothing to program; the answer is `{}` (the endpoint is not marked programmed: that mark only
//   matters with ports);
// - exactly one candidate, its Join known: it is the call; done again with the Join's Options;
// - ports among several: it waits (retry-wait.ts) while the others' own calls (their
//   ProgramExternalConnectivity with its body, a Leave, a DeleteEndpoint) rule candidates out,
//   and is asked again among the candidates it had;
// - anything else (no candidate, a Join the journal no longer holds, ports among several after
//   RETRY_WAIT_MS): refused with an Err that says why. A wrong pick would publish ports on another
//   container's endpoint, or none where Docker believes they are.
// The supervisor does not ask when the dead supervisor's last answers include a
// ProgramExternalConnectivity (its reply may not have reached Docker: its endpoint is programmed,
// and another could then be the one candidate; journal.ts trailingAnswers).
import { lookup, type EndpointState, type State } from '../events/domain/types.ts';
import { short } from '../events/domain/decide.ts';
import type { Wait } from './retry-wait.ts';
import { toPortmap, type Json } from './wire.ts';

/**
 * The supervisor's internal call for it (worker link only; the supervisor refuses `Ledgernet.*`
 * from Docker's socket). src/supervisor/retries.ts spells the same name: the layers keep the two
 * rooms from importing each other.
 */
export const EXTERNAL_RETRY = 'Ledgernet.ExternalRetry';

/**
 * How long after a Join (or Revoke) its endpoint can still be the target of a retried
 * ProgramExternalConnectivity: Docker's retries end 30 s after the first attempt; with margin.
 * The supervisor keeps its journal's Joins, Leaves and Revokes as long (journal.ts KEEP_MS).
 */
export const RECENT_MS = 60_000;

/** A Join the supervisor's journal holds: Docker's body. */
export interface KnownJoin {
  readonly NetworkID: string;
  readonly EndpointID: string;
  readonly Options: Json;
}

/** A Leave or RevokeExternalConnectivity the journal holds. */
export interface KnownTeardown {
  readonly NetworkID: string;
  readonly EndpointID: string;
}

export type ExternalRetry =
  | { readonly kind: 'nothing'; readonly candidates: number }
  | { readonly kind: 'redo'; readonly body: KnownJoin }
  | { readonly kind: 'refuse'; readonly reason: string }
  | Wait;

const METHOD = 'NetworkDriver.ProgramExternalConnectivity';
const WINDOW = `the last ${RECENT_MS / 1000} s`;

/**
 * What the empty retry of a ProgramExternalConnectivity that no journal entry matches, received at
 * `now` (ms), can be answered with, given the Joins, Leaves and Revokes the journal kept (younger
 * than RECENT_MS); `among`: the candidates it had when asked first (asked again while it waits).
 */
export function externalRetry(state: State, now: number, joins: readonly KnownJoin[], teardowns: readonly KnownTeardown[], among?: ReadonlySet<string>): ExternalRetry {
  const revoked = new Set<string>();
  for (const t of teardowns) {
    const ep = lookup(state.endpoints, t.EndpointID);
    if (!ep || ep.networkId !== t.NetworkID) continue;
    if (!ep.joined) {
      // (asked again while it waits: a Leave since came after the retry, and only rules that endpoint out)
      if (among !== undefined) continue;
      return { kind: 'refuse', reason: `endpoint ${short(ep.endpointId)} left its container in ${WINDOW} and is not deleted yet, so Docker may be moving that container's external connectivity to an endpoint ledgernet cannot name` };
    }
    revoked.add(ep.endpointId);
  }
  const candidates = Object.values(state.endpoints).filter((ep) => isCandidate(state, ep, now, revoked) && (among === undefined || among.has(ep.endpointId)));
  if (candidates.length === 0) {
    return { kind: 'refuse', reason: `no endpoint was joined (or revoked) in ${WINDOW} without being programmed since, so ledgernet cannot tell which call this repeats` };
  }
  const known = new Map(joins.map((j) => [j.EndpointID, j]));
  const withPorts: string[] = [];
  for (const ep of candidates) {
    const j = known.get(ep.endpointId);
    if (!j || j.NetworkID !== ep.networkId) {
      return { kind: 'refuse', reason: `endpoint ${short(ep.endpointId)} may be the one (joined at ${ep.joinedAt ?? 'an unknown time'}) but the request journal no longer holds its Join, so its published ports are not known` };
    }
    if (publishes(j)) withPorts.push(short(ep.endpointId));
  }
  if (candidates.length === 1) return { kind: 'redo', body: known.get(candidates[0]!.endpointId)! };
  if (withPorts.length === 0) return { kind: 'nothing', candidates: candidates.length };
  return {
    kind: 'wait',
    candidates: candidates.map((ep) => ep.endpointId),
    reason: `${candidates.length} endpoints were joined (or revoked) in ${WINDOW} without being programmed, and ${withPorts.join(', ')} publish${withPorts.length === 1 ? 'es' : ''} ports, so ledgernet cannot tell which call this repeats`,
  };
}

function isCandidate(state: State, ep: EndpointState, now: number, revoked: ReadonlySet<string>): boolean {
  if (!ep.joined || ep.programmed || ep.lost || lookup(state.networks, ep.networkId)?.internal !== false) return false;
  if (revoked.has(ep.endpointId)) return true;
  return isRecent(ep.joinedAt, now);
}

/** An event time (`at`) less than RECENT_MS from `now` either way; an unknown one is not. */
export function isRecent(at: string | undefined, now: number): boolean {
  if (at === undefined) return false;
  const age = now - Date.parse(at);
  return age >= -RECENT_MS && age < RECENT_MS;
}

/** The Join's sandbox labels publish a port (malformed ones count as publishing: refuse rather than guess). */
function publishes(j: KnownJoin): boolean {
  try {
    return toPortmap(METHOD, j.Options).length > 0;
  } catch {
    return true;
  }
}

/**
 * The internal call's body, `{"joins": [Join bodies], "teardowns": [Leave and Revoke bodies]}`;
 * entries without string ids are left out (a Join left out can only make the rule stricter).
 */
export function knownCalls(body: Json): { joins: KnownJoin[]; teardowns: KnownTeardown[] } {
  const list = (key: string): Record<string, unknown>[] => {
    const v = body[key];
    return Array.isArray(v) ? v.filter((j): j is Record<string, unknown> => j !== null && typeof j === 'object' && !Array.isArray(j) && typeof j['NetworkID'] === 'string' && typeof j['EndpointID'] === 'string') : [];
  };
  const joins = list('joins').map((j) => {
    const o = j['Options'];
    return { NetworkID: j['NetworkID'] as string, EndpointID: j['EndpointID'] as string, Options: o !== null && typeof o === 'object' && !Array.isArray(o) ? (o as Json) : {} };
  });
  const teardowns = list('teardowns').map((j) => ({ NetworkID: j['NetworkID'] as string, EndpointID: j['EndpointID'] as string }));
  return { joins, teardowns };
}
