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
// - none, or several: refused with an Err that says why. A wrong pick would hand one container
//   another endpoint's veth.
// - a CreateEndpoint answered without its body (deferred-endpoint.ts) not yet used by a Join:
//   refused, since this Join may be the one that creates it.
// The supervisor does not ask when the dead supervisor's last answers include a Join (one may have
// been answered without its reply reaching Docker: its endpoint is joined, and another endpoint
// could then be the one candidate). Residual: a Join the dead supervisor could not journal (a full
// disk) and whose reply was lost is not seen by either rule.
import { short } from '../events/domain/decide.ts';
import { pendingDeferred, type EndpointState, type State } from '../events/domain/types.ts';
import { RECENT_MS, isRecent } from './external-retry.ts';

/** The supervisor's internal call for it (worker link only); src/supervisor/retries.ts spells it too. */
export const JOIN_RETRY = 'Ledgernet.JoinRetry';

export type JoinRetry =
  | { readonly kind: 'redo'; readonly body: { readonly NetworkID: string; readonly EndpointID: string; readonly SandboxKey: ''; readonly Options: Record<string, never> } }
  | { readonly kind: 'refuse'; readonly reason: string };

/** What the empty retry of a Join that no journal entry matches can be answered with at `now` (ms). */
export function joinRetry(state: State, now: number): JoinRetry {
  // A CreateEndpoint answered without its body creates its endpoint at its Join, which could be this one.
  const deferred = pendingDeferred(state, now);
  if (deferred > 0) {
    return { kind: 'refuse', reason: `${deferred} CreateEndpoint call(s) answered after a crash without their body are not joined yet, and this could be the Join of one, so ledgernet cannot tell which call this repeats` };
  }
  const candidates = Object.values(state.endpoints).filter((ep) => isCandidate(ep, now));
  if (candidates.length === 1) {
    const ep = candidates[0] as EndpointState;
    return { kind: 'redo', body: { NetworkID: ep.networkId, EndpointID: ep.endpointId, SandboxKey: '', Options: {} } };
  }
  if (candidates.length === 0) return { kind: 'refuse', reason: `no endpoint was created in the last ${RECENT_MS / 1000} s and not joined since, so ledgernet cannot tell which call this repeats` };
  return {
    kind: 'refuse',
    reason: `${candidates.length} endpoints were created in the last ${RECENT_MS / 1000} s and not joined since (${candidates.map((e) => short(e.endpointId)).join(', ')}), so ledgernet cannot tell which call this repeats`,
  };
}

function isCandidate(ep: EndpointState, now: number): boolean {
  return !ep.joined && !ep.lost && isRecent(ep.createdAt, now);
}
