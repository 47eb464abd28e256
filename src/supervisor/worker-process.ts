// The worker process the supervisor runs: started with an IPC channel, ready when it says so,
// restarted at once when it dies (with a growing pause only while it keeps dying before it is
// ready), and a worker left behind by an earlier supervisor waited for before a new one starts.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Log } from './log.ts';
import { DriverError } from '../errors.ts';
import { PREVIOUS_WORKER_ENV, WORKER_SOCKET_ENV, type PreviousWorker, type WorkerMessage } from './worker-link.ts';
import { PING_MS, Watchdog } from './watchdog.ts';

/**
 * The worker's memory (bench row 9, 2,000 endpoints): its live heap is ~20 MB, but with V8's
 * defaults the repair passes, which parse large `ip -j` and `iptables-save` outputs, let the old
 * generation grow to 4× that between full collections (RSS 95–186 MB). Growing it by 20 % (in
 * effect live + 8 MB, V8's smallest step) and a 1 MB young generation keep it at 88–91 MB, and
 * glibc's malloc returning freed buffers of 64 KiB and more (the observe's outputs) at once,
 * instead of raising its mmap threshold and keeping them in its heap, takes off a few more. No
 * measurable CPU per call (row 6); --optimize-for-size saved a little more and cost +25 %.
 * Flags given to node come after and win.
 */
const WORKER_NODE_FLAGS = ['--max-semi-space-size=1', '--heap-growing-percent=20'];
const WORKER_MALLOC_ENV = { MALLOC_MMAP_THRESHOLD_: '65536', MALLOC_TRIM_THRESHOLD_: '131072' };

export const WORKER_PID_FILE = 'worker.pid';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Whether process `pid` holds the flock of the state dir's lock now (lock.ts holdsStateLock, passed in: the layer table). */
export type HoldsStateLock = (pid: number) => Promise<boolean>;

/** The parent pid of `pid`, or null when it is gone. */
function parentOf(pid: number): number | null {
  try {
    return Number((/^\d+ \(.*\) \S+ (\d+)/s.exec(readFileSync(`/proc/${pid}/stat`, 'utf8')) ?? [])[1]) || null;
  } catch {
    return null;
  }
}

/** A process's arguments after its program, or null when it is gone. */
function argsOf(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(1, -1);
  } catch {
    return null;
  }
}

/** Whether `parent` runs the supervisor that started `worker`: the worker's arguments are its own after the worker's node flags (start()). */
function startedIt(parent: number, worker: number): boolean {
  const p = argsOf(parent);
  const w = argsOf(worker);
  if (!p || !w || p.length < 2 || w.length !== p.length + WORKER_NODE_FLAGS.length) return false;
  return w.slice(WORKER_NODE_FLAGS.length).every((a, i) => a === p[i]);
}

/**
 * Whether `pid` is, now, a ledgernet worker holding the lock of `stateDir`: a supervisor's worker
 * (it has the worker socket in its environment) whose open lock file is this state dir's and holds
 * its flock. A pid alone proves nothing: worker.pid outlives its worker after a crash, and the pid
 * may name any process after a reboot (nats-server, redis-server… all have "serve" in their name).
 */
async function isOldWorker(holdsStateLock: HoldsStateLock, pid: number): Promise<boolean> {
  let environ: string;
  try {
    environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
  } catch {
    return false;
  }
  if (!environ.split('\0').some((v) => v.startsWith(`${WORKER_SOCKET_ENV}=`))) return false;
  return holdsStateLock(pid);
}

/**
 * A worker of an earlier supervisor that was SIGKILLed may still be finishing its calls (it stops
 * when its IPC channel closes). It holds the state-dir lock, so wait for it (10 s), then kill it.
 * Only a process proven to be that worker (isOldWorker) is waited for or signalled: a stale
 * worker.pid naming anything else is ignored. `stopped`: a stop asked for while waiting.
 */
export async function waitOldWorker(stateDir: string, holdsStateLock: HoldsStateLock, log: Log, stopped?: AbortSignal): Promise<void> {
  const file = join(stateDir, WORKER_PID_FILE);
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) return;
  if (!(await isOldWorker(holdsStateLock, pid))) {
    log.info({ workerPid: pid }, `${file} names pid ${pid}, which is not a ledgernet worker holding this state dir's lock: left alone (a stale file)`);
    return;
  }
  // Its parent still runs the command it was started from: that is another ledgernet instance on
  // this state dir, not a leftover (an orphan's parent is init or a subreaper).
  const parent = parentOf(pid);
  if (parent !== null && parent !== process.pid && startedIt(parent, pid)) {
    throw new DriverError(
      'LN_ERR_LOCKED',
      `another ledgernet process (pid ${parent}) is using the state directory ${stateDir} (its worker is pid ${pid}); stop it first, or give this one another --state-dir`,
    );
  }
  log.warn({ workerPid: pid }, 'the worker of an earlier supervisor still runs; waiting for it to stop');
  for (let i = 0; i < 100 && !stopped?.aborted && (await isOldWorker(holdsStateLock, pid)); i++) await sleep(100);
  if (stopped?.aborted || !(await isOldWorker(holdsStateLock, pid))) return;
  log.warn({ workerPid: pid }, 'it did not stop within 10 s; killing it');
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 50 && (await isOldWorker(holdsStateLock, pid)); i++) await sleep(100);
}

interface WorkerOptions {
  readonly argv: readonly string[];
  readonly socket: string;
  readonly stateDir: string;
  readonly log: Log;
  readonly onFatal: (e: Error) => void;
  /** A ready worker whose event loop leaves the pings unanswered this long (ms) is SIGKILLed (watchdog.ts); 0: never. */
  readonly watchdogMs: number;
  /** The same for a worker that has not said it is ready yet (a hang during its start); 0: never. */
  readonly startTimeoutMs: number;
}

export class WorkerProcess {
  private child: ChildProcess | null = null;
  private gen = 0;
  private readyGen: number | null = null;
  private waiters = new Set<() => void>();
  private quickDeaths = 0;
  private stopping = false;
  private exitWaiter: Promise<void> = Promise.resolve();
  private readonly o: WorkerOptions;
  private everReady = false;
  /** How the last worker ended, told to the next one (its `ledgernet status` shows it). */
  private previous: Omit<PreviousWorker, 'generation'> | null = null;
  /** Why this supervisor killed the running worker (the watchdog), for `previous`; one worker runs at a time. */
  private killedWhy: string | null = null;

  constructor(o: WorkerOptions) {
    this.o = o;
  }

  generation(): number | null {
    return this.readyGen;
  }

  pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Resolves when a worker newer than `gen` is ready, or after `ms`. */
  nextWorker(gen: number, ms: number): Promise<void> {
    if (this.readyGen !== null && this.readyGen > gen) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const check = () => {
        if (this.readyGen !== null && this.readyGen > gen) done();
      };
      const timer = setTimeout(done, ms);
      this.waiters.add(check);
    });
  }

  /** Starts the worker; resolves when it is ready, rejects if the first one exits before that. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const gen = ++this.gen;
      let readyAt: number | null = null;
      const child = spawn(process.execPath, [...WORKER_NODE_FLAGS, ...process.execArgv, ...this.o.argv], {
        env: {
          ...WORKER_MALLOC_ENV,
          ...process.env,
          [WORKER_SOCKET_ENV]: this.o.socket,
          ...(this.previous ? { [PREVIOUS_WORKER_ENV]: JSON.stringify({ generation: gen, ...this.previous } satisfies PreviousWorker) } : {}),
        },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        // Its own process group: a terminal's Ctrl-C reaches the supervisor, which stops it in order.
        detached: true,
      });
      this.child = child;
      this.watch(child, () => readyAt === null);
      if (child.pid) writeFileSync(join(this.o.stateDir, WORKER_PID_FILE), `${child.pid}\n`, { mode: 0o600 });
      child.on('message', (m: WorkerMessage) => {
        if (m?.ledgernet !== 'ready' || this.child !== child) return;
        this.readyGen = gen;
        readyAt = Date.now();
        this.everReady = true;
        this.o.log.info({ workerPid: child.pid, generation: gen }, 'worker ready');
        for (const w of [...this.waiters]) w();
        resolve();
      });
      let exited!: () => void;
      this.exitWaiter = new Promise((r) => (exited = r));
      child.on('exit', (code, signal) => {
        exited();
        if (this.child !== child) return;
        this.readyGen = null;
        this.child = null;
        if (this.stopping) return;
        if (!this.everReady) {
          const e = new DriverError('LN_ERR_INTERNAL', `the ledgernet worker exited (${this.killedWhy ?? signal ?? `code ${code}`}) before it was ready; its message is above`);
          reject(e);
          this.o.onFatal(e);
          return;
        }
        const pid = child.pid ?? 0;
        this.previous = { pid, endedAt: new Date().toISOString(), why: this.killedWhy ?? `died (${signal ?? `exit code ${code}`})` };
        this.killedWhy = null;
        this.quickDeaths = readyAt === null ? this.quickDeaths + 1 : 0;
        // At once; only a worker that keeps dying before it is ready gets a growing pause.
        const delay = this.quickDeaths <= 3 ? 0 : Math.min(2_000, 100 * 2 ** (this.quickDeaths - 3));
        this.o.log.error({ workerPid: child.pid, code, signal, restartInMs: delay }, 'worker died; starting a new one');
        setTimeout(() => {
          if (!this.stopping) this.start().catch(() => undefined);
        }, delay);
      });
      child.on('error', (e) => this.o.log.error({ err: e }, 'could not start the worker'));
    });
  }

  /**
   * Pings the worker `child` every second from its spawn; kills it once it has been silent for the
   * start-up limit while `starting()`, then for the watchdog's time. A worker that is slow to start
   * but answers (its event loop runs between the steps of its start) is left alone.
   */
  private watch(child: ChildProcess, starting: () => boolean): void {
    const never = Number.POSITIVE_INFINITY;
    const startMs = this.o.startTimeoutMs > 0 ? this.o.startTimeoutMs : never;
    const readyMs = this.o.watchdogMs > 0 ? this.o.watchdogMs : never;
    if (startMs === never && readyMs === never) return;
    const dog = new Watchdog(startMs, performance.now());
    child.on('message', (m: WorkerMessage) => {
      if (m?.ledgernet === 'pong') dog.pong(performance.now());
      else if (m?.ledgernet === 'ready') dog.relimit(readyMs, performance.now());
    });
    const timer = setInterval(() => {
      if (this.child !== child || this.stopping) return clearInterval(timer);
      const now = performance.now();
      if (dog.tick(now) === 'kill') {
        clearInterval(timer);
        const silentS = Math.round(dog.silentFor(now) / 1000);
        const whose = starting() ? 'the starting worker\'s event loop' : 'the worker\'s event loop';
        const flag = starting() ? '; --worker-start-timeout' : '';
        this.o.log.error(
          { workerPid: child.pid, silentMs: Math.round(dog.silentFor(now)), starting: starting() },
          `${whose} has not answered for ${silentS} s (stopped, or stuck in a loop or call${flag}); killing it and starting a new one`,
        );
        this.killedWhy = `killed by the watchdog: ${starting() ? 'it was starting and ' : ''}its event loop had not answered for ${silentS} s`;
        child.kill('SIGKILL');
        return;
      }
      try {
        if (child.connected) child.send({ ledgernet: 'ping' });
      } catch {
        // The channel is closing: the worker is exiting, and its exit starts the next one.
      }
    }, PING_MS);
    // The supervisor's server keeps it alive; this timer must not.
    timer.unref();
    child.once('exit', () => clearInterval(timer));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child) return;
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = await Promise.race([
      this.exitWaiter.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(r, 25_000, true))),
    ]);
    clearTimeout(timer); // a pending timer would keep the stopped supervisor alive
    if (late) {
      this.o.log.error({ workerPid: child.pid }, 'worker did not stop within 25 s; killing it');
      child.kill('SIGKILL');
      await this.exitWaiter;
    }
  }
}
