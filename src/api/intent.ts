// The one way a Docker call waits for the kernel: append the intent, wait for the pass that read
// it, and if the kernel did not get there, append the compensating event and throw. What Docker
// is told is a fixed phrase per failure plus names; the kernel's own words (stderr) go to the
// log line (the error's cause) and to the recorded event (the compensation's reason).
import type { Logger } from 'pino';
import { DriverError, isDriverError, phraseOf } from '../errors.ts';
import { byDocker } from '../events/domain/cause.ts';
import type { Command } from '../events/domain/commands.ts';
import { namedAtMost } from '../events/domain/named.ts';
import type { Cause, State, StoredEvent } from '../events/domain/types.ts';
import { describeAction, isSysctl } from '../reconciler/actions.ts';
import type { Failure } from '../reconciler/apply.ts';
import type { PassResult } from '../reconciler/loop.ts';
import { describeFailure, failureCode } from '../reconciler/outcome.ts';

export interface IntentDeps {
  readonly store: { execute(cmd: Command, cause: Cause, onDecided?: () => void): Promise<StoredEvent[]>; readonly state: State };
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
  /** Who the intent and its compensation are recorded as caused by; default: the Docker call `trigger`. */
  readonly cause?: Cause;
}

const causeOf = (a: KernelWait): Cause => a.cause ?? byDocker(a.trigger);

/**
 * Converges after the answer (deletes are slow and Docker need not wait); failures are logged.
 * The pass is asked for in the next turn of the loop, not this one: a pass runs synchronously up
 * to its first wait (the desired state, the plan, the firewall's render, the first kernel
 * requests: ~20 ms for a DeleteNetwork), and asked for here that would all run before the
 * caller's answer is written. Answers resolve in this turn's microtasks, so they go first.
 */
export function background(deps: IntentDeps, trigger: string): void {
  setImmediate(() => {
    deps.reconciler.requestPass(trigger).catch((e: unknown) => deps.log.warn({ err: e, trigger }, 'background reconcile pass failed'));
  });
}

/** Waits for the next pass, bounded by the apply timeout (`LN_ERR_TIMEOUT`). */
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

/**
 * How many objects Docker's answer names per kind of failure: a range of 1,000 ports that cannot
 * be held would otherwise be an answer of 1,000 names (~80 KB) that `docker run` prints whole.
 */
const NAMED_TO_DOCKER = 10;

/** One fixed phrase per kind of failure, after the objects it hit (the first few, the rest counted). */
function toldOf(failures: readonly Failure[]): string {
  const byPhrase = new Map<string, string[]>();
  for (const f of failures) {
    const phrase = phraseOf(failureCode(f));
    byPhrase.set(phrase, [...(byPhrase.get(phrase) ?? []), describeAction(f.action)]);
  }
  return [...byPhrase].map(([phrase, actions]) => `${namedAtMost(actions, NAMED_TO_DOCKER).join(', ')}: ${phrase}`).join('; ');
}

/** What went wrong for this call in the next pass (null: nothing), and the seq that pass read. */
async function problemOf(deps: IntentDeps, a: KernelWait): Promise<{ problem: Problem | null; seq: number }> {
  try {
    const pass = await converge(deps, a.trigger);
    const failures = pass.failures.filter(a.concerns);
    return { problem: failures.length === 0 ? null : applyProblem(failures), seq: pass.seq };
  } catch (e) {
    // A timeout is LN_ERR_TIMEOUT wherever it happens; its message is ours (no stderr in it).
    if (isDriverError(e) && e.code === 'LN_ERR_TIMEOUT') return { problem: { code: 'LN_ERR_TIMEOUT', told: e.message, detail: e.message, cause: e }, seq: Infinity };
    const told = phraseOf(isDriverError(e) ? e.code : 'LN_ERR_INTERNAL');
    return { problem: { code: 'LN_ERR_APPLY', told, detail: (e as Error).message, cause: e }, seq: Infinity };
  }
}

function applyProblem(failures: readonly Failure[]): Problem {
  const detail = namedAtMost(failures.map(describeFailure)).join('; ');
  return { code: 'LN_ERR_APPLY', told: toldOf(failures), detail, cause: new Error(detail) };
}

/**
 * Waits for the kernel to hold what this call needs. If it does not: appends the compensation
 * (so the desired state does not keep what Docker believes was never made), converges it, and
 * throws `LN_ERR_APPLY` (failures) or `LN_ERR_TIMEOUT`.
 */
export async function awaitKernel(deps: IntentDeps, a: KernelWait): Promise<void> {
  await settle(deps, a, (await problemOf(deps, a)).problem);
}

async function settle(deps: IntentDeps, a: KernelWait, problem: Problem | null): Promise<void> {
  if (!problem) return;
  if (a.compensate) {
    await deps.store.execute(a.compensate(problem.detail), causeOf(a));
    await converge(deps, 'rollback').catch((e: unknown) => deps.log.warn({ err: e }, 'rollback pass failed'));
  }
  const kept = a.compensate ? '; nothing was kept' : '';
  throw new DriverError(problem.code, `${a.what}: ${problem.told}${kept}`, { cause: problem.cause });
}

/**
 * Appends an intent and waits for the kernel (see awaitKernel). The kernel work starts once the
 * intent is decided, while its group commit is written: the call waits for the longer of the two,
 * not their sum. Docker is answered only when both are done. If the log refuses the intent, a
 * pass removes what was made for it (an orphan now) before the refusal is passed on.
 */
export async function applyIntent(deps: IntentDeps, command: Command, a: KernelWait): Promise<StoredEvent[]> {
  const early: { pass: Promise<{ problem: Problem | null; seq: number }> | null } = { pass: null };
  let events: StoredEvent[];
  try {
    events = await deps.store.execute(command, causeOf(a), () => {
      early.pass = problemOf(deps, a);
    });
  } catch (e) {
    if (early.pass) {
      await early.pass;
      await converge(deps, 'rollback').catch((err: unknown) => deps.log.warn({ err }, 'rollback pass failed'));
    }
    throw e;
  }
  // A pass that did not read the intent (a reconciler wired to the durable state only) says
  // nothing about it: wait for the next one.
  const seq = events.at(-1)?.seq ?? 0;
  const first = early.pass ? await early.pass : null;
  await settle(deps, a, (first && first.seq >= seq ? first : await problemOf(deps, a)).problem);
  return events;
}

/**
 * A failure of a global object every network needs (a hook, a chain). Not a host setting
 * (`sysctl.ipv6_forwarding`): a network works without it, as Docker's bridge driver only warns
 * when it cannot turn it on; its failure is reported by the pass and `status`, not to Docker.
 */
const sharedFailure = (a: Failure['action']): boolean => a.owner.networkId === null && a.owner.endpointId === null && !isSysctl(a);

/** Failures that concern a network: its own objects and the global ones (hooks, chains). */
export function concernsNetwork(networkId: string): (f: Failure) => boolean {
  return ({ action: a }) => a.owner.networkId === networkId || sharedFailure(a);
}

/** Failures that concern an endpoint: its own, and a foreign link holding its network's bridge name. */
export function concernsEndpoint(networkId: string, endpointId: string): (f: Failure) => boolean {
  return ({ action: a }) => a.owner.endpointId === endpointId || (a.kind === 'link.conflict' && a.owner.networkId === networkId);
}

/** Failures that concern an endpoint's published ports: its own and the global ones. */
export function concernsPorts(endpointId: string): (f: Failure) => boolean {
  return ({ action: a }) => a.owner.endpointId === endpointId || sharedFailure(a);
}
