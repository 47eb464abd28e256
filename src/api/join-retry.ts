// Docker's empty-body retry (moby#39331) of a Join cut off by a supervisor SIGKILL before its body
// was journaled (RELIABILITY.md, "The window: accepted, not yet journaled"). Join's answer (the
// container-side veth `SrcName`, the gateways) depends only on its endpoint, so once the endpoint
// is known the answer is. Docker sends Join right after CreateEndpoint answered, and its retry
// comes within RETRY_WINDOW_MS of the first attempt; the call repeated is therefore one of the
// candidates: endpoints created less than RECENT_MS ago, not joined, not lost.
//
// - exactly one candidate: it is the call; joined and answered as its own Join would be, with the
//   sandbox key unknown (`''`: the body that named it is gone; only Docker 28's split gateways
//   read it);
// - none: refused with an Err that says why;
// - several, or a CreateEndpoint answered without its body (deferred-endpoint.ts) not yet used by
//   a Join (this Join may be the one that creates it): it waits (retry-wait.ts) while the others'
//   own Joins, with their bodies, rule candidates and markers out; answered once one candidate and
//   no marker of then is left, refused with the reason if none is, or after RETRY_WAIT_MS. A
//   wrong pick would hand one container another endpoint's veth.
// A Join the dead supervisor answered just before it died (its `ans` line among the last; its reply
// may not have reached Docker, and this retry may be its) is a candidate too, as the supervisor
// tells (`answered`, those Joins' bodies): its endpoint while it is still joined to that sandbox
// and not programmed since. If this retry is not its, its container goes on (Docker programs its
// gateway endpoint next), which rules it out; if it is, it is answered with that Join's own body
// again (nothing changes). Residual: a Join the dead supervisor could not journal (a full disk)
// and whose reply was lost is not seen by either rule.
import { short } from '../events/domain/decide.ts';
import { DEFERRED_MS, lookup, type EndpointState, type State } from '../events/domain/types.ts';
import { RECENT_MS, isRecent } from './external-retry.ts';
import type { Wait } from './retry-wait.ts';

/** The supervisor's internal call for it (worker link only); src/supervisor/retries.ts spells it too. */
export const JOIN_RETRY = 'Ledgernet.JoinRetry';

/** A Join's body as the journal kept it. */
export interface JoinBody {
  readonly NetworkID: string;
  readonly EndpointID: string;
  readonly SandboxKey: string;
  readonly Options: Readonly<Record<string, unknown>>;
}

export type JoinRetry =
  | { readonly kind: 'redo'; readonly body: JoinBody }
  | { readonly kind: 'refuse'; readonly reason: string }
  | Wait;

/**
 * What the empty retry of a Join that no journal entry matches, received at `now` (ms), can be
 * answered with; `among`: the candidates it had when asked first (asked again while it waits).
 */
export function joinRetry(state: State, now: number, among?: ReadonlySet<string>, answered: readonly JoinBody[] = []): JoinRetry {
  const asked = (id: string) => among === undefined || among.has(id);
  const suspects = new Map(answered.filter((j) => isSuspect(state, j) && asked(j.EndpointID)).map((j) => [j.EndpointID, j]));
  const candidates = Object.values(state.endpoints).filter((ep) => (isCandidate(ep, now) || suspects.has(ep.endpointId)) && asked(ep.endpointId));
  const ids = candidates.map((e) => e.endpointId);
  // A CreateEndpoint answered without its body creates its endpoint at its Join, which could be this one.
  const deferred = (state.deferred ?? []).filter((at) => Date.parse(at) <= now && now - Date.parse(at) < DEFERRED_MS).length;
  if (candidates.length === 0) {
    if (deferred > 0) return { kind: 'refuse', reason: `${deferred} CreateEndpoint call(s) answered after a crash without their body are not joined yet, and this could be the Join of one, so ledgernet cannot tell which call this repeats` };
    return { kind: 'refuse', reason: `no endpoint was created in the last ${RECENT_MS / 1000} s and not joined since, so ledgernet cannot tell which call this repeats` };
  }
  if (deferred > 0) {
    return { kind: 'wait', candidates: ids, reason: `${deferred} CreateEndpoint call(s) answered after a crash without their body are not joined yet, and this could be the Join of one, so ledgernet cannot tell which call this repeats` };
  }
  if (candidates.length === 1) {
    const ep = candidates[0] as EndpointState;
    return { kind: 'redo', body: suspects.get(ep.endpointId) ?? { NetworkID: ep.networkId, EndpointID: ep.endpointId, SandboxKey: '', Options: {} } };
  }
  return {
    kind: 'wait',
    candidates: ids,
    reason: `${candidates.length} endpoints were created in the last ${RECENT_MS / 1000} s and not joined since (${ids.map(short).join(', ')}), so ledgernet cannot tell which call this repeats`,
  };
}

function isCandidate(ep: EndpointState, now: number): boolean {
  return !ep.joined && !ep.lost && isRecent(ep.createdAt, now);
}

/** A Join answered just before the crash whose endpoint is still where that Join put it, and not programmed since. */
function isSuspect(state: State, j: JoinBody): boolean {
  const ep = lookup(state.endpoints, j.EndpointID);
  return ep !== undefined && ep.networkId === j.NetworkID && ep.joined && ep.sandboxKey === j.SandboxKey && !ep.programmed && !ep.lost;
}

/** The internal call's body, `{"answered": [Join bodies]}`; entries that are not Join bodies are left out. */
export function answeredJoins(body: Readonly<Record<string, unknown>>): JoinBody[] {
  const list = body['answered'];
  if (!Array.isArray(list)) return [];
  return list.flatMap((j): JoinBody[] => {
    if (j === null || typeof j !== 'object' || Array.isArray(j)) return [];
    const r = j as Record<string, unknown>;
    const o = r['Options'];
    if (typeof r['NetworkID'] !== 'string' || typeof r['EndpointID'] !== 'string' || typeof r['SandboxKey'] !== 'string') return [];
    return [{ NetworkID: r['NetworkID'], EndpointID: r['EndpointID'], SandboxKey: r['SandboxKey'], Options: o !== null && typeof o === 'object' && !Array.isArray(o) ? (o as Record<string, unknown>) : {} }];
  });
}
