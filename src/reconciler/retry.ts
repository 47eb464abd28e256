// What the loop holds back and for how long: the backoff after retryable failures, terminal
// failures held until the desired state changes (kernel notices: notices.ts).
import { isRetryable } from '../errors.ts';
import type { State } from '../events/domain/types.ts';
import { describeAction, type Action } from './actions.ts';
import type { Failure } from './apply.ts';
import { failureCode } from './outcome.ts';

/** The first retry of a retryable failure; each further failing pass doubles it. */
const BACKOFF_BASE_MS = 1_000;
/** Retries never wait longer than this (nor longer than the reconcile interval). */
const BACKOFF_MAX_MS = 60_000;

/** How long the timer waits after `failedPasses` passes in a row left retryable failures. */
export function backoffMs(failedPasses: number, intervalMs: number): number {
  return Math.min(BACKOFF_BASE_MS * 2 ** Math.max(0, failedPasses - 1), intervalMs, BACKOFF_MAX_MS);
}

/** Terminal failures of the last pass, and the desired state they failed against. */
export interface Held {
  readonly networks: State['networks'];
  readonly endpoints: State['endpoints'];
  /** By action (describeAction). */
  readonly failures: ReadonlyMap<string, Failure>;
  /** Objects the kernel refused: their other actions would only fail after them. */
  readonly owners: ReadonlySet<string>;
}

function ownerKey(a: Action): string | null {
  const o = a.owner;
  return o.networkId === null && o.endpointId === null ? null : `${o.networkId}/${o.endpointId}`;
}

export function holdFailures(state: State, failures: readonly Failure[]): Held | null {
  const terminal = failures.filter((f) => !isRetryable(failureCode(f)));
  if (terminal.length === 0) return null;
  const refused = terminal.filter((f) => f.action.kind !== 'link.conflict').map((f) => ownerKey(f.action));
  return {
    networks: state.networks,
    endpoints: state.endpoints,
    failures: new Map(terminal.map((f) => [describeAction(f.action), f])),
    owners: new Set(refused.filter((k): k is string => k !== null)),
  };
}

/**
 * What a timer pass does not try again: actions that failed terminally against the same desired
 * state, and the other actions of an object the kernel refused (a new intent, or a pass for
 * Docker or a kernel notice, tries them again). The failed ones are reported again with their
 * failure, so callers and the recorded outcome still see them.
 */
export function heldBack(held: Held | null, trigger: string, state: State, planned: readonly Action[]): { skip: Set<Action>; failures: Failure[] } {
  const skip = new Set<Action>();
  const failures: Failure[] = [];
  if (trigger !== 'timer' || !held || held.networks !== state.networks || held.endpoints !== state.endpoints) return { skip, failures };
  for (const a of planned) {
    const f = held.failures.get(describeAction(a));
    const owner = ownerKey(a);
    if (f) failures.push({ action: a, message: f.message });
    if (f || (owner !== null && held.owners.has(owner))) skip.add(a);
  }
  return { skip, failures };
}
