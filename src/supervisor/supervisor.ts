// `ledgernet serve`: a thin supervisor in front of the worker (the daemon of main.ts serve()).
//
// The supervisor owns the plugin socket for its whole life, so Docker's calls queue in the listen
// backlog instead of being refused while the worker restarts. It reads each call whole (front.ts:
// in the callback that accepted or read it), writes it to the request journal (journal.ts) in that
// same callback, and forwards it to the worker over a private unix socket in the state dir. When
// the worker dies mid-call, it starts a new one at once and sends the same request again with its
// full body (forward.ts), so Docker never sees an EOF for a worker crash.
// When the supervisor itself died mid-call, Docker's empty-body retry is answered from the
// journal. The supervisor does no kernel work and holds no state beyond the journal.
import { chmodSync, rmSync } from 'node:fs';
import { mkdir, unlink } from 'node:fs/promises';
import type { Server } from 'node:net';
import { join } from 'node:path';
import type { Log } from './log.ts';
import { BODY_LIMIT, DriverError } from '../errors.ts';
import { prepareSocketPath } from '../operator/socket.ts';
import { errReply, FORWARD_DEADLINE_MS, forwardWithRetry, WorkerLink, type Reply } from './forward.ts';
import { Journal, JOURNAL_FILE } from './journal.ts';
import { emptyRetries, type Forward } from './retries.ts';
import { waitOldWorker, WorkerProcess, WORKER_PID_FILE, type HoldsStateLock } from './worker-process.ts';
import { SOCKET_FROM_ENV } from './worker-link.ts';
import { front, type CallHandler } from './front.ts';
import { windowTraceFromEnv, type WindowTrace } from './window-trace.ts';

const WORKER_SOCKET = 'worker.sock';

/** The worker's own limit (errors.ts): a larger body is refused while it is read, not after it is journaled. */
const MAX_BODY = BODY_LIMIT;

/** Docker sends these without a body; every other call's empty body is a cut-off retry. */
const NO_BODY = new Set([
  'Plugin.Activate',
  'NetworkDriver.GetCapabilities',
  'IpamDriver.GetCapabilities',
  'IpamDriver.GetDefaultAddressSpaces',
  'NetworkDriver.DiscoverNew',
  'NetworkDriver.DiscoverDelete',
  'NetworkDriver.AllocateNetwork',
  'NetworkDriver.FreeNetwork',
]);

export interface SupervisorConfig {
  readonly socket: string;
  readonly stateDir: string;
  /** What node runs for the worker, e.g. [dist/cli.js, 'serve', ...the same flags]. */
  readonly workerArgv: readonly string[];
  readonly log: Log;
  readonly forwardDeadlineMs?: number;
  /** A ready worker silent this long (ms) is killed and replaced (watchdog.ts); 0 or absent: never. */
  readonly watchdogMs?: number;
  /** A starting worker silent this long (ms) is killed and replaced (watchdog.ts); 0: never; absent: 60 s. */
  readonly startTimeoutMs?: number;
  /**
   * The listening plugin socket the service manager passed (socket activation, activation.ts):
   * served as it is, never bound, chmod'ed or unlinked here. Null or absent: bind `socket`.
   */
  readonly inheritedFd?: number | null;
  /** Whether a process holds the state dir's lock now (lock.ts holdsStateLock): only such a worker is waited for or killed at start. */
  readonly holdsStateLock: HoldsStateLock;
  /** Aborted when a stop is asked for (SIGTERM…): during the start, the start is given up and the worker stopped. */
  readonly stopped?: AbortSignal;
}

export interface Supervisor {
  stop(): Promise<void>;
  /** Resolves (with the reason) if the supervisor gives up on its own (the first worker never started). */
  readonly failed: Promise<Error>;
}

const err = errReply;
/** The worker's internal calls (retries.ts: EXTERNAL_RETRY, JOIN_RETRY, CREATE_RETRY, DELETE_RETRY): never taken from the plugin socket. */
const INTERNAL = 'Ledgernet.';

/** Sends a call to the worker (again, to a new one, after a crash) within the deadline; always a Reply. */
function forwarder(link: WorkerLink, worker: WorkerProcess, deadlineMs: number, log: Log): (method: string, body: string) => Promise<Reply> {
  return async (method, body) => {
    const start = Date.now();
    const outcome = await forwardWithRetry(
      {
        send: () => link.send(worker.generation() ?? -1, method, body, deadlineMs - (Date.now() - start)),
        nextWorker: (gen, ms) => worker.nextWorker(gen, ms),
        generation: () => worker.generation(),
        now: Date.now,
      },
      deadlineMs,
    );
    if (outcome.kind === 'reply') {
      if (outcome.attempts > 1) log.warn({ method, attempts: outcome.attempts }, 'sent the call again to a new worker after a worker crash');
      return outcome.reply;
    }
    if (outcome.kind === 'poison') {
      log.error({ method, attempts: outcome.attempts, lastError: outcome.lastError }, 'the worker died on every attempt of this call');
      return err(500, `the ledgernet worker died ${outcome.attempts} times while handling this call (${outcome.lastError}); see the ledgernet log. The call may have taken effect in part; \`ledgernet status\` shows the state`);
    }
    log.error({ method, lastError: outcome.lastError, attempts: outcome.attempts }, 'no worker answered in time');
    // attempts counts only sends that reached a worker (forward.ts UnreachedError).
    const effect = outcome.attempts === 0 ? 'The call reached no worker: nothing was changed' : 'The call may have taken effect; `ledgernet status` shows the state';
    return err(500, `the ledgernet worker did not answer within ${Math.round(deadlineMs / 1000)} s (${outcome.lastError}); see the ledgernet log. ${effect}`);
  };
}

/**
 * Answers one call. Its synchronous part runs in the callback that read the call (front.ts): the
 * journal line is written there, before anything else runs, so a SIGKILL after that point leaves
 * it for the next supervisor (RELIABILITY.md, "the window").
 */
function handler(journal: Journal, forward: Forward, log: Log, trace: WindowTrace | null): CallHandler {
  const emptyRetry = emptyRetries(journal, forward, log);
  return (call) => {
    const { method: verb, target, body: raw } = call.request;
    const method = target.replace(/^\//, '');
    if (verb !== 'POST' || method.startsWith(INTERNAL)) return Promise.resolve(err(404, `ledgernet does not implement ${verb} ${target}`));
    if (raw.trim() === '' && !NO_BODY.has(method)) return retried(method, raw, emptyRetry, forward, journal, log);
    let journalId: string | null = null;
    if (raw !== '') {
      const writeStartedAt = trace ? performance.now() : 0;
      journalId = journal.received(method, raw);
      if (!journalId) log.error({ method, err: journal.lastError }, 'could not write the request journal; the call goes on without it');
      trace?.(method, call.acceptedAt, call.readAtAccept, writeStartedAt);
    }
    return answered(method, raw, journalId, forward, journal, log);
  };
}

/** An empty body where one is needed: Docker's retry of a cut-off call, answered from the journal if it can be. */
async function retried(method: string, raw: string, emptyRetry: ReturnType<typeof emptyRetries>, forward: Forward, journal: Journal, log: Log): Promise<Reply> {
  const r = await emptyRetry(method);
  if (r !== null && 'status' in r) return r;
  // None in the journal: the worker refuses the empty body with today's clear Err.
  return r === null ? answered(method, raw, null, forward, journal, log) : answered(method, r.body, r.id, forward, journal, log);
}

/** Forwards the call and marks its journal entry answered. */
async function answered(method: string, body: string, journalId: string | null, forward: Forward, journal: Journal, log: Log): Promise<Reply> {
  const reply = await forward(method, body);
  // Marked answered BEFORE Docker gets the reply: a crash in between costs a clean Err on
  // Docker's retry (no candidate); the other order could leave a stale entry that a retry of
  // another call would be answered from.
  if (journalId) {
    await journal.answeredSoon(journalId);
    if (journal.lastError) log.error({ method, err: journal.lastError }, 'could not mark a call answered in the request journal');
  }
  return reply;
}

/** Listens on the plugin socket, made with no access for others, then opened to the group (Docker is root). */
async function listenPlugin(server: Server, socket: string, inheritedFd: number | null): Promise<void> {
  if (inheritedFd !== null) {
    // The service manager made it (SocketMode=) and keeps it open across our restarts.
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ fd: inheritedFd }, () => resolve());
    });
    return;
  }
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socket, () => resolve());
    });
    chmodSync(socket, 0o660);
  } finally {
    process.umask(umask);
  }
}

/** Opens the journal (after an earlier supervisor's worker is gone) and says what it holds. */
async function prepare(cfg: SupervisorConfig, workerSocket: string, log: Log): Promise<Journal> {
  await mkdir(cfg.stateDir, { recursive: true, mode: 0o700 });
  if (Buffer.byteLength(workerSocket) > 107) {
    throw new DriverError('LN_ERR_BAD_REQUEST', `the worker socket ${workerSocket} is longer than a unix socket path may be (107 bytes); use a shorter --state-dir`);
  }
  // Refuse early when another process answers on the plugin socket (an inherited one answers:
  // the service manager holds it, and a second instance is refused by the worker's locks).
  if (cfg.inheritedFd == null) await prepareSocketPath(cfg.socket);
  await waitOldWorker(cfg.stateDir, cfg.holdsStateLock, log, cfg.stopped);
  const journal = Journal.open(join(cfg.stateDir, JOURNAL_FILE));
  if (journal.pending.length > 0) {
    log.warn({ calls: journal.pending.map((e) => e.method) }, 'calls cut off by an earlier supervisor wait for Docker\'s retry');
  }
  return journal;
}

/** Resolves when `signal` is aborted (at once if it is already); never without one. */
function whenAborted(signal: AbortSignal | undefined): Promise<'stopped'> {
  return new Promise((resolve) => {
    if (signal?.aborted) resolve('stopped');
    else signal?.addEventListener('abort', () => resolve('stopped'), { once: true });
  });
}

/**
 * Starts the first worker; false when a stop was asked for first (the worker is then stopped:
 * left running it would hold the state lock, unseen, with nothing serving Docker).
 */
async function startWorker(worker: WorkerProcess, stopped: AbortSignal | undefined): Promise<boolean> {
  const ready = worker.start();
  // A stop won the race; the start may still fail afterwards, as the worker is stopped.
  ready.catch(() => undefined);
  if ((await Promise.race([ready.then(() => 'ready' as const), whenAborted(stopped)])) === 'ready') return true;
  await worker.stop();
  return false;
}

/** Runs the supervisor; null when a stop was asked for before it served (nothing is left running then). */
export async function supervise(cfg: SupervisorConfig): Promise<Supervisor | null> {
  const log = cfg.log.child({ component: 'supervisor' });
  const workerSocket = join(cfg.stateDir, WORKER_SOCKET);
  const journal = await prepare(cfg, workerSocket, log);
  // The worker inherits this (its `ledgernet status` says where Docker's socket came from).
  if (cfg.inheritedFd != null) process.env[SOCKET_FROM_ENV] = 'service manager';
  else delete process.env[SOCKET_FROM_ENV];
  let reportFatal!: (e: Error) => void;
  const failed = new Promise<Error>((r) => (reportFatal = r));
  const worker = new WorkerProcess({ argv: cfg.workerArgv, socket: workerSocket, stateDir: cfg.stateDir, log, onFatal: (e) => reportFatal(e), watchdogMs: cfg.watchdogMs ?? 0, startTimeoutMs: cfg.startTimeoutMs ?? 60_000 });
  try {
    if (cfg.stopped?.aborted || !(await startWorker(worker, cfg.stopped))) {
      // Not closed as clean: calls an earlier supervisor left cut off still wait for Docker's retry.
      journal.close();
      rmSync(join(cfg.stateDir, WORKER_PID_FILE), { force: true });
      log.info('stopped before serving: the starting worker was stopped');
      return null;
    }
  } catch (e) {
    journal.close();
    throw e;
  }
  const link = new WorkerLink(workerSocket);
  const handle = handler(journal, forwarder(link, worker, cfg.forwardDeadlineMs ?? FORWARD_DEADLINE_MS, log), log, windowTraceFromEnv());
  const plugin = front(handle, (e, target) => log.error({ err: e, url: target }, 'supervisor could not handle a call'), MAX_BODY);
  const { server } = plugin;
  try {
    await listenPlugin(server, cfg.socket, cfg.inheritedFd ?? null);
  } catch (e) {
    // Nothing serves Docker: do not leave the worker running.
    await worker.stop();
    journal.close();
    throw e;
  }
  const from = cfg.inheritedFd == null ? 'bound by ledgernet' : `from the service manager (socket activation, fd ${cfg.inheritedFd})`;
  log.info({ socket: cfg.socket, socketFrom: from, workerPid: worker.pid() }, `supervisor is serving on ${cfg.socket}, ${from}`);

  let stopped: Promise<void> | null = null;
  return {
    failed,
    stop: () =>
      (stopped ??= (async () => {
        // No new calls; finish the ones in flight (they need the worker), then stop the worker.
        await plugin.close();
        await worker.stop();
        link.close();
        // The service manager's socket stays: calls wait in its backlog for the next start.
        if (cfg.inheritedFd == null) await unlink(cfg.socket).catch(() => undefined);
        journal.close(true);
        rmSync(join(cfg.stateDir, WORKER_PID_FILE), { force: true });
        log.info('supervisor stopped');
      })()),
  };
}
