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

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A worker of an earlier supervisor that was SIGKILLed may still be finishing its calls (it stops
 * when its IPC channel closes). It holds the state-dir lock, so wait for it (10 s), then kill it.
 */
export async function waitOldWorker(stateDir: string, log: Log): Promise<void> {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(join(stateDir, WORKER_PID_FILE), 'utf8'), 10);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) return;
  const isWorker = () => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('serve') && isAlive(pid);
    } catch {
      return false;
    }
  };
  if (!isWorker()) return;
  // Its supervisor still runs: that is another ledgernet instance on this state dir, not a leftover.
  let ppid = 0;
  const parentServes = (() => {
    try {
      ppid = Number((/^\d+ \(.*\) \S+ (\d+)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8')) ?? [])[1]);
      return ppid > 1 && ppid !== process.pid && readFileSync(`/proc/${ppid}/cmdline`, 'utf8').includes('serve');
    } catch {
      return false;
    }
  })();
  if (parentServes) {
    throw new DriverError(
      'LN_ERR_LOCKED',
      `another ledgernet process (pid ${ppid}) is using the state directory ${stateDir} (its worker is pid ${pid}); stop it first, or give this one another --state-dir`,
    );
  }
  log.warn({ workerPid: pid }, 'the worker of an earlier supervisor still runs; waiting for it to stop');
  for (let i = 0; i < 100 && isWorker(); i++) await sleep(100);
  if (isWorker()) {
    log.warn({ workerPid: pid }, 'it did not stop within 10 s; killing it');
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 50 && isWorker(); i++) await sleep(100);
  }
}

interface WorkerOptions {
  readonly argv: readonly string[];
  readonly socket: string;
  readonly stateDir: string;
  readonly log: Log;
  readonly onFatal: (e: Error) => void;
  /** A ready worker whose event loop leaves the pings unanswered this long (ms) is SIGKILLed (watchdog.ts); 0: never. */
  readonly watchdogMs: number;
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
      if (child.pid) writeFileSync(join(this.o.stateDir, WORKER_PID_FILE), `${child.pid}\n`, { mode: 0o600 });
      child.on('message', (m: WorkerMessage) => {
        if (m?.ledgernet !== 'ready' || this.child !== child) return;
        this.readyGen = gen;
        readyAt = Date.now();
        this.everReady = true;
        this.o.log.info({ workerPid: child.pid, generation: gen }, 'worker ready');
        this.watch(child);
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
          const e = new DriverError('LN_ERR_INTERNAL', `the ledgernet worker exited (${signal ?? `code ${code}`}) before it was ready; its message is above`);
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

  /** Pings the ready worker `child` every second; kills it once it has been silent for the watchdog's time. */
  private watch(child: ChildProcess): void {
    const limit = this.o.watchdogMs;
    if (limit <= 0) return;
    const dog = new Watchdog(limit, performance.now());
    child.on('message', (m: WorkerMessage) => {
      if (m?.ledgernet === 'pong') dog.pong(performance.now());
    });
    const timer = setInterval(() => {
      if (this.child !== child || this.stopping) return clearInterval(timer);
      const now = performance.now();
      if (dog.tick(now) === 'kill') {
        clearInterval(timer);
        const silentS = Math.round(dog.silentFor(now) / 1000);
        this.o.log.error(
          { workerPid: child.pid, silentMs: Math.round(dog.silentFor(now)) },
          `the worker's event loop has not answered for ${silentS} s (stopped, or stuck in a loop or call); killing it and starting a new one`,
        );
        this.killedWhy = `killed by the watchdog: its event loop had not answered for ${silentS} s`;
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
