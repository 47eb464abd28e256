import type { Logger } from 'pino';
import { isRetryable } from '../errors.ts';
import type { State } from '../events/domain/types.ts';
import type { FirewallBackend, Kernel, KernelSnapshot } from '../kernel/types.ts';
import type { DriftKind } from '../kernel/monitor.ts';
import { describeAction, type Action } from './actions.ts';
import { applyActions, type Failure } from './apply.ts';
import { desiredFromState } from './desired.ts';
import { describeFailure, failureCode } from './outcome.ts';
import { plan } from './plan.ts';

export interface PassResult {
  readonly trigger: string;
  readonly planned: readonly Action[];
  readonly applied: readonly Action[];
  readonly failures: readonly Failure[];
  readonly lost: readonly Action[];
  readonly durationMs: number;
}

export interface ReconcilerDeps {
  readonly kernel: Kernel;
  /** The durable desired state (events on disk). */
  readonly getState: () => State;
  readonly log: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  /** Records endpoints whose veth vanished while joined. */
  readonly onLost: (lost: readonly Action[]) => Promise<void>;
  /** Called after every pass that planned something (event recording, metrics). */
  readonly onPass?: (result: PassResult) => void;
  readonly intervalMs: number;
  /** The firewall backend (`serve --firewall`); the iptables one when not given. */
  readonly firewall?: FirewallBackend;
}

function expectedEchoes(actions: readonly Action[]): Map<string, Set<DriftKind>> {
  const out = new Map<string, Set<DriftKind>>();
  const add = (name: string, ...kinds: DriftKind[]) => {
    const set = out.get(name) ?? new Set<DriftKind>();
    for (const k of kinds) set.add(k);
    out.set(name, set);
  };
  for (const a of actions) {
    if (a.kind === 'link.delete') add(a.name, 'deleted');
    else if (a.kind === 'addr.del') add(a.dev, 'addr-deleted');
    else if (a.kind === 'bridge.create' || a.kind === 'veth.create' || a.kind === 'link.set' || a.kind === 'ifb.create') add(a.name, 'down', 'nomaster');
  }
  return out;
}

/** How long after a pass kernel notices are taken as its echo (ip monitor lags a little). */
const ECHO_MS = 300;

type Conflict = Extract<Action, { kind: 'link.conflict' }>;

/** The first retry of a retryable failure; each further failing pass doubles it. */
const BACKOFF_BASE_MS = 1_000;
/** Retries never wait longer than this (nor longer than the reconcile interval). */
const BACKOFF_MAX_MS = 60_000;

/** How long the timer waits after `failedPasses` passes in a row left retryable failures. */
export function backoffMs(failedPasses: number, intervalMs: number): number {
  return Math.min(BACKOFF_BASE_MS * 2 ** Math.max(0, failedPasses - 1), intervalMs, BACKOFF_MAX_MS);
}

/** Terminal failures of the last pass, and the desired state they failed against. */
interface Held {
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

function holdFailures(state: State, failures: readonly Failure[]): Held | null {
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

interface Waiter {
  readonly trigger: string;
  readonly resolve: (r: PassResult) => void;
  readonly reject: (e: unknown) => void;
}

/**
 * Runs one pass at a time. Requests that arrive while a pass runs are merged into the next
 * pass, which starts after they were made, so every caller sees a pass that read its intent.
 */
export class Reconciler {
  private readonly deps: ReconcilerDeps;
  private waiting: Waiter[] = [];
  private running: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private started = false;
  /** Passes in a row that left a retryable failure (the backoff exponent). */
  private failedPasses = 0;
  private held: Held | null = null;
  private passEnded = 0;
  private echoes = new Map<string, Set<DriftKind>>();
  /** The conflicts the last pass found (a foreign link holding a name we want), by object. */
  private conflicts = new Map<string, Conflict>();

  constructor(deps: ReconcilerDeps) {
    this.deps = deps;
  }

  /**
   * Starts the timer: a pass every `intervalMs`, sooner after retryable failures (backoff from
   * BACKOFF_BASE_MS, doubling, capped). Other passes (Docker's, the kernel's notices) run at once.
   */
  start(): void {
    if (this.started || this.deps.intervalMs <= 0) return;
    this.started = true;
    this.schedule(this.deps.intervalMs);
  }

  async stop(): Promise<void> {
    this.started = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.running) await this.running;
  }

  private schedule(ms: number): void {
    if (!this.started) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.requestPass('timer').catch((e: unknown) => this.deps.log.error({ err: e }, 'periodic reconcile failed'));
    }, ms);
  }

  /** After a pass: count retryable failures (for the backoff), keep the terminal ones, set the timer. */
  private settle(state: State, failures: readonly Failure[]): number {
    this.held = holdFailures(state, failures);
    this.failedPasses = failures.some((f) => isRetryable(failureCode(f))) ? this.failedPasses + 1 : 0;
    const next = this.failedPasses > 0 ? backoffMs(this.failedPasses, this.deps.intervalMs) : this.deps.intervalMs;
    this.schedule(next);
    return next;
  }

  /**
   * What a timer pass does not try again: actions that failed terminally against the same desired
   * state, and the other actions of an object the kernel refused (a new intent, or a pass for
   * Docker or a kernel notice, tries them again). The failed ones are reported again with their
   * failure, so callers and the recorded outcome still see them.
   */
  private heldBack(trigger: string, state: State, planned: readonly Action[]): { skip: Set<Action>; failures: Failure[] } {
    const held = this.held;
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

  /**
   * Whether a kernel notice is the echo of this reconciler's own apply: the pass that runs, or
   * ended moments ago, did exactly that to that link (created or changed it: it showed down or
   * without a master on the way; deleted it; deleted that address).
   */
  isEcho(name: string, kind: DriftKind): boolean {
    if (this.running === null && performance.now() - this.passEnded >= ECHO_MS) return false;
    return this.echoes.get(name)?.has(kind) ?? false;
  }

  /**
   * Why network `networkId` cannot be set up, as the last pass found: a link that is not ours
   * holds its bridge's name. Null when it is not in conflict.
   */
  conflictOf(networkId: string): string | null {
    for (const a of this.conflicts.values()) {
      if (a.owner.networkId === networkId && a.owner.endpointId === null) return a.detail ?? a.name;
    }
    return null;
  }

  /** A conflict is logged when it appears or changes, and when it is resolved; not on every pass. */
  private noteConflicts(planned: readonly Action[]): void {
    const next = new Map(planned.filter((a): a is Conflict => a.kind === 'link.conflict').map((a) => [`${a.name} ${a.owner.networkId} ${a.owner.endpointId}`, a]));
    for (const [key, a] of next) {
      if (this.conflicts.get(key)?.detail === a.detail) continue;
      this.deps.log.warn({ link: a.name, networkId: a.owner.networkId, endpointId: a.owner.endpointId }, `conflict: ${a.detail ?? a.name}`);
    }
    for (const [key, a] of this.conflicts) {
      if (next.has(key)) continue;
      this.deps.log.info({ link: a.name, networkId: a.owner.networkId, endpointId: a.owner.endpointId }, `conflict resolved: ${a.name} no longer blocks ledgernet`);
    }
    this.conflicts = next;
  }

  requestPass(trigger: string): Promise<PassResult> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ trigger, resolve, reject });
      this.running ??= this.drain();
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.waiting.length > 0) {
        const batch = this.waiting.splice(0);
        const trigger = [...new Set(batch.map((w) => w.trigger))].join(',');
        try {
          const r = await this.pass(trigger);
          for (const w of batch) w.resolve(r);
        } catch (e) {
          // The kernel could not even be read: try again like a retryable failure.
          this.failedPasses++;
          this.schedule(backoffMs(this.failedPasses, this.deps.intervalMs));
          for (const w of batch) w.reject(e);
        } finally {
          this.passEnded = performance.now();
        }
      }
    } finally {
      this.running = null;
    }
  }

  // Reading the kernel races with it changing (a device deleted between two commands of one
  // observe); one such failure must not fail every Docker call waiting on this pass: look again.
  private async observe(): Promise<KernelSnapshot> {
    try {
      return await this.deps.kernel.observe();
    } catch (e) {
      this.deps.log.warn({ err: e }, 'reading the kernel failed; reading it again');
      await new Promise((r) => setTimeout(r, 50));
      return this.deps.kernel.observe();
    }
  }

  private async pass(trigger: string): Promise<PassResult> {
    const t0 = performance.now();
    const snapshot = await this.observe();
    const state = this.deps.getState();
    const planned = plan(desiredFromState(state), snapshot, this.deps.firewall);
    this.noteConflicts(planned);
    if (planned.length > 0) this.echoes = expectedEchoes(planned);
    const held = this.heldBack(trigger, state, planned);
    const work = held.skip.size > 0 ? planned.filter((a) => !held.skip.has(a)) : planned;
    const done = work.length > 0 ? await applyActions(work, this.deps.kernel, this.deps.firewall) : { applied: [], failures: [] };
    const { applied } = done;
    const failures = [...done.failures, ...held.failures];
    const lost = planned.filter((a) => a.kind === 'endpoint.lost');
    if (lost.length > 0) await this.deps.onLost(lost);
    const result: PassResult = { trigger, planned, applied, failures, lost, durationMs: performance.now() - t0 };
    const nextMs = this.settle(state, failures);
    // A pass that only found the conflicts it logged above has nothing more to say.
    if (planned.some((a) => a.kind !== 'link.conflict')) {
      this.deps.log.info(
        {
          trigger,
          applied: applied.map(describeAction),
          failures: failures.map(describeFailure),
          lost: lost.map(describeAction),
          ms: Math.round(result.durationMs),
          ...(held.skip.size > 0 ? { heldBack: held.skip.size } : {}),
          ...(this.failedPasses > 0 && this.started ? { retryInMs: nextMs } : {}),
        },
        failures.length > 0 ? 'reconcile pass left failures' : 'reconcile pass converged',
      );
    }
    this.deps.onPass?.(result);
    return result;
  }
}
