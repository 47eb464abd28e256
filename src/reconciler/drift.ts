// Which of a pass's applied actions repaired drift: the one decision behind the metric
// ledgernet_drift_repaired_total and the pass's warn line (loop.ts).
import { HOOK_BEHIND_DOCKER } from '../kernel/index.ts';
import type { Action } from './actions.ts';

/**
 * The applied actions that repaired drift: a ledgernet object that differed from the desired
 * state (`drifted`), or one gone that a pass nobody asked for (timer, startup, kernel notice)
 * put back. Not Docker's own changes: a hook moved back because Docker inserted its rules above
 * it, objects of a container (`vanished`) or a network (`orphan`) Docker removed; nor what a
 * Docker call's own pass creates (its trigger is the call).
 */
export function driftRepaired(r: { readonly trigger: string; readonly applied: readonly Action[] }): Action[] {
  const unasked = r.trigger.split(',').every((t) => t === 'timer' || t === 'startup' || t === 'kernel');
  const key = (a: { table: string; from: string; rule: string }) => `${a.table} ${a.from} ${a.rule}`;
  const moved = new Set(r.applied.flatMap((a) => (a.kind === 'hook.delete' && a.detail === HOOK_BEHIND_DOCKER ? [key(a)] : [])));
  return r.applied.filter((a) => {
    if ((a.kind === 'hook.delete' || a.kind === 'hook.add') && moved.has(key(a))) return false;
    return a.reason === 'drifted' || (a.reason === 'missing' && unasked);
  });
}
