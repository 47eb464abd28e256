// The one way a Docker call waits for the kernel: append the intent, wait for the pass that read
// it, and if the kernel did not get there, append the compensating event and throw. What Docker
// is told is a fixed phrase per failure plus names; the kernel's own words (stderr) go to the
// log line (the error's cause) and to the recorded event (the compensation's reason).
import type { Logger } from 'pino';
import { DriverError, isDriverError, phraseOf } from '../errors.ts';
import type { Command } from '../events/domain/commands.ts';
import type { State, StoredEvent } from '../events/domain/types.ts';
import { describeAction } from '../reconciler/actions.ts';
import type { Failure } from '../reconciler/apply.ts';
import type { PassResult } from '../reconciler/loop.ts';
import { describeFailure, failureCode } from '../reconciler/outcome.ts';

export interface IntentDeps {
  readonly store: { execute(cmd: Command): Promise<StoredEvent[]>; readonly state: State };
  readonly reconciler: { requestPass(trigger: string): Promise<PassResult> };
  readonly log: Logger;
  /** How long a Docker call waits for the kernel before it is refused and rolled back. */
  readonly applyTimeoutMs: number;
}

export interface KernelWait {
  /** The pass trigger (the Docker method). */
  readonly trigger: string;
  /** Which failures of a pass concern this call. */
  readonly concerns: (f: Failure) => boolean;
  /** What Docker is told first, e.g. `could not set up bridge lnb-…`. */
  readonly what: string;
  /** The compensating command, given the full reason; null when nothing is to be undone. */
  readonly compensate: ((reason: string) => Command) | null;
}

/** Converges after the answer (deletes are slow and Docker need not wait); failures are logged. */
export function background(deps: IntentDeps, trigger: string): void {
  deps.reconciler.requestPass(trigger).catch((e: unknown) => deps.log.warn({ err: e, trigger }, 'background reconcile pass failed'));
}

/** Waits for a pass that read the intent, bounded by the apply timeout (`LN_ERR_TIMEOUT`). */
async function converge(deps: IntentDeps, trigger: string): Promise<PassResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DriverError('LN_ERR_TIMEOUT', `the kernel did not converge within ${deps.applyTimeoutMs} ms`)),
      deps.applyTimeoutMs,
    );
  });
  try {
    return await Promise.race([deps.reconciler.requestPass(trigger), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface Problem {
  readonly code: 'LN_ERR_APPLY' | 'LN_ERR_TIMEOUT';
  /** For Docker: fixed phrases and names. */
  readonly told: string;
  /** For the log and the recorded event: the kernel's own words. */
  readonly detail: string;
  readonly cause: unknown;
}

/** One fixed phrase per kind of failure, after the objects it hit. */
function toldOf(failures: readonly Failure[]): string {
  const byPhrase = new Map<string, string[]>();
  for (const f of failures) {
    const phrase = phraseOf(failureCode(f));
    byPhrase.set(phrase, [...(byPhrase.get(phrase) ?? []), describeAction(f.action)]);
  }
  return [...byPhrase].map(([phrase, actions]) => `${actions.join(', ')}: ${phrase}`).join('; ');
}

async function problemOf(deps: IntentDeps, a: KernelWait): Promise<Problem | null> {
  try {
    const failures = (await converge(deps, a.trigger)).failures.filter(a.concerns);
    if (failures.length === 0) return null;
    const told = toldOf(failures);
    const detail = failures.map(describeFailure).join('; ');
    return { code: 'LN_ERR_APPLY', told, detail, cause: new Error(detail) };
  } catch (e) {
    // A timeout is LN_ERR_TIMEOUT wherever it happens; its message is ours (no stderr in it).
    if (isDriverError(e) && e.code === 'LN_ERR_TIMEOUT') return { code: 'LN_ERR_TIMEOUT', told: e.message, detail: e.message, cause: e };
    const told = phraseOf(isDriverError(e) ? e.code : 'LN_ERR_INTERNAL');
    return { code: 'LN_ERR_APPLY', told, detail: (e as Error).message, cause: e };
  }
}

/**
 * Waits for the kernel to hold what this call needs. If it does not: appends the compensation
 * (so the desired state does not keep what Docker believes was never made), converges it, and
 * throws `LN_ERR_APPLY` (failures) or `LN_ERR_TIMEOUT`.
 */
export async function awaitKernel(deps: IntentDeps, a: KernelWait): Promise<void> {
  const problem = await problemOf(deps, a);
  if (!problem) return;
  if (a.compensate) {
    await deps.store.execute(a.compensate(problem.detail));
    await converge(deps, 'rollback').catch((e: unknown) => deps.log.warn({ err: e }, 'rollback pass failed'));
  }
  const kept = a.compensate ? '; nothing was kept' : '';
  throw new DriverError(problem.code, `${a.what}: ${problem.told}${kept}`, { cause: problem.cause });
}

/** Appends an intent, then waits for the kernel (see awaitKernel). */
export async function applyIntent(deps: IntentDeps, command: Command, a: KernelWait): Promise<StoredEvent[]> {
  const events = await deps.store.execute(command);
  await awaitKernel(deps, a);
  return events;
}

/** Failures that concern a network: its own objects and the global ones (hooks, chains). */
export function concernsNetwork(networkId: string): (f: Failure) => boolean {
  return ({ action: { owner: o } }) => o.networkId === networkId || (o.networkId === null && o.endpointId === null);
}

/** Failures that concern an endpoint: its own, and a foreign link holding its network's bridge name. */
export function concernsEndpoint(networkId: string, endpointId: string): (f: Failure) => boolean {
  return ({ action: a }) => a.owner.endpointId === endpointId || (a.kind === 'link.conflict' && a.owner.networkId === networkId);
}

/** Failures that concern an endpoint's published ports: its own and the global ones. */
export function concernsPorts(endpointId: string): (f: Failure) => boolean {
  return ({ action: { owner: o } }) => o.endpointId === endpointId || (o.networkId === null && o.endpointId === null);
}
