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
// The supervisor does not ask when the dead supervisor's last answers include a Join (one may have
// been answered without its reply reaching Docker: its endpoint is joined, and another endpoint
// could then be the one candidate). Residual: a Join the dead supervisor could not journal (a full
// disk) and whose reply was lost is not seen by either rule.
import { short } from '../events/domain/decide.ts';
import { DEFERRED_MS, type EndpointState, type State } from '../events/domain/types.ts';
import { RECENT_MS, isRecent } from './external-retry.ts';
import type { Wait } from './retry-wait.ts';

/** The supervisor's internal call for it (worker link only); src/supervisor/retries.ts spells it too. */
export const JOIN_RETRY = 'Ledgernet.JoinRetry';

export type JoinRetry =
  | { readonly kind: 'redo'; readonly body: { readonly NetworkID: string; readonly EndpointID: string; readonly SandboxKey: ''; readonly Options: Record<string, never> } }
  | { readonly kind: 'refuse'; readonly reason: string }
  | Wait;

/**
 * What the empty retry of a Join that no journal entry matches, received at `now` (ms), can be
 * answered with; `among`: the candidates it had when asked first (asked again while it waits).
 */
export function joinRetry(state: State, now: number, among?: ReadonlySet<string>): JoinRetry {
  const candidates = Object.values(state.endpoints).filter((ep) => isCandidate(ep, now) && (among === undefined || among.has(ep.endpointId)));
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
    return { kind: 'redo', body: { NetworkID: ep.networkId, EndpointID: ep.endpointId, SandboxKey: '', Options: {} } };
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
