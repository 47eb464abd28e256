import type { Logger } from 'pino';
import { isRetryable } from '../errors.ts';
import { lookup, type State } from '../events/domain/types.ts';
import { namedAtMost } from '../events/domain/named.ts';
import type { FirewallBackend, Kernel, KernelSnapshot } from '../kernel/types.ts';
import { defaultFirewall, isFirewallChange, isProxyChange, isReserveChange, type ProxyPort, type ReservePort } from '../kernel/index.ts';
import type { DriftKind } from '../kernel/monitor.ts';
import { actionKey, describeAction, isConflict, isSysctl, type Action, type Conflict } from './actions.ts';
import { afterActions, applyActions, type Failure } from './apply.ts';
import { ClusterStep } from './cluster-step.ts';
import type { VxlanChange } from '../kernel/index.ts';
import { backoffMs, heldBack, holdFailures, type Held } from './retry.ts';
import { Echoes, judgeNotice, type Verdict } from './notices.ts';
import { iccProblem, type IccProblem } from './bridge-filtering.ts';
import { forwardingProblem, planIpv6Forwarding, type ForwardingProblem } from './forwarding.ts';
import { describeFailure, failureCode } from './outcome.ts';
import { desiredProxies, planProxies } from './proxies.ts';
import { ReservationPlanner } from './reservations.ts';
import { ScopedPlanner } from './scoped.ts';
import { driftRepaired, type LeftBehind } from './drift.ts';
import { ConntrackPlanner, flushKey } from './conntrack.ts';

export interface PassResult {
  readonly trigger: string;
  readonly planned: readonly Action[];
  readonly applied: readonly Action[];
  readonly failures: readonly Failure[];
  readonly lost: readonly Action[];
  readonly durationMs: number;
  /** How many times this pass read the whole kernel (0: it planned against the model). */
  readonly fullReads?: number;
  /** It planned only the networks changed since the last pass (scoped.ts), against the model. */
  readonly scoped?: boolean;
  /** The seq of the desired state this pass planned (every intent up to it was read). */
  readonly seq: number;
  /** What the pass applied to cluster networks' VXLAN objects (cluster.ts); absent: nothing. */
  readonly cluster?: readonly VxlanChange[];
  /**
   * The applied actions that repaired drift someone else caused (drift.ts): what the pass's warn
   * line names and ledgernet_drift_repaired_total counts. Absent: driftRepaired(result) decides.
   */
  readonly repaired?: readonly Action[];
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
  /** This host's VTEP once known (cluster networks: their VXLAN objects converge after each pass); null: none. */
  readonly vtep?: () => string | null;
  /** The firewall backend (`serve --firewall`); the iptables one when not given. */
  readonly firewall?: FirewallBackend;
  /** The daemon's userland proxy (ports on ::1): its listeners converge with each pass. Absent: not planned. */
  readonly proxies?: ProxyPort;
  /** The daemon's reservations of published host ports: they converge with each pass. Absent: not planned. */
  readonly reservations?: ReservePort;
  /** Milliseconds on a monotonic clock (tests pass their own); performance.now() when not given. */
  readonly now?: () => number;
  /** IPv4 forwarding off under the networks (forwarding.ts), told when a full read finds it appear, change or go (metrics). */
  readonly onForwarding?: (problem: ForwardingProblem | null) => void;
  /** icc=false networks whose bridges the kernel does not filter (bridge-filtering.ts), told as `onForwarding`. */
  readonly onIcc?: (problem: IccProblem | null) => void;
  /** `serve --ipv6-forwarding`: a full read that finds IPv6 forwarding off under a network with IPv6 turns it on (forwarding.ts). */
  readonly ipv6Forwarding?: boolean;
}

/**
 * Docker's calls (and the rollback of one) plan against the model; everything else reads the
 * whole kernel: the repair timer, start-up, drift notices, the operator and docker-sync.
 */
function fromModel(trigger: string): boolean {
  return trigger.startsWith('NetworkDriver.') || trigger.startsWith('IpamDriver.') || trigger === 'rollback' || trigger === 'cluster';
}

interface Step {
  readonly state: State;
  readonly planned: readonly Action[];
  readonly applied: readonly Action[];
  readonly failures: readonly Failure[];
  /** The kernel refused some of the work (a conflict is not a refusal). */
  readonly refused: boolean;
  readonly heldBack: number;
  readonly cluster: readonly VxlanChange[];
  readonly scoped: boolean;
  /** The applied actions that repaired drift (drift.ts). */
  readonly repaired: readonly Action[];
  /** Some firewall change of this step's apply failed: the firewall is not the desired one yet. */
  readonly firewallFailed: boolean;
}

interface Waiter {
  readonly trigger: string;
  readonly resolve: (r: PassResult) => void;
  readonly reject: (e: unknown) => void;
}

/** The failures of a pass's first step that its second (planned on a fresh read) neither applied, failed again, nor planned no more. */
function unresolved(failures: readonly Failure[], again: Pick<Step, 'planned' | 'applied' | 'failures'>): Failure[] {
  if (failures.length === 0) return [];
  const key = (a: Action) => `${a.kind} ${actionKey(a)}`;
  const planned = new Set(again.planned.map(key));
  const settled = new Set([...again.applied, ...again.failures.map((f) => f.action)].map(key));
  return failures.filter((f) => planned.has(key(f.action)) && !settled.has(key(f.action)));
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
  private readonly echoes = new Echoes();
  /** Drift notices so far: a pass that saw one arrive while it ran leaves no model behind. */
  private drifts = 0;
  /**
   * Plans: in full (a read of the kernel, or no base to scope from), or only the networks changed
   * since the last pass (Docker's calls, against the model); its index of the desired state per
   * network also judges kernel notices.
   */
  private readonly planner = new ScopedPlanner();
  /** The reservations of published host ports, planned network by network as the planner does. */
  private readonly reservations = new ReservationPlanner();
  /** The conflicts the last pass found (a foreign link holding a name we want), by object. */
  private conflicts = new Map<string, Conflict>();
  /**
   * The kernel as the last pass left it (kernel/model.ts): Docker's calls plan against it and
   * write only their delta. Null when it cannot be trusted: before the first observe, and after
   * a pass whose apply failed (the kernel then holds what no model predicts).
   */
  private model: KernelSnapshot | null = null;
  /**
   * The kernel as the last pass left it, kept when the model is not (a drift notice, a failed
   * apply): what drift is judged against (drift.ts). Null before the first pass.
   */
  private left: LeftBehind | null = null;
  /** Cluster networks: their VXLAN objects converge after each pass. */
  private readonly clusterStep: ClusterStep;
  /** The connection-tracking entries each pass's change made stale (conntrack.ts). */
  private readonly conntrack = new ConntrackPlanner();
  /** ctnetlink could not be reached (no koffi or libc): said once, then no flush is tried. */
  private conntrackUnavailable = false;
  /** Passes that read the whole kernel, and passes that planned against the model (metrics, tests). */
  readonly reads = { full: 0, model: 0 };

  private readonly now: () => number;

  constructor(deps: ReconcilerDeps) {
    this.deps = deps;
    this.now = deps.now ?? (() => performance.now());
    this.clusterStep = new ClusterStep(() => deps.vtep?.() ?? null, deps.log);
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
   * Judges an `ip monitor` notice about a link we watch (notices.ts). Drift (a link the desired
   * state wants changed in a way this reconciler did not make) drops the model at once: the next
   * pass reads the kernel whatever its trigger, and a pass that runs now leaves no model behind.
   * The echo of a recent apply of ours, and changes to links no longer wanted, keep it.
   */
  noticed(name: string, kind: DriftKind): Verdict {
    const index = this.planner.index;
    index.advance(this.deps.getState());
    const verdict = judgeNotice(name, kind, { echo: (n, k) => this.echoes.has(n, k, this.now()), wanted: (n) => index.wantsHostLink(n) });
    if (verdict === 'drift') this.kernelChanged();
    return verdict;
  }

  /** The kernel changed in a way this reconciler did not make: the model is no longer trusted. */
  kernelChanged(): void {
    this.model = null;
    this.drifts++;
  }

  /** Some network's bridge is named `name` (its kernel notices are watched, whatever the name). */
  isBridge(name: string): boolean {
    const index = this.planner.index;
    index.advance(this.deps.getState());
    return index.isBridge(name);
  }

  /**
   * Why network `networkId` cannot be set up, as the last pass found: a link that is not ours
   * holds its bridge's name. Null when it is not in conflict.
   */
  conflictOf(networkId: string): string | null {
    for (const a of this.conflicts.values()) {
      // A route conflict does not keep the network from being set up: it is only reported.
      if (a.kind === 'link.conflict' && a.owner.networkId === networkId && a.owner.endpointId === null) return a.detail ?? a.name;
    }
    return null;
  }

  /** IPv4 or IPv6 forwarding off under the networks, as the last full read of the kernel found it; null: none. */
  forwarding: ForwardingProblem | null = null;

  /** Like a conflict, forwarding turned off is logged when it appears or changes, and when it is on again. */
  private noteForwarding(state: State, snapshot: KernelSnapshot): void {
    if (snapshot.forwardingOff === undefined || snapshot.routes === undefined) return; // the model: it knows neither
    const next = forwardingProblem(state, snapshot);
    if (next?.message === this.forwarding?.message) return;
    if (next) this.deps.log.warn({ devices: next.devices, ipv6Off: next.ipv6Off, networks: next.networks }, `forwarding: ${next.message}`);
    else {
      const was = this.forwarding;
      const families = [...(was !== null && was.devices.length > 0 ? ['IPv4'] : []), ...(was?.ipv6Off === true ? ['IPv6'] : [])].join(' and ');
      this.deps.log.info({ devices: was?.devices, ipv6Off: was?.ipv6Off }, `forwarding: ${families} forwarding is on again wherever ledgernet's networks need it`);
    }
    this.forwarding = next;
    this.deps.onForwarding?.(next);
  }

  /** icc=false networks whose bridges the kernel does not filter, as the last full read found them; null: none. */
  icc: IccProblem | null = null;

  /** As forwarding: logged when it appears or changes, and when it is enforced again. */
  private noteIcc(state: State, snapshot: KernelSnapshot): void {
    if (snapshot.bridgeNf === undefined || snapshot.routes === undefined) return; // the model: it does not know it
    const next = iccProblem(state, snapshot);
    if (next?.message === this.icc?.message) return;
    if (next) this.deps.log.warn({ networks: next.networks, settings: next.settings }, `icc: ${next.message}`);
    else this.deps.log.info({ networks: this.icc?.networks }, 'icc: icc=false is enforced again on every network that asks for it');
    this.icc = next;
    this.deps.onIcc?.(next);
  }

  /** A conflict is logged when it appears or changes, and when it is resolved; not on every pass. */
  private noteConflicts(planned: readonly Action[], routesRead: boolean): void {
    const next = new Map(planned.filter(isConflict).map((a) => [`${a.kind} ${actionKey(a)} ${a.owner.networkId} ${a.owner.endpointId}`, a]));
    // A pass planned against the model (no routes in it) says nothing about routes: its conflicts
    // stand, but only while their network does.
    const networks = this.deps.getState().networks;
    const gone = (a: Conflict) => a.owner.networkId !== null && lookup(networks, a.owner.networkId) === undefined;
    if (!routesRead) for (const [key, a] of this.conflicts) if (a.kind === 'route.conflict' && !gone(a)) next.set(key, a);
    const about = (a: Conflict) => (a.kind === 'link.conflict' ? { link: a.name } : { route: a.dst, dev: a.dev, found: a.found });
    for (const [key, a] of next) {
      if (this.conflicts.get(key)?.detail === a.detail) continue;
      this.deps.log.warn({ ...about(a), networkId: a.owner.networkId, endpointId: a.owner.endpointId }, `conflict: ${a.detail ?? actionKey(a)}`);
    }
    for (const [key, a] of this.conflicts) {
      if (next.has(key)) continue;
      const what = gone(a)
        ? `network ${(a.owner.networkId ?? '').slice(0, 12)} was removed`
        : a.kind === 'link.conflict'
          ? `${a.name} no longer blocks ledgernet`
          : `the route to ${a.dst} no longer goes around ${a.dev}`;
      this.deps.log.info({ ...about(a), networkId: a.owner.networkId, endpointId: a.owner.endpointId }, `conflict resolved: ${what}`);
    }
    this.conflicts = next;
  }

  /**
   * Deletes the connection-tracking entries this pass's change made stale (conntrack.ts), after
   * its firewall was written: a packet in between would make the old mapping again. Best effort,
   * as Docker's: a failure is logged and fails neither the pass nor a Docker call.
   */
  private async flushConntrack(state: State): Promise<void> {
    const { kernel, log } = this.deps;
    const { flushes, commit } = this.conntrack.plan(state, this.planner.index.all().map((d) => d.policy));
    commit();
    if (flushes.length === 0 || kernel.flushConntrack === undefined || this.conntrackUnavailable) return;
    const what = flushes.map(flushKey);
    try {
      const r = await kernel.flushConntrack(flushes);
      if (r.unavailable === true) {
        this.conntrackUnavailable = true;
        log.warn('conntrack: ctnetlink cannot be reached from this process (koffi or libc did not load): stale connection-tracking entries of published ports and removed endpoints are not deleted');
      } else if (r.deleted > 0) log.info({ flushed: what, deleted: r.deleted }, `conntrack: deleted ${r.deleted} stale connection-tracking entries`);
      else log.debug({ flushed: what }, 'conntrack: no stale connection-tracking entries');
    } catch (e) {
      log.warn({ err: e, flushed: what }, 'conntrack: could not delete stale connection-tracking entries');
    }
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
          this.echoes.passEnded(this.now());
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

  /**
   * Plans against `snapshot` (`scoped`: the model, and only what changed since the last pass if
   * that plans exactly the same), applies what is not held back, and keeps the model current.
   */
  private async step(trigger: string, state: State, snapshot: KernelSnapshot, drifts: number, scoped: boolean, before: LeftBehind | null): Promise<Step> {
    const { proxies, reservations } = this.deps;
    const firewall = this.deps.firewall ?? defaultFirewall;
    const scopedPlan = scoped ? this.planner.scoped(state, snapshot, firewall) : null;
    const kernelPlan = scopedPlan ?? this.planner.full(state, snapshot, firewall);
    // The listeners are read live each pass (they are in this process: no kernel read to save);
    // with no port on ::1 anywhere and no listener open, there is nothing to plan.
    const proxied = proxies && (this.planner.index.proxies || proxies.list().length > 0);
    const planned = [
      ...kernelPlan,
      ...(proxied ? planProxies(desiredProxies(state), proxies.list()) : []),
      // From the per-network policies the plan above derived; a pass planned against the model checks only the networks that changed.
      ...(reservations ? this.reservations.plan(this.planner.index.all().map((d) => d.policy), reservations, !scoped) : []),
      ...(this.deps.ipv6Forwarding === true ? planIpv6Forwarding(state, snapshot) : []),
    ];
    this.noteConflicts(planned, snapshot.routes !== undefined);
    this.noteIcc(state, snapshot);
    this.echoes.expect(planned, this.now());
    const held = heldBack(this.held, trigger, state, planned);
    const work = held.skip.size > 0 ? planned.filter((a) => !held.skip.has(a)) : planned;
    const done = work.length > 0 ? await applyActions(work, this.deps.kernel, this.deps.firewall, { proxies, reservations }) : { applied: [], failures: [] };
    // IPv6 forwarding as this pass left it (turned on by serve --ipv6-forwarding, or not).
    const forwarded = done.applied.some((a) => a.kind === 'sysctl.ipv6_forwarding');
    this.noteForwarding(state, forwarded ? { ...snapshot, ipv6Forwarding: { all: true, default: true } } : snapshot);
    // A conflict is reported as a failure, but the kernel was not asked for anything.
    // A proxy listener or reservation that could not be made, or a sysctl that could not be set, says nothing about the kernel model.
    const refused = done.failures.some((f) => f.action.kind !== 'link.conflict' && !isSysctl(f.action) && !isProxyChange(f.action) && !isReserveChange(f.action));
    // Drift: the objects the kernel holds otherwise than the last pass left them (drift.ts).
    const repaired = driftRepaired({ trigger, applied: done.applied }, { before, found: snapshot });
    const after = afterActions(snapshot, done.applied, firewall);
    this.left = after === null ? null : { kernel: after, unsure: new Set(done.failures.map((f) => actionKey(f.action))) };
    // Drift noticed since the pass began is not in `snapshot`: the next pass reads the kernel.
    this.model = refused || this.drifts !== drifts ? null : after;
    this.planner.settle(this.model, planned, done.applied);
    const cluster = await this.clusterStep.run(trigger, state, snapshot.links);
    const firewallFailed = done.failures.some((f) => isFirewallChange(f.action));
    return { state, planned, applied: done.applied, failures: [...done.failures, ...held.failures], refused, heldBack: held.skip.size, cluster, scoped: scopedPlan !== null, repaired, firewallFailed };
  }

  private async pass(trigger: string): Promise<PassResult> {
    const t0 = performance.now();
    const cached = trigger.split(',').every(fromModel) ? this.model : null;
    this.reads[cached ? 'model' : 'full']++;
    let fullReads = cached ? 0 : 1;
    const drifts = this.drifts;
    // The desired state as the pass's callers made it, taken before the kernel is read: an intent
    // appended while the read runs waits for the next pass, whose trigger is its own (a timer pass
    // that created its veth would count it as drift repaired, and answer no one).
    const state = this.deps.getState();
    // Both steps judge drift against the kernel as the last pass left it.
    const before = this.left;
    let step = await this.step(trigger, state, cached ?? (await this.observe()), drifts, cached !== null, before);
    if (cached && step.refused) {
      // The model may have been wrong (the kernel changed in a way no notice told): read the
      // kernel and plan once more before anyone hears of a failure.
      this.deps.log.debug({ trigger, failures: step.failures.map(describeFailure) }, 'a pass planned against the model failed; reading the kernel');
      this.reads.full++;
      fullReads++;
      const again = await this.step(trigger, state, await this.observe(), drifts, false, before);
      // A failure of the first plan stands unless the second one resolved it: applied it, or
      // found nothing left to do for it (a link add that failed on a foreign link's name is then
      // that link's conflict, in the second plan's failures).
      step = {
        ...again,
        failures: [...again.failures, ...unresolved(step.failures, again)],
        applied: [...step.applied, ...again.applied],
        cluster: [...step.cluster, ...again.cluster],
        repaired: [...step.repaired, ...again.repaired],
      };
    }
    const { planned, applied, failures } = step;
    if (!step.firewallFailed) await this.flushConntrack(state);
    const lost = planned.filter((a) => a.kind === 'endpoint.lost');
    if (lost.length > 0) await this.deps.onLost(lost);
    const result: PassResult = {
      trigger,
      planned,
      applied,
      failures,
      lost,
      durationMs: performance.now() - t0,
      fullReads,
      seq: state.seq,
      ...(step.scoped ? { scoped: true } : {}),
      ...(step.cluster.length > 0 ? { cluster: step.cluster } : {}),
      repaired: step.repaired,
    };
    const nextMs = this.settle(state, failures);
    // Drift someone else caused (a link set down, a chain flushed) is said at warn, so an operator
    // at --log-level warn sees it; the convergence a Docker call asked for stays at info.
    const { repaired } = step;
    // A pass that only found the conflicts it logged above has nothing more to say.
    if (planned.some((a) => !isConflict(a))) {
      const why = failures.length > 0 ? 'reconcile pass left failures' : repaired.length > 0 ? 'reconcile pass repaired drift: ledgernet objects changed or removed by someone else were set right' : 'reconcile pass converged';
      this.deps.log[repaired.length > 0 ? 'warn' : 'info'](
        {
          trigger,
          ...(repaired.length > 0 ? { repaired: namedAtMost(repaired.map(describeAction)) } : {}),
          applied: namedAtMost(applied.map(describeAction)),
          failures: namedAtMost(failures.map(describeFailure)),
          lost: namedAtMost(lost.map(describeAction)),
          ms: Math.round(result.durationMs),
          ...(step.heldBack > 0 ? { heldBack: step.heldBack } : {}),
          ...(this.failedPasses > 0 && this.started ? { retryInMs: nextMs } : {}),
        },
        why,
      );
    }
    this.deps.onPass?.(result);
    return result;
  }
}
