// What the loop holds back and for how long: the backoff after retryable failures, terminal
// failures held until the desired state changes, and the kernel notices that are the echo of the
// loop's own apply.
import { isRetryable } from '../errors.ts';
import type { State } from '../events/domain/types.ts';
import type { DriftKind } from '../kernel/monitor.ts';
import { describeAction, type Action } from './actions.ts';
import type { Failure } from './apply.ts';
import { failureCode } from './outcome.ts';

export function expectedEchoes(actions: readonly Action[]): Map<string, Set<DriftKind>> {
  const out = new Map<string, Set<DriftKind>>();
  const add = (name: string, ...kinds: DriftKind[]) => {
    const set = out.get(name) ?? new Set<DriftKind>();
    for (const k of kinds) set.add(k);
    out.set(name, set);
  };
  for (const a of actions) {
    // A link on its way out shows down and loses its addresses before it is gone.
    if (a.kind === 'link.delete') add(a.name, 'deleted', 'down', 'nomaster', 'addr-deleted');
    else if (a.kind === 'addr.del') add(a.dev, 'addr-deleted');
    else if (a.kind === 'bridge.create' || a.kind === 'veth.create' || a.kind === 'link.set' || a.kind === 'ifb.create') add(a.name, 'down', 'nomaster');
    if ('replaces' in a) for (const name of a.replaces ?? []) add(name, 'deleted', 'down', 'nomaster', 'addr-deleted');
  }
  return out;
}

/** How long after a pass kernel notices are taken as its echo (ip monitor lags a little). */
export const ECHO_MS = 300;

export type Conflict = Extract<Action, { kind: 'link.conflict' }>;

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

export function ownerKey(a: Action): string | null {
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
