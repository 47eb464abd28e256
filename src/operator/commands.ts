// The operator subcommands other than `serve`. They read the log themselves (no writer's lock),
// so they work whether or not the daemon runs.
import { access, constants, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { once } from 'node:events';
import { callDaemon } from './control-client.ts';
import type { PreviousWorker } from './control.ts';
import { operatorCause, statedBody, type OperatorNote } from './operator-cause.ts';
import { acquireHostGuard, acquireLock, hostInstance, decide, describeCause, emptyState, portsText, fold, labelled, loadState, LOG_FILE, LogParts, mismatchNote, namesFrom, newerError, openStore, PART_BYTES, poolUsage, readLogParts, loadSnapshot, readSnapshot, sameState, releaseCommand, SNAPSHOT_FILE, short, VETH_PREFIX, type Cause, type EventStore, type HostInstance, type PoolUsage, type ScanBase, type State, type StoredEvent } from '../events/index.ts';
import { ARCHIVE_DIR, listArchives } from '../events/log/archive.ts';
import { DriverError } from '../errors.ts';
import { deniedError, isDenied } from './denied.ts';
import { createKernel } from '../kernel/index.ts';
import type { KernelSnapshot } from '../kernel/types.ts';
import type { ProxyListener, Reservation } from '../kernel/index.ts';
import { desiredFromState, plan, planJson, Reconciler, renderPlan, type Action, type PassResult, type PlanItem, describeAction, describeItem, describeFailure, forwardingProblem, iccProblem, isConflict, markLost, OutcomeRecorder, planIpv6Forwarding } from '../reconciler/index.ts';
import { controlSocket, DEFAULTS, defaultHost, parseSwitch } from '../config.ts';
import { readSwitch } from './switches.ts';
import { DEFAULT_DOCKER_SOCKET, DockerApi } from './docker-api.ts';
import { dockerHolds, readDocker } from './docker-holds.ts';
import { firewallForCli } from './firewall-choice.ts';
import type { DockerLinkStatus } from './docker-name.ts';
import { table } from './table.ts';
import { describeQuery, EndpointFacts, eventFilter, FollowFilter, fromSince, parseSince, type EventQuery } from '../events/domain/event-filters.ts';
import { describeUnknown, seedFromState, UnknownBefore } from '../events/domain/archived-facts.ts';
import { countNamed } from '../events/domain/named.ts';
import { clusterPlan, recordedVtep, type ClusterView } from './cluster.ts';
import { clusterStatus, clusterTables } from './cluster-status.ts';
import { daemonHeld, proxiesTable, proxyPlan, proxyRows } from './proxy-status.ts';
import { reservationPlan, reservationRows, unheldLines } from './reservation-status.ts';
import { natsLine, type AuditStatus } from './nats-status.ts';
import { portRows, portsTable } from './port-status.ts';

const out = (s: string) => process.stdout.write(s);

/**
 * Refuses a state dir without an event log (a mistyped --state-dir or LEDGERNET_STATE_DIR, a
 * folder that is not there): read as an empty log, every ledgernet object on the host would be an
 * orphan to remove. Only `serve` makes a new state dir. A log this user may not read (the state
 * dir is root's, 0700) is refused as that, naming it; any other failure as it is. `read`: false for
 * a command that only asks the daemon (a --control-group member may pass the 0710 state dir to its
 * socket, not read the log).
 */
export async function requireLog(stateDir: string, read = true): Promise<void> {
  const path = join(stateDir, LOG_FILE);
  if (await logFound(path, read)) return;
  const running = await hostInstance().catch(() => null);
  throw new DriverError(
    'LN_ERR_CONFIG',
    `no event log at ${path}: ${stateDir} is not a ledgernet state dir; check --state-dir (env LEDGERNET_STATE_DIR, default ${DEFAULTS.stateDir})${runningHint(running, stateDir)}. ` +
      'Nothing was done (only ledgernet serve makes a new state dir)',
  );
}

/** Whether the event log is at `path` (and, with `read`, this user may read it); throws when that cannot be told. */
async function logFound(path: string, read: boolean): Promise<boolean> {
  try {
    if (!(await stat(path)).isFile()) return false;
    if (read) await access(path, constants.R_OK);
    return true;
  } catch (e) {
    if (isDenied(e)) throw deniedError(path, e);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw new DriverError('LN_ERR_LOG_IO', `cannot read the event log ${path}: ${(e as Error).message}`, { cause: e });
  }
}

/** Where the daemon running on this host keeps its log, when that is not `stateDir`: what a mistyped or forgotten --state-dir most likely meant. Pure. */
export function runningHint(running: HostInstance | null, stateDir: string): string {
  if (!running?.stateDir || resolve(running.stateDir) === resolve(stateDir)) return '';
  if (running.elsewhere) {
    return `; the ledgernet running on this host (in another pid namespace, e.g. the managed plugin) keeps its log in ${running.stateDir} as it sees it: on the host, that is its state mount's source (docker plugin inspect)`;
  }
  return `; the ledgernet daemon running on this host (pid ${running.pid}) uses --state-dir ${running.stateDir}`;
}

/** Colour only on a terminal, and never when NO_COLOR is set (no-color.org). */
function useColor(): boolean {
  return process.stdout.isTTY === true && !process.env['NO_COLOR'];
}

/**
 * The backend the daemon uses (see firewall-choice.ts), unless `--firewall` says otherwise; planned
 * with its --allow-direct-routing unless `--allow-direct-routing` (or the env) says otherwise.
 */
const cliFirewall = (stateDir: string, flag?: string, direct?: boolean, env = process.env) => firewallForCli(stateDir, flag, DEFAULT_DOCKER_SOCKET, direct, env);

/** Whether serve turns IPv6 forwarding on (LEDGERNET_IPV6_FORWARDING in `env`, else what serve recorded). */
const cliIpv6Forwarding = async (stateDir: string, env = process.env): Promise<boolean> =>
  parseSwitch(undefined, 'LEDGERNET_IPV6_FORWARDING', env['LEDGERNET_IPV6_FORWARDING']) ?? (await readSwitch(stateDir, 'ipv6Forwarding'));

/**
 * No environment: a pass without the daemon runs as serve recorded it runs, as one through the
 * daemon does; LEDGERNET_FIREWALL and the switches' variables only preview (--dry-run, status).
 */
const AS_SERVED: NodeJS.ProcessEnv = {};

/** What a pass of serve would do to IPv6 forwarding (forwarding.ts), from the full read `snapshot`. */
const ipv6ForwardingPlan = async (stateDir: string, state: State, snapshot: KernelSnapshot): Promise<Action[]> =>
  (await cliIpv6Forwarding(stateDir)) ? planIpv6Forwarding(state, snapshot) : [];

/**
 * `reconcile`: with --dry-run, what a pass would change (`firewall`, `allowDirectRouting`: as a
 * serve with that setting would); else one pass, through the daemon or alone.
 */
export async function runReconcile(o: { stateDir: string; dryRun: boolean; json: boolean; firewall?: string | undefined; allowDirectRouting?: boolean | undefined }): Promise<number> {
  // Previews of a serve with that setting: a real pass runs as serve does (through the daemon, or
  // as it recorded), so taking them there showed one thing with --dry-run and did another.
  const preview = [o.firewall === undefined ? null : '--firewall', o.allowDirectRouting === undefined ? null : '--allow-direct-routing'].filter((f) => f !== null);
  if (!o.dryRun && preview.length > 0) {
    throw new DriverError(
      'LN_ERR_CONFIG',
      `reconcile takes ${preview.join(' and ')} only with --dry-run, to plan as a serve with that setting would; a real reconcile runs as serve does (restart serve with the setting to change it). Nothing was done (see ledgernet --help)`,
    );
  }
  await requireLog(o.stateDir, o.dryRun);
  if (o.dryRun) {
    // No conntrack flush here: a pass flushes from what it changed since the last pass
    // (reconciler/conntrack.ts), which a dry run neither changes nor knows; entries are not planned objects.
    const state = await loadState(o.stateDir);
    const kernel = createKernel({ filterPrefixes: [VETH_PREFIX] });
    const snapshot = await kernel.observe();
    const held = await daemonHeld(o.stateDir);
    const actions = [
      ...plan(desiredFromState(state), snapshot, await cliFirewall(o.stateDir, o.firewall, o.allowDirectRouting)),
      ...(await clusterPlan(state, o.stateDir)),
      ...proxyPlan(state, held?.proxies ?? null),
      ...reservationPlan(state, held?.reservations ?? null),
      ...(await ipv6ForwardingPlan(o.stateDir, state, snapshot)),
    ];
    out(o.json ? `${JSON.stringify(planJson(actions))}\n` : renderPlan(actions, { color: useColor(), names: namesInState(state) }));
    // The host's settings: not in the plan nor its exit code, unless ledgernet is to change them
    // (serve --ipv6-forwarding: then the plan has sysctl.ipv6_forwarding, and this says why).
    for (const problem of [forwardingProblem(state, snapshot), iccProblem(state, snapshot)]) {
      if (problem) process.stderr.write(`ledgernet: warning: ${problem.message}\n`);
    }
    return actions.length === 0 ? 0 : 2;
  }
  const viaDaemon = (await callDaemon(o.stateDir, 'POST', '/reconcile')) as
    | { planned: Action[]; applied: string[]; failures: string[]; lost: string[] }
    | null;
  if (!viaDaemon) await requireLog(o.stateDir); // alone, it reads the log
  const result = viaDaemon ?? (await reconcileAlone(o.stateDir));
  if (o.json) out(`${JSON.stringify(result)}\n`);
  else {
    for (const a of result.applied) out(`applied ${a}\n`);
    for (const a of result.lost) out(`lost    ${a}\n`);
    for (const f of result.failures) out(`FAILED  ${f}\n`);
    // Not failures (nothing of ledgernet's is wrong), but not converged either: someone else's route in the way.
    const left = result.planned.filter((a) => a.kind === 'route.conflict');
    for (const a of left) out(`left    ${describeAction(a)}\n`);
    out(result.applied.length + result.failures.length + result.lost.length + left.length === 0 ? 'no changes: already converged\n' : '');
  }
  return result.failures.length > 0 ? 1 : 0;
}

/** Releases `target` (see releaseCommand) through the running daemon, or alone when none runs. */
/**
 * Releases `target` through the daemon, or alone when none runs; what it records names the
 * operator (`note`, the login name, and the uid and pid the kernel gives).
 */
export async function releaseTarget(stateDir: string, target: string, note: OperatorNote): Promise<{ events: string[]; applied: string[] }> {
  const body = statedBody(note);
  const cause = operatorCause(body, { uid: process.getuid?.() ?? 0, pid: process.pid }); // checked before anything is asked
  const via = (await callDaemon(stateDir, 'POST', `/release/${encodeURIComponent(target)}`, body)) as { events: string[]; applied: string[] } | null;
  if (via) return via;
  await requireLog(stateDir); // alone, it reads the log
  return releaseAlone(stateDir, target, cause);
}

export async function runRelease(o: { stateDir: string; target: string | undefined; dryRun?: boolean; reason?: string; force?: boolean; dockerSocket?: string }): Promise<number> {
  if (!o.target) throw new DriverError('LN_ERR_BAD_REQUEST', 'release needs a network id (12 to 64 hex) or a pool CIDR');
  const note: OperatorNote = { command: 'release', ...(o.reason === undefined ? {} : { reason: o.reason }) };
  operatorCause(statedBody(note), null); // a bad --reason is refused before anything is read
  await requireLog(o.stateDir, !o.force || o.dryRun === true);
  if (!o.force) await refuseWhatDockerHolds(o.stateDir, o.target, o.dockerSocket ?? DEFAULT_DOCKER_SOCKET);
  if (o.dryRun) return releaseDryRun(o.stateDir, o.target);
  const result = await releaseTarget(o.stateDir, o.target, note);
  for (const e of result.events) out(`recorded ${e}\n`);
  for (const a of result.applied) out(`applied  ${a}\n`);
  if (result.events.length === 0) out('nothing to release\n');
  return 0;
}

/**
 * `release` is for what Docker no longer has: a network, endpoint, pool or address Docker still
 * holds is refused by name (its containers would lose their interfaces with Docker none the
 * wiser), and so is a release Docker cannot be asked about; `--force` skips the question.
 */
async function refuseWhatDockerHolds(stateDir: string, target: string, socket: string): Promise<void> {
  const state = await loadState(stateDir);
  const command = releaseCommand(state, target); // an unknown or ambiguous target is refused first
  let view;
  try {
    view = await readDocker(new DockerApi(socket, 30_000), state);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new DriverError('LN_ERR_DOCKER_UNAVAILABLE', `cannot ask Docker whether it still has ${target} (${why}; is dockerd running? --docker-socket P): nothing released; --force releases without asking`, { cause: e });
  }
  const held = dockerHolds(command, state, view);
  if (held !== null) throw new DriverError('LN_ERR_DOCKER_HOLDS', `not released, nothing recorded or changed: ${held}; --force releases it anyway`);
}

/**
 * `release --dry-run`: the events a release would record and the kernel changes it would bring
 * (those a pass on the state after them has that one on the state now has not), from the log;
 * nothing is recorded or applied, with or without the daemon.
 */
async function releaseDryRun(stateDir: string, target: string): Promise<number> {
  const state = await loadState(stateDir);
  const events = decide(releaseCommand(state, target), state);
  const stored = events.map((e, i) => ({ ...e, seq: state.seq + i + 1, id: `dry-run:${state.seq + i + 1}`, host: '', v: 1, at: '', prevhash: '', hash: '' }) as StoredEvent);
  const after = fold(state, stored);
  const observed = await createKernel({ filterPrefixes: [VETH_PREFIX] }).observe();
  const firewall = await cliFirewall(stateDir);
  const now = new Set(plan(desiredFromState(state), observed, firewall).map(describeAction));
  const changes = plan(desiredFromState(after), observed, firewall).filter((a) => !now.has(describeAction(a)));
  const names = namesInState(state);
  for (const e of stored) out(`would record ${e.type} ${subjectOf(e, names)}\n`);
  for (const a of changes) out(`would apply  ${describeAction(a)}\n`);
  if (events.length === 0) out('nothing to release\n');
  return events.length === 0 ? 0 : 2;
}

async function releaseAlone(stateDir: string, target: string, cause: Cause): Promise<{ events: string[]; applied: string[] }> {
  return withStore(stateDir, async (store, reconcile) => {
    const events = await store.execute(releaseCommand(store.state, target), cause);
    const r = await reconcile();
    return { events: events.map((e) => `${e.type} ${e.id}`), applied: r.applied.map(describeAction) };
  });
}

// No daemon: take the writer's lock ourselves, so two writers never run at once.
async function withStore<T>(
  stateDir: string,
  fn: (store: EventStore, reconcile: () => Promise<PassResult>) => Promise<T>,
): Promise<T> {
  const release = await acquireLock(stateDir, { command: 'ledgernet reconcile/release' });
  let releaseGuard: (() => Promise<void>) | undefined;
  try {
    // A pass alone would remove another instance's networks as orphans: not while one runs.
    releaseGuard = await acquireHostGuard({ stateDir, command: 'ledgernet reconcile/release' });
    // A log no snapshot lines up with is folded in parts, not held whole; no event of the replay is kept.
    const { store } = await openStore(stateDir, { host: defaultHost() }, {}, 1, PART_BYTES);
    const vtep = await recordedVtep(stateDir);
    try {
      const reconciler = new Reconciler({
        ...(vtep ? { vtep: () => vtep } : {}),
        kernel: createKernel({ filterPrefixes: [VETH_PREFIX] }),
        firewall: await cliFirewall(stateDir, undefined, undefined, AS_SERVED),
        getState: () => store.state,
        log: { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined } as never,
        intervalMs: 0,
        onLost: markLost(store),
        ipv6Forwarding: await cliIpv6Forwarding(stateDir, AS_SERVED),
      });
      const outcomes = new OutcomeRecorder(store);
      return await fn(store, async () => {
        const r = await reconciler.requestPass('cli');
        await outcomes.record(r);
        return r;
      });
    } finally {
      await store.close();
    }
  } finally {
    await releaseGuard?.();
    await release();
  }
}

async function reconcileAlone(stateDir: string) {
  return withStore(stateDir, async (_store, reconcile) => {
    const r = await reconcile();
    return {
      planned: r.planned,
      applied: [...r.applied.map(describeAction), ...(r.cluster ?? []).map(describeItem)],
      failures: r.failures.map(describeFailure),
      lost: r.lost.map(describeAction),
    };
  });
}

type ObjState = 'converged' | 'pending' | 'drifted' | 'lost' | 'conflict';

function objectStates(state: State, actions: readonly PlanItem[]) {
  const conflicts = actions.filter(isConflict);
  const conflictOf = (match: (a: PlanItem) => boolean) => conflicts.find(match)?.detail ?? null;
  const stateOf = (match: (a: PlanItem) => boolean, lost = false): ObjState => {
    if (lost) return 'lost';
    const mine = actions.filter(match);
    if (mine.length === 0) return 'converged';
    if (mine.some(isConflict)) return 'conflict';
    return mine.some((a) => a.reason === 'drifted') ? 'drifted' : 'pending';
  };
  const ofNetwork = (networkId: string) => (a: PlanItem) => a.owner.networkId === networkId && a.owner.endpointId === null;
  const networks = Object.values(state.networks).map((n) => ({
    networkId: n.networkId,
    /** Docker's name for it, once read from Docker's API (null until then). */
    name: n.name ?? null,
    bridge: n.bridge,
    subnets: [...n.ipv4Data, ...n.ipv6Data].map((d) => d.pool),
    state: stateOf(ofNetwork(n.networkId)),
    /** For `conflict`: which link holds the bridge's name, and how to resolve it. */
    conflict: conflictOf(ofNetwork(n.networkId)),
  }));
  const endpoints = Object.values(state.endpoints).map((e) => {
    const mine = (a: PlanItem) => a.owner.endpointId === e.endpointId;
    // On a network in conflict an endpoint cannot be set up either.
    const blocked = (a: PlanItem) => mine(a) || (a.kind === 'link.conflict' && ofNetwork(e.networkId)(a));
    return {
      endpointId: e.endpointId,
      networkId: e.networkId,
      /** Its container as Docker's API names it (null until read). */
      container: e.container ?? null,
      veth: e.veth,
      address: e.address,
      addressV6: e.addressV6,
      joined: e.joined,
      state: stateOf(e.lost ? mine : blocked, e.lost),
      conflict: e.lost ? null : conflictOf(blocked),
    };
  });
  return { networks, endpoints };
}

/** `status --json`'s pools[]: counts as numbers (an IPv6 /64's size is past 2^53 and rounded). */
function poolsJson(pools: readonly PoolUsage[]) {
  return pools.map((p) => ({
    poolId: p.poolId,
    pool: p.pool,
    subPool: p.subPool,
    family: p.v6 ? 6 : 4,
    networkId: p.networkId,
    size: Number(p.size),
    inUse: p.inUse,
    reserved: p.reserved,
    available: Number(p.available),
  }));
}

function poolsTable(pools: readonly PoolUsage[]): string {
  return table(
    ['POOL', 'NETWORK', 'IN USE', 'FREE', 'RESERVED'],
    pools.map((p) => [
      p.subPool ? `${p.pool} (ip-range ${p.subPool})` : p.pool,
      p.networkId ? short(p.networkId) : '-',
      String(p.inUse),
      String(p.available),
      String(p.reserved),
    ]),
  );
}

/** 2 → 2nd, 3 → 3rd, 11 → 11th. */
function ordinal(n: number): string {
  const teen = n % 100 >= 11 && n % 100 <= 13;
  const suffix = teen ? 'th' : ({ 1: 'st', 2: 'nd', 3: 'rd' } as Record<number, string>)[n % 10] ?? 'th';
  return `${n}${suffix}`;
}

interface DaemonStatus {
  /** The daemon's (the worker's, under the supervisor). */
  readonly pid: number;
  /** The supervisor's, which holds the plugin socket and restarts the worker: the process to stop. Absent with --in-process. */
  readonly supervisorPid?: number;
  /** How the supervisor's worker before this one ended (null or absent: this is its first). */
  readonly previousWorker?: PreviousWorker | null;
  /** 'service manager' when systemd passed the plugin socket (socket activation). */
  readonly socketFrom?: string;
  readonly lastSeq: number;
  readonly logBytes: number;
  /** The NATS publisher's state, null when it is off. */
  readonly audit?: AuditStatus | null;
  /** The cluster (serve --nats): this host and the hosts the KV bucket knows. */
  readonly cluster?: ClusterView | null;
  /** The userland proxy's listeners (ports on ::1). */
  readonly proxies?: readonly ProxyListener[];
  /** The sockets that hold the published host ports. */
  readonly reservations?: readonly Reservation[];
  /** Docker's API as the daemon reaches it (null: --docker-socket ''); absent from daemons before it. */
  readonly docker?: DockerLinkStatus | null;
}

/** The daemon's view of Docker's API, one line. */
function dockerLine(d: DockerLinkStatus | null | undefined): string {
  if (d === undefined) return '';
  if (d === null) return "docker: API not asked (--docker-socket ''): networks removed while ledgernet was down need `ledgernet release`\n";
  const api = d.answering ? `API ${d.socket} answering` : `API ${d.socket} NOT ANSWERING (${d.error ?? 'no answer'})`;
  return `docker: ${api}; driver name ${d.driverName} (${d.driverNameFrom})\n`;
}

export async function runStatus(o: { stateDir: string; json: boolean; firewall?: string | undefined }): Promise<number> {
  await requireLog(o.stateDir);
  const state = await loadState(o.stateDir);
  const snapshot: KernelSnapshot = await createKernel({ filterPrefixes: [VETH_PREFIX] }).observe();
  let daemonError: string | null = null;
  const daemon = (await callDaemon(o.stateDir, 'GET', '/status').catch((e: unknown) => {
    daemonError = e instanceof Error ? e.message : String(e);
    return null;
  })) as DaemonStatus | null;
  const held = daemon ? (daemon.proxies ?? []) : null;
  const reserved = daemon ? (daemon.reservations ?? []) : null;
  const actions = [
    ...plan(desiredFromState(state), snapshot, await cliFirewall(o.stateDir, o.firewall)),
    ...(await clusterPlan(state, o.stateDir)),
    ...proxyPlan(state, held),
    ...reservationPlan(state, reserved),
    ...(await ipv6ForwardingPlan(o.stateDir, state, snapshot)),
  ];
  const proxies = proxyRows(state, held);
  const reservations = reservationRows(state, reserved);
  const ports = portRows(state);
  const logBytes = await stat(join(o.stateDir, LOG_FILE)).then((s) => s.size, () => 0);
  const archived = await archivedSize(o.stateDir);
  const { networks, endpoints } = objectStates(state, actions);
  const pools = poolUsage(state);
  const cluster = clusterStatus(state, daemon?.cluster ?? null, await recordedVtep(o.stateDir));
  const forwarding = forwardingProblem(state, snapshot);
  const icc = iccProblem(state, snapshot);
  // Exit non-zero when the daemon cannot be reached: Docker calls would fail too.
  const code = daemon ? 0 : 1;
  if (o.json) {
    out(`${JSON.stringify({ daemon, ...(daemonError ? { daemonError } : {}), lastSeq: state.seq, logBytes, archived, pending: actions.length, networks, endpoints, pools: poolsJson(pools), ports, reservations, cluster, proxies, forwarding, icc })}\n`);
    return code;
  }
  const nats = natsLine(daemon?.audit, daemon !== null, daemonError !== null);
  out(
    `daemon: ${daemon ? `running (${daemon.supervisorPid ? `supervisor pid ${daemon.supervisorPid}, worker pid ${daemon.pid}` : `pid ${daemon.pid}`})${daemon.socketFrom === 'service manager' ? ', plugin socket from the service manager (socket activation)' : ''}` : daemonError ? `NOT ANSWERING: ${daemonError}` : 'NOT REACHABLE (is ledgernet serve running with this --state-dir?)'}\n` +
      (daemon?.previousWorker ? `worker: the supervisor's ${ordinal(daemon.previousWorker.generation)}; the one before (pid ${daemon.previousWorker.pid}) ${daemon.previousWorker.why} at ${daemon.previousWorker.endedAt}\n` : '') +
      `log: ${state.seq} events, ${logBytes} bytes${archived.files > 0 ? ` (${archived.events} of them archived in ${archived.files} file(s), ${archived.bytes} bytes)` : ''}; ${nats}; ${actions.length} change(s) pending\n${dockerLine(daemon?.docker)}${forwarding ? `forwarding: ${forwarding.message}\n` : ''}${icc ? `icc: ${icc.message}\n` : ''}\n`,
  );
  out(table(['NETWORK', 'NAME', 'BRIDGE', 'SUBNETS', 'STATE'], networks.map((n) => [short(n.networkId), n.name ?? '-', n.bridge, n.subnets.join(',') || '-', n.state])));
  for (const n of networks) if (n.conflict) out(`conflict: ${n.conflict}\n`);
  out('\n');
  out(
    table(
      ['ENDPOINT', 'NETWORK', 'CONTAINER', 'VETH', 'ADDRESSES', 'JOINED', 'STATE'],
      endpoints.map((e) => [short(e.endpointId), short(e.networkId), e.container?.name ?? '-', e.veth, strings(e.address, e.addressV6).join(',') || '-', e.joined ? 'yes' : 'no', e.state]),
    ),
  );
  // Conflicts of an endpoint's own links (its network's were listed above).
  const listed = new Set(networks.map((n) => n.conflict));
  for (const e of endpoints) if (e.conflict && !listed.has(e.conflict)) out(`conflict: ${e.conflict}\n`);
  // ledgernet IPAM pools (Docker's network inspect shows no IPAM status for a remote IPAM).
  out(`\n${poolsTable(pools)}`);
  if (ports.length > 0) out(`\n${portsTable(ports)}`);
  // Not held while a daemon runs: it could not bind them (with none running, nothing holds any: said above).
  if (daemon) out(unheldLines(reservations));
  if (proxies.length > 0) out(`\n${proxiesTable(proxies)}`);
  if (cluster) out(`\n${clusterTables(cluster)}`);
  return code;
}

const strings = (...xs: unknown[]) => xs.filter((x): x is string => typeof x === 'string');
/** Docker's names by id: a network's name, an endpoint's container's (`network.named`, `endpoint.named`). */
type Names = Map<string, string>;

/** The names the state holds. */
function namesInState(state: State): Names {
  const names: Names = new Map();
  for (const n of Object.values(state.networks)) if (n.name !== undefined) names.set(n.networkId, n.name);
  for (const e of Object.values(state.endpoints)) if (e.container) names.set(e.endpointId, e.container.name);
  return names;
}

/** `aaaaaaaa0000(web)/e1e1e1e12222(web-1)`: ids with Docker's names where known. */
const idsOf = (d: Record<string, unknown>, names: Names) =>
  strings(d['networkId'], d['endpointId'])
    .map((id) => labelled(id, names))
    .join('/');

/** What an event is about: its network/endpoint, else its pool and address. */
function subjectOf(e: StoredEvent, names: Names): string {
  const d = e.data as Record<string, unknown>;
  return idsOf(d, names) || strings(d['poolId'], d['address']).join(' ');
}

/** What an event line shows after its type: ids with names (its pool and address for IPAM's), or what the event itself says. */
function whatOf(e: StoredEvent, names: Names): string {
  if (e.type === 'log.archived') return `${e.data.first}-${e.data.last} in ${e.data.archive}`;
  if (e.type === 'cluster.host.forgotten') return `host ${e.data.host} (${e.data.networks.join(',') || 'no network'}; ${e.data.blocks} block(s))`;
  if (e.type.startsWith('peer.')) {
    const d = e.data as { cluster: string; host: string; endpointId?: string };
    return `cluster ${d.cluster} host ${d.host}${d.endpointId === undefined ? '' : ` endpoint ${labelled(d.endpointId, names)}`}`;
  }
  return subjectOf(e, names);
}

/** What an event line shows after its ids: what the event set (subnets, addresses, ports, a pass's counts, why), or ''. */
function detailOf(e: StoredEvent): string {
  switch (e.type) {
    case 'network.created':
      return [...e.data.ipv4Data, ...e.data.ipv6Data].map((d) => d.pool).join(',');
    case 'endpoint.created':
    case 'endpoint.addressed':
      return strings(e.data.address, e.data.addressV6).join(',');
    case 'endpoint.external.programmed':
      return `${portsText(e.data.portmap) || 'no ports'}${e.data.family === undefined ? '' : ` (IPv${e.data.family} only)`}`;
    case 'reconcile.applied':
      return `${countNamed(e.data.actions)} action(s), ${countNamed(e.data.failures)} failure(s)`;
    case 'network.rolledback':
    case 'network.collected':
    case 'endpoint.rolledback':
    case 'endpoint.lost':
    case 'endpoint.deferred':
    case 'network.deferred':
      return e.data.reason;
    case 'pool.requested':
      return `${e.data.pool}${e.data.subPool ? ` (range ${e.data.subPool})` : ''}${e.data.auto ? ' automatic' : ''}`;
    case 'address.requested':
      return e.data.kind;
    case 'block.claimed':
      return e.data.block;
    case 'peer.member.joined':
      return `vtep ${e.data.vtep}`;
    case 'peer.endpoint.added':
      return `${e.data.address} ${e.data.mac}`;
    default:
      return '';
  }
}

export function eventLine(e: StoredEvent, names: Names): string {
  const what = [whatOf(e, names), detailOf(e)].filter((x) => x !== '').join('  ');
  return `${String(e.seq).padStart(6)} ${e.at} ${e.type.padEnd(30)} ${what}${e.cause ? `  by ${describeCause(e.cause)}` : ''}\n`;
}

/**
 * `events verify`: the whole log and the archives still here (framing, checksums, hash chain:
 * damage throws, naming the file and offset), read in parts, and the snapshot against it (a
 * snapshot the log does not back is damage too; read first, so that one written while the log is
 * read is not taken for one ahead of it).
 */
async function verifyLog(stateDir: string, io: EventsIo): Promise<number> {
  const { stdout = process.stdout, stderr = process.stderr, partBytes } = io;
  const loaded = await loadSnapshot(stateDir);
  if (loaded !== null && 'newer' in loaded) {
    const e = newerError(join(stateDir, SNAPSHOT_FILE), loaded.newer);
    stderr.write(`ledgernet: ${e.message} (${e.code})\n`);
    return 1;
  }
  const want = loaded !== null && 'snap' in loaded ? loaded.snap.seq : 0;
  // A snapshot without checksum (older versions) is compared with the state events 1 to its seq give.
  const compare = loaded !== null && 'unchecked' in loaded && want > 0;
  // The events read (not held): how many, the last one's seq, the hash of the snapshot's event, the state up to it.
  const read: { count: number; last: number | null; hashAt: string | undefined; folded: State } = { count: 0, last: null, hashAt: undefined, folded: emptyState };
  const { end, base } = await readLogParts(stateDir, {
    ...(partBytes === undefined ? {} : { partBytes }),
    each: (part) => {
      read.count += part.length;
      read.last = part.at(-1)?.seq ?? read.last;
      read.hashAt ??= part.find((e) => e.seq === want)?.hash;
      if (compare) read.folded = fold(read.folded, part.filter((e) => e.seq <= want));
    },
  });
  if (loaded !== null && 'damaged' in loaded) {
    stderr.write(
      `ledgernet: the snapshot ${join(stateDir, SNAPSHOT_FILE)} is damaged (${loaded.damaged}); the log${base.seq > 0 ? '' : ' and its archives'} verified. ` +
        (base.seq > 0
          ? `A start cannot use it, and events 1 to ${base.seq} are no longer archived here to rebuild the state from: restore snapshot.json or the archives from a backup\n`
          : `A start ignores it and rebuilds the state from every event (then writes a new one): remove the file, or restore it from a backup\n`),
    );
    return 1;
  }
  const snap = loaded?.snap ?? null;
  const last = read.last ?? base.seq;
  const logPath = join(stateDir, LOG_FILE);
  if (snap && snap.seq > last) {
    stderr.write(
      `ledgernet: the snapshot covers events up to seq ${snap.seq} (log offset ${snap.offset}) but ${logPath} holds only ${last}: ` +
        `acknowledged events are missing from the log\n`,
    );
    return 1;
  }
  const snapHash = snap && snap.seq > 0 ? (snap.seq === base.seq ? base.hash : read.hashAt) : undefined;
  if (snap && snap.seq > 0 && snap.seq >= base.seq && snapHash !== snap.hash) {
    stderr.write(`ledgernet: the snapshot's hash for seq ${snap.seq} differs from event ${snap.seq} in ${logPath}: one of them was altered\n`);
    return 1;
  }
  // A snapshot without checksum (older versions) is checked against the events it covers, when they are here.
  let unchecked = '';
  if (snap && loaded !== null && 'unchecked' in loaded && snap.seq > 0) {
    if (base.seq === 0) {
      if (!sameState(snap.state, read.folded)) {
        stderr.write(`ledgernet: ${mismatchNote(stateDir, snap.seq)} at the next start; the log verified\n`);
        return 1;
      }
      unchecked = ` (it has no checksum: compared with events 1 to ${snap.seq})`;
    } else if (base.seq < snap.seq) {
      unchecked = ` but is UNCHECKED (it has no checksum and events 1 to ${base.seq} are no longer here to compare it with)`;
    }
  }
  const torn = end.kind === 'torn' ? ` (torn tail of ${end.bytes} bytes at offset ${end.offset}, repaired at next start)` : '';
  const kept = (await readdir(stateDir).catch(() => [] as string[])).filter((f) => f.startsWith(`${LOG_FILE}.torn-`));
  const keptNote = kept.length > 0 ? `; torn tails cut earlier are kept in ${kept.join(', ')}` : '';
  const archived = await archivedNote(stateDir, base);
  stdout.write(`ok: ${read.count} events, hash chain intact${archived}${snap ? `, snapshot at seq ${snap.seq} matches${unchecked}` : ''}${torn}${keptNote}\n`);
  return 0;
}

/** What of the history is in archive files, and what is no longer on this host. */
async function archivedNote(stateDir: string, base: ScanBase): Promise<string> {
  const files = await listArchives(stateDir);
  if (files.length === 0 && base.seq === 0) return '';
  const here = files.filter((a) => a.first > base.seq);
  const inFiles = here.length > 0 ? ` (${here.length} archive file${here.length === 1 ? '' : 's'} in ${join(stateDir, ARCHIVE_DIR)} and ${LOG_FILE})` : '';
  const gone = base.seq > 0 ? `; events 1 to ${base.seq} were archived and are no longer in ${join(stateDir, ARCHIVE_DIR)}: the chain is checked from event ${base.seq}'s hash on` : '';
  return `${inFiles}${gone}`;
}

/** The archive files in the state dir: how many, the events they hold, their size. */
async function archivedSize(stateDir: string): Promise<{ files: number; events: number; bytes: number }> {
  const files = await listArchives(stateDir);
  const sizes = await Promise.all(files.map((a) => stat(join(stateDir, ARCHIVE_DIR, a.name)).then((s) => s.size, () => 0)));
  return { files: files.length, events: files.reduce((n, a) => n + a.last - a.first + 1, 0), bytes: sizes.reduce((n, b) => n + b, 0) };
}

/** `cluster forget HOST`: through the daemon, which holds the cluster's NATS connection. */
export async function runClusterForget(o: { stateDir: string; host: string; reason?: string; dryRun?: boolean }): Promise<number> {
  const body = statedBody({ command: 'cluster forget', ...(o.reason === undefined ? {} : { reason: o.reason }) });
  operatorCause(body, null); // a bad --reason is refused before anything is asked
  type Forgotten = { host: string; networks: string[]; retired: string[]; blocks: number; event?: string | null; unrecorded?: string };
  const path = `/cluster/forget/${encodeURIComponent(o.host)}${o.dryRun ? '?dry-run=1' : ''}`;
  const r = (await callDaemon(o.stateDir, 'POST', path, body)) as Forgotten | null;
  if (!r) throw new DriverError('LN_ERR_DAEMON_UNREACHABLE', `cluster forget needs the running daemon (it holds the cluster's NATS connection); none answers on ${controlSocket(o.stateDir)}`);
  if (o.dryRun) {
    // As release --dry-run: exit 2, there is something it would do (a host with nothing is refused).
    out(`would forget cluster host ${r.host}: would take it out of ${r.networks.join(', ') || 'no network'}; ${r.blocks} address block(s) would be given back\n`);
    for (const n of r.retired) out(`cluster network ${n}: no host would have it any more; would be removed from the KV bucket\n`);
    return 2;
  }
  out(`forgot cluster host ${r.host}: taken out of ${r.networks.join(', ') || 'no network'}; ${r.blocks} address block(s) given back\n`);
  for (const n of r.retired) out(`cluster network ${n}: no host has it any more; removed from the KV bucket\n`);
  if (r.unrecorded) {
    process.stderr.write(`ledgernet: done in the cluster, but recording it in the log (cluster.host.forgotten) failed: ${r.unrecorded}\n`);
    return 1;
  }
  return 0;
}

/** `events archive`: through the daemon, or alone (holding the writer's lock) when none runs. */
export async function runArchive(o: { stateDir: string }): Promise<number> {
  await requireLog(o.stateDir, false);
  const body = statedBody({ command: 'events archive' });
  const cause = operatorCause(body, { uid: process.getuid?.() ?? 0, pid: process.pid });
  type Archived = { file: string; first: number; last: number; bytes: number; unrecorded?: string } | null;
  const via = (await callDaemon(o.stateDir, 'POST', '/archive', body)) as { archived: Archived } | null;
  if (!via) await requireLog(o.stateDir); // alone, it reads the log
  const archived = via ? via.archived : await archiveAlone(o.stateDir, cause);
  if (!archived) {
    out(`nothing to archive: ${join(o.stateDir, LOG_FILE)} holds no event since its last archive\n`);
    return 0;
  }
  out(`archived events ${archived.first} to ${archived.last} (${archived.bytes} bytes) in ${archived.file}; ${LOG_FILE} goes on from event ${archived.last + 1}\n`);
  if (archived.unrecorded) {
    process.stderr.write(`ledgernet: the archive is done, but recording it in the log (log.archived) failed: ${archived.unrecorded}\n`);
    return 1;
  }
  return 0;
}

async function archiveAlone(stateDir: string, cause: Cause) {
  const release = await acquireLock(stateDir, { command: 'ledgernet events archive' });
  try {
    // As reconcile alone: a log no snapshot lines up with is folded in parts, not held whole.
    const { store } = await openStore(stateDir, { host: defaultHost() }, {}, 1, PART_BYTES);
    try {
      return await store.archive(cause);
    } finally {
      await store.close();
    }
  } finally {
    await release();
  }
}

/**
 * Where `events` prints: stdout and stderr, or what a test gives; `partBytes`, about how many bytes
 * of the log are read (and held) at once (readLogParts).
 */
export interface EventsIo {
  readonly stdout?: NodeJS.WritableStream;
  readonly stderr?: NodeJS.WritableStream;
  readonly partBytes?: number;
}

/** Writes `text` to `to`, waiting for it to drain when it holds too much (78k lines are not buffered whole). */
async function writeOut(to: NodeJS.WritableStream, text: string): Promise<void> {
  if (text !== '' && !to.write(text)) await once(to, 'drain');
}

/**
 * `events`, without holding the log: a first reading in parts (readLogParts: every check readLog
 * makes, damage refused before anything is printed) learns the names and endpoint facts the
 * filters and the lines go by, from what the events say and, when the first events are no longer
 * readable (an archive moved away), what the snapshot says (what neither holds and the query
 * needs is said on stderr); a second reading, up to the last event of the first, prints as it goes.
 * What is held is a part of the log and the facts (per network and endpoint), not the events.
 */
export async function runEvents(o: { stateDir: string; json: boolean; follow: boolean; verify: boolean; since?: string } & EventQuery & EventsIo): Promise<number> {
  const asked = (['network', 'container', 'address', 'since'] as const).filter((k) => o[k] !== undefined);
  if (o.verify && asked.length > 0) throw new DriverError('LN_ERR_BAD_REQUEST', `\`events verify\` checks the whole log: it takes no ${asked.map((k) => `--${k}`).join(' or ')}`);
  const since = parseSince(o.since);
  const selected = eventFilter(o);
  // --since narrows what is shown; what the log says of endpoints and names before it still counts.
  const about: typeof selected = (e, names, facts) => fromSince(e, since) && selected(e, names, facts);
  const stdout = o.stdout ?? process.stdout;
  const stderr = o.stderr ?? process.stderr;
  await requireLog(o.stateDir);
  if (o.verify) return verifyLog(o.stateDir, o);
  // Names recorded anywhere in the log label every line of their network or endpoint, and what it
  // says of an endpoint anywhere (its container, its addresses) selects every line of it.
  const names = new Map<string, string>();
  const facts = new EndpointFacts();
  // Set as the reading goes: what the snapshot leaves unknown (after an archive moved away), the last event.
  const read: { unknown: { tracker: UnknownBefore; snapshot: boolean } | null; last: StoredEvent | null } = { unknown: null, last: null };
  const { base, next } = await readLogParts(o.stateDir, {
    ...(o.partBytes === undefined ? {} : { partBytes: o.partBytes }),
    onBase: async (b) => {
      if (b.seq === 0) return;
      const snap = await readSnapshot(o.stateDir);
      const state = snap && snap.seq >= b.seq ? snap.state : null;
      if (state) seedFromState(state, names, facts);
      read.unknown = { tracker: new UnknownBefore(state), snapshot: state !== null };
    },
    each: (part) => {
      namesFrom(part, names);
      facts.add(part);
      read.unknown?.tracker.add(part);
      read.last = part.at(-1) ?? read.last;
    },
  });
  const upTo = read.last?.seq ?? base.seq;
  if (base.seq > 0) stderr.write(`ledgernet: events 1 to ${base.seq} were archived and are no longer in ${join(o.stateDir, ARCHIVE_DIR)}; from event ${base.seq + 1} on:\n`);
  const note = read.unknown ? describeUnknown(read.unknown.tracker.unknown(), o, read.unknown.snapshot) : null;
  if (note) stderr.write(`ledgernet: ${note}\n`);
  const line = (e: StoredEvent) => (o.json ? `${JSON.stringify(e)}\n` : eventLine(e, names));
  // Following: an endpoint's earlier lines are shown when a later line makes them concern the
  // query (its container named after its Join), as a read of the whole log would have shown them.
  const follow = o.follow ? new FollowFilter<StoredEvent>(about, names, facts) : null;
  const newest = Date.parse(read.last?.at ?? '');
  let shown = 0;
  if (upTo > base.seq) {
    // Checked whole by the first reading: now the links and checksums only.
    await readLogParts(o.stateDir, {
      ...(o.partBytes === undefined ? {} : { partBytes: o.partBytes }),
      rehash: false,
      each: async (part) => {
        const upToLast = part.filter((e) => e.seq <= upTo);
        const show = follow ? follow.first(upToLast.map((e) => ({ e, item: e })), newest) : upToLast.filter((e) => about(e, names, facts));
        shown += show.length;
        await writeOut(stdout, show.map(line).join(''));
        return (part.at(-1)?.seq ?? 0) < upTo;
      },
    });
  }
  if (!follow) {
    if (asked.length > 0 && shown === 0) {
      const from = since === null ? '' : ` from ${'seq' in since ? `seq ${since.seq}` : since.time} on`;
      const query = asked.some((k) => k !== 'since') ? ` concerns ${describeQuery(o)}` : '';
      stderr.write(`ledgernet: no event in ${join(o.stateDir, LOG_FILE)}${from}${query}\n`);
      return 1;
    }
    return 0;
  }
  let seen = upTo;
  // From where the first reading stopped (not the whole log again, which held it all in memory at
  // once: 1.4 GB for a log of 440 MB), then from where the last read stopped, by seq: an archive
  // meanwhile moves the events into another file, not out of the chain.
  const parts = new LogParts(o.stateDir, 10_000, next ?? undefined);
  for (;;) {
    await sleep(500);
    const fresh = await parts.after(seen, Number.MAX_SAFE_INTEGER);
    await writeOut(stdout, follow.take(fresh.map((e) => ({ e, item: e }))).map(line).join(''));
    seen = fresh.at(-1)?.seq ?? seen;
  }
}
