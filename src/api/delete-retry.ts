// Docker's empty-body retry (moby#39331) of a DeleteEndpoint cut off by a whole-daemon SIGKILL
// before its body was journaled. Docker only logs a DeleteEndpoint's error, so the retry's answer
// changes nothing for Docker; what matters is the endpoint it named, which stays in ledgernet
// (its veth, its rules) until the abandoned-endpoint rule removes it a minute later. Meanwhile,
// left and not deleted, it is a candidate for the answers to other cut-off calls (a Join's, a
// ProgramExternalConnectivity's: src/api/join-retry.ts, external-retry.ts) and makes them
// refuse as ambiguous.
//
// Which endpoint it was cannot be told from the retry. But Docker sends DeleteEndpoint right
// after the Leave of the same endpoint (ms later; only a sandbox Refresh joins a left endpoint
// again, at once), so an endpoint that left before the crash and is still not deleted LEFT_MS
// later has lost its DeleteEndpoint: the retry is answered `{}`, and LEFT_MS after it every such
// endpoint is deleted as Docker asked (a DeleteEndpoint Docker still sends for one is answered
// `{}` as for any endpoint already gone). An endpoint deleted without a Leave (Docker could not
// apply a CreateEndpoint's answer) is left to the abandoned-endpoint rule, as before.
import { short } from '../events/domain/decide.ts';
import { type State } from '../events/domain/types.ts';
import { background, type IntentDeps } from './intent.ts';

/** The supervisor's internal call for it (worker link only); src/supervisor/retries.ts spells it too. */
export const DELETE_RETRY = 'Ledgernet.DeleteRetry';

/** How long after its Leave an endpoint not deleted is taken to have lost its DeleteEndpoint. */
export const LEFT_MS = 5_000;

/**
 * Endpoints whose DeleteEndpoint was lost, as seen at `now` (ms) for a retry that came at
 * `retriedAt`: left before the retry (so before the crash that cut it), at least LEFT_MS ago, not
 * joined since. Pure.
 */
export function leftUndeleted(state: State, retriedAt: number, now: number): { networkId: string; endpointId: string }[] {
  return Object.values(state.endpoints)
    .filter((ep) => {
      if (ep.joined || ep.leftAt === undefined) return false;
      const left = Date.parse(ep.leftAt);
      return left <= retriedAt && now - left >= LEFT_MS;
    })
    .map((ep) => ({ networkId: ep.networkId, endpointId: ep.endpointId }));
}

/** Answers the retry `{}` and deletes, LEFT_MS later, the endpoints whose DeleteEndpoint was lost. */
export async function answerDeleteRetry(deps: IntentDeps): Promise<unknown> {
  const retriedAt = Date.now();
  deps.log.warn(
    { method: 'NetworkDriver.DeleteEndpoint' },
    `empty-body retry of a call cut off before it was recorded: answered as done (Docker only logs its errors); endpoints that left before it and are still not deleted ${LEFT_MS / 1000} s after their Leave are deleted then`,
  );
  setTimeout(() => {
    void sweep(deps, retriedAt).catch((e: unknown) => deps.log.error({ err: e }, 'deleting the endpoints whose DeleteEndpoint was lost failed; the abandoned-endpoint rule removes them later'));
  }, LEFT_MS).unref();
  return {};
}

async function sweep(deps: IntentDeps, retriedAt: number): Promise<void> {
  const lost = leftUndeleted(deps.store.state, retriedAt, Date.now());
  let deleted = 0;
  for (const ep of lost) {
    const events = await deps.store.execute({ type: 'DeleteEndpoint', networkId: ep.networkId, endpointId: ep.endpointId });
    if (events.length === 0) continue;
    deleted += 1;
    deps.log.warn({ endpoint: short(ep.endpointId), network: short(ep.networkId) }, `endpoint deleted: it left its container more than ${LEFT_MS / 1000} s ago and its DeleteEndpoint was cut off by a crash`);
  }
  if (deleted > 0) background(deps, 'lost DeleteEndpoint');
}
