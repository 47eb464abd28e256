// What happens after a pass, written once for the daemon (src/main.ts) and the CLI without one
// (src/operator/commands.ts): lost endpoints are recorded, failures are classified and recorded
// as a reconcile event, a failure that persists only once.
import type { ErrorCode } from '../errors.ts';
import type { Command } from '../events/domain/commands.ts';
import { byLedgernet } from '../events/domain/cause.ts';
import { namedAtMost } from '../events/domain/named.ts';
import type { Cause } from '../events/domain/types.ts';
import { kernelErrorCode } from '../kernel/error-codes.ts';
import { describeAction, type Action } from './actions.ts';
import type { Failure } from './apply.ts';

/** The code of a failed action: whether the loop retries it, and the phrase Docker is told. */
export function failureCode(f: Failure): ErrorCode {
  const binds = f.action.kind === 'proxy.open' || f.action.kind === 'port.reserve';
  if (binds && f.message.startsWith('EADDRINUSE')) return 'LN_ERR_PORT_IN_USE';
  if (binds && /^(EMFILE|ENFILE)/.test(f.message)) return 'LN_ERR_NO_DESCRIPTORS';
  // No such address on this host (no ::1: IPv6 off), or no permission: trying again does not help.
  if (binds && /^(EADDRNOTAVAIL|EACCES|EAFNOSUPPORT)/.test(f.message)) return 'LN_ERR_KERNEL_REFUSED';
  return f.action.kind === 'link.conflict' ? 'LN_ERR_LINK_CONFLICT' : kernelErrorCode(f.message);
}

/** A failure with its full detail (the kernel's stderr): for the log and the recorded event. */
export function describeFailure(f: Failure): string {
  return `${describeAction(f.action)}: ${f.message}`;
}

/** What a pass (`PassResult`) says that is recorded. */
interface PassOutcome {
  readonly trigger: string;
  readonly applied: readonly Action[];
  readonly failures: readonly Failure[];
}

interface OutcomeStore {
  execute(cmd: Command, cause: Cause): Promise<unknown>;
}

/** Records endpoints whose veth vanished while joined (`ReconcilerDeps.onLost`). */
export function markLost(store: OutcomeStore): (lost: readonly Action[]) => Promise<void> {
  return async (lost) => {
    for (const a of lost) {
      if (a.owner.endpointId) await store.execute({ type: 'MarkLost', endpointId: a.owner.endpointId, reason: a.detail ?? a.reason }, byLedgernet('reconciler'));
    }
  };
}

/**
 * Records the outcome of passes as `RecordReconcile` events. A failure that persists is recorded
 * once, not on every pass (the log and the audit stream would grow by one event per tick); what
 * changed in the kernel always is.
 */
export class OutcomeRecorder {
  private readonly store: OutcomeStore;
  private lastFailures = '';
  constructor(store: OutcomeStore) {
    this.store = store;
  }

  /** Resolves once the event is durable; null when there is nothing new to record. */
  record(r: PassOutcome): Promise<unknown> | null {
    const failures = r.failures.map(describeFailure);
    // In any order: a pass that held back terminal failures lists them after the others.
    const failureKey = [...failures].sort().join('\n');
    const sameFailures = failureKey === this.lastFailures;
    this.lastFailures = failureKey;
    if (r.applied.length === 0 && sameFailures) return null;
    return this.store.execute(
      { type: 'RecordReconcile', trigger: r.trigger, actions: namedAtMost(r.applied.map(describeAction)), failures: namedAtMost(failures) },
      byLedgernet('reconciler'),
    );
  }
}
