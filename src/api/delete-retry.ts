// Docker's empty-body retry (moby#39331) of a DeleteEndpoint cut off by a whole-daemon SIGKILL
// before its body was journaled. Docker only logs a DeleteEndpoint's error, so the answer changes
// nothing for Docker: it is `{}`. The endpoint it named, which the retry does not tell, is deleted
// by the left-endpoint rule (src/operator/left-endpoints.ts) a few seconds after its Leave.
import type { IntentDeps } from './intent.ts';

/** The supervisor's internal call for it (worker link only); src/supervisor/retries.ts spells it too. */
export const DELETE_RETRY = 'Ledgernet.DeleteRetry';

export async function answerDeleteRetry(deps: IntentDeps): Promise<unknown> {
  deps.log.warn(
    { method: 'NetworkDriver.DeleteEndpoint' },
    'empty-body retry of a call cut off before it was recorded: answered as done (Docker only logs its errors); the endpoint it named is deleted a few seconds after its Leave',
  );
  return {};
}
