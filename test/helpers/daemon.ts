// Start and stop the ledgernet daemon (`node dist/cli.js serve`) for tests, call its plugin
// socket the way Docker does, and run the CLI. Build first (`npm run build`; scripts/test.sh does).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import type { RunResult } from './docker.ts';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI_PATH = join(REPO_ROOT, 'dist', 'cli.js');
/** Docker finds the plugin by this file name; e2e tests must use it. */
export const PLUGIN_SOCKET = '/run/docker/plugins/ledgernet.sock';

const LOG_LIMIT = 4 * 1024 * 1024;

export interface DaemonOptions {
  /** Default: a fresh mkdtemp under os.tmpdir(). */
  stateDir?: string;
  /** Appended after `serve --socket … --state-dir …`, e.g. ['--reconcile-interval', '1']. */
  extraArgs?: readonly string[];
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** Node's own flags before the script (e.g. --cpu-prof, which NODE_OPTIONS refuses); the supervisor passes them on to its worker. */
  nodeArgs?: readonly string[];
  /** Default PLUGIN_SOCKET; another path suits tests that do not involve dockerd. */
  socket?: string;
  /** Keep the state dir on stop(). Default: false for a dir made here, true for one passed in. */
  keepStateDir?: boolean;
  /** How long to wait for Plugin.Activate to answer 200 (default 15 s). */
  readyTimeoutMs?: number;
  /** Script run by node instead of dist/cli.js (for testing these helpers). */
  cliPath?: string;
  /**
   * Runs the daemon through this command prefix, e.g. a SocketHolder's launcher (socket-holder.ts:
   * the plugin socket passed as systemd would). The socket then answers before the daemon runs.
   */
  launcher?: readonly string[];
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface DaemonHandle {
  proc: ChildProcess;
  stateDir: string;
  socket: string;
  /** Everything the daemon wrote to stdout and stderr so far, interleaved (last 4 MiB). */
  logs(): string;
  /** Resolves when the process has exited. It does not keep the test process alive: prefer waitExit(). */
  exited: Promise<Exit>;
  /** Waits for the daemon to exit on its own; throws (with the logs) after timeoutMs (default 10 s). */
  waitExit(timeoutMs?: number): Promise<Exit>;
  /**
   * SIGKILL, as a crash would: the supervisor and its worker at once (kill9All); waits for both
   * to be gone and leaves the state dir alone.
   */
  kill9(): Promise<void>;
  /** kill9 under its explicit name: the whole daemon, supervisor and worker. */
  kill9All(): Promise<void>;
  /**
   * SIGKILLs only the worker (the supervisor keeps the socket and starts a new one); waits until
   * it is gone. Returns the killed pid, or null when no worker ran (e.g. one is just starting).
   */
  kill9Worker(): Promise<number | null>;
  /** The pid of the current worker (from <state-dir>/worker.pid), or null when none runs. */
  workerPid(): number | null;
  /** Waits until a worker other than `oldPid` runs and the socket answers Plugin.Activate. */
  waitWorker(oldPid: number | null, timeoutMs?: number): Promise<number>;
  /** SIGTERM, waits for the exit (SIGKILL after 10 s), then removes the state dir unless kept. */
  stop(): Promise<void>;
  /** SIGTERM, waits for the exit (SIGKILL after 10 s); leaves the state dir alone. */
  terminate(): Promise<void>;
  /** What startDaemon was given, with the state dir it used: starts the next daemon alike. */
  options: DaemonOptions & { stateDir: string; keepStateDir: boolean };
}

const running = new Set<DaemonHandle>();

// A test that fails half-way must not leave a daemon holding the plugin socket.
process.on('exit', () => {
  for (const d of running) {
    const w = d.workerPid();
    if (w) process.kill(w, 'SIGKILL');
    d.proc.kill('SIGKILL');
  }
});

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The worker pid a supervisor's state dir names, if that process is alive. */
function readWorkerPid(stateDir: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(join(stateDir, 'worker.pid'), 'utf8'), 10);
    // A zombie counts as gone: the supervisor has not reaped it yet.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return pid > 1 && pidAlive(pid) && !/^\d+ \(.*\) Z/.test(stat) ? pid : null;
  } catch {
    return null;
  }
}

async function waitGone(pid: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (/^\d+ \(.*\) Z/.test(stat)) return;
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`process ${pid} still runs ${timeoutMs} ms after SIGKILL`);
}

/** Starts `node dist/cli.js serve` and resolves once Plugin.Activate answers 200. */
export async function startDaemon(opts: DaemonOptions = {}): Promise<DaemonHandle> {
  const cli = opts.cliPath ?? CLI_PATH;
  if (!existsSync(cli)) throw new Error(`${cli} does not exist: run \`npm run build\` first`);
  const socket = opts.socket ?? PLUGIN_SOCKET;
  await mkdir(dirname(socket), { recursive: true });
  if (!opts.launcher && (await answers(socket))) {
    throw new Error(`something already answers on ${socket}: a daemon from an earlier test is still running`);
  }
  const madeStateDir = opts.stateDir === undefined;
  const stateDir = opts.stateDir ?? (await mkdtemp(join(tmpdir(), 'ledgernet-test-')));
  const keepStateDir = opts.keepStateDir ?? !madeStateDir;

  // A daemon Docker does not know (another socket) must not ask Docker which networks exist:
  // Docker has none of the networks the test creates by calling the socket directly.
  const env = { ...(socket === PLUGIN_SOCKET ? {} : { LEDGERNET_DOCKER_SOCKET: '' }), ...opts.env };
  const args = [cli, 'serve', '--socket', socket, '--state-dir', stateDir, ...(opts.extraArgs ?? [])];
  const [cmd, ...pre] = [...(opts.launcher ?? []), process.execPath];
  const proc = spawn(cmd as string, [...pre, ...(opts.nodeArgs ?? []), ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const append = (chunk: Buffer): void => {
    log += chunk.toString('utf8');
    if (log.length > LOG_LIMIT) log = log.slice(log.length - LOG_LIMIT);
  };
  proc.stdout?.on('data', append);
  proc.stderr?.on('data', append);
  const exited = new Promise<Exit>((res) => {
    proc.on('exit', (code, signal) => res({ code, signal }));
    proc.on('error', (e) => {
      append(Buffer.from(`\n[spawn error] ${e.message}\n`));
      res({ code: null, signal: null });
    });
  });
  let done = false;
  void exited.then(() => {
    done = true;
    running.delete(handle);
  });

  // A daemon a test forgot to stop must not keep the test process alive (the exit hook kills it);
  // the timer below keeps the loop alive while a stop() is in progress.
  proc.unref();
  for (const s of [proc.stdout, proc.stderr]) (s as { unref?: () => void } | null)?.unref?.();

  // Resolves with the exit, or 'late'; its timer keeps the (unref'd) child's exit observable.
  const exitWithin = async (ms: number): Promise<Exit | 'late'> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => {
      timer = setTimeout(r, ms, 'late');
    });
    try {
      return await Promise.race([exited, late]);
    } finally {
      clearTimeout(timer);
    }
  };
  const killAndWait = async (signal: NodeJS.Signals, graceMs: number): Promise<void> => {
    if (done) return;
    proc.kill(signal);
    if ((await exitWithin(graceMs)) === 'late') {
      proc.kill('SIGKILL');
      await exitWithin(10_000);
    }
  };
  let stopped = false;
  const handle: DaemonHandle = {
    proc,
    stateDir,
    socket,
    exited,
    async waitExit(timeoutMs = 10_000) {
      const r = await exitWithin(timeoutMs);
      if (r === 'late') throw new Error(`ledgernet daemon still runs after ${timeoutMs} ms\n--- daemon logs ---\n${log}`);
      return r;
    },
    logs: () => log,
    kill9: () => handle.kill9All(),
    async kill9All() {
      // Both at once, supervisor first (as when the whole service is killed).
      const w = readWorkerPid(stateDir);
      if (!done) proc.kill('SIGKILL');
      if (w) process.kill(w, 'SIGKILL');
      await killAndWait('SIGKILL', 10_000);
      if (w) await waitGone(w, 10_000);
    },
    async kill9Worker() {
      const w = readWorkerPid(stateDir);
      if (!w) return null;
      process.kill(w, 'SIGKILL');
      await waitGone(w, 10_000);
      return w;
    },
    workerPid: () => readWorkerPid(stateDir),
    async waitWorker(oldPid, timeoutMs = 20_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const w = readWorkerPid(stateDir);
        if (w && w !== oldPid) {
          const r = await pluginCall('Plugin.Activate', undefined, socket, { timeoutMs: Math.max(1, end - Date.now()) }).catch(() => null);
          if (r?.status === 200) return w;
        }
        if (Date.now() >= end) throw new Error(`no new worker (after ${oldPid}) within ${timeoutMs} ms\n--- daemon logs ---\n${log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    terminate: () => killAndWait('SIGTERM', 10_000),
    options: { ...opts, stateDir, keepStateDir },
    async stop() {
      await killAndWait('SIGTERM', 10_000);
      if (stopped) return;
      stopped = true;
      if (!keepStateDir) await rm(stateDir, { recursive: true, force: true });
    },
  };
  running.add(handle);

  const readyTimeoutMs = opts.readyTimeoutMs ?? 15_000;
  const deadline = Date.now() + readyTimeoutMs;
  let lastError = 'no answer yet';
  while (!done) {
    try {
      const r = await pluginCall('Plugin.Activate', undefined, socket, { timeoutMs: 2_000 });
      if (r.status === 200) return handle;
      lastError = `HTTP ${r.status}: ${r.text}`;
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
    }
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const why = done ? `exited early (${JSON.stringify(await exited)})` : `not ready after ${readyTimeoutMs} ms`;
  await handle.stop();
  throw new Error(`ledgernet daemon ${why}; last Plugin.Activate: ${lastError}\n--- daemon logs ---\n${log}`);
}

// The two ways a test restarts the daemon. Tests that kill or restart it go through these, so
// the way it is killed can change in one place (e.g. a supervisor that keeps the socket open).

/** SIGKILL, as a crash would, then a new daemon on the same state dir, socket and options. */
export async function kill9AndRestart(d: DaemonHandle): Promise<DaemonHandle> {
  await d.kill9();
  return startDaemon(d.options);
}

/** SIGTERM (a clean shutdown: in-flight calls finish, the log is flushed), then a new daemon alike. */
export async function restartGracefully(d: DaemonHandle): Promise<DaemonHandle> {
  await d.terminate();
  return startDaemon(d.options);
}

/** Stops every daemon started here that still runs (for `after()` hooks). */
export async function stopAllDaemons(): Promise<void> {
  await Promise.all([...running].map((d) => d.stop()));
}

export interface PluginReply {
  status: number;
  /** The parsed body, or undefined when it is not JSON. */
  json: unknown;
  text: string;
}

/**
 * POSTs to `/<method>` on the plugin socket exactly as dockerd 20.10 does: no Content-Type,
 * empty Host, Go's User-Agent and Accept; an object body is compact JSON plus "\n", a string is
 * sent as is, undefined sends an empty body. Rejects only on transport errors and timeouts.
 */
export function pluginCall(
  method: string,
  body: string | object | undefined,
  socket: string = PLUGIN_SOCKET,
  opts: { timeoutMs?: number } = {},
): Promise<PluginReply> {
  const payload = body === undefined ? '' : typeof body === 'string' ? body : `${JSON.stringify(body)}\n`;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolvePromise, reject) => {
    const req = request(
      {
        socketPath: socket,
        method: 'POST',
        path: `/${method}`,
        agent: false,
        setHost: false,
        headers: {
          Host: '',
          'User-Agent': 'Go-http-client/1.1',
          'Content-Length': Buffer.byteLength(payload),
          Accept: 'application/vnd.docker.plugins.v1.2+json',
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolvePromise({ status: res.statusCode ?? 0, json, text });
        });
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method}: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** Runs `node dist/cli.js ...args` and returns its output; never throws. */
export async function ledgernetCli(args: readonly string[], env?: Record<string, string>): Promise<RunResult> {
  const r = await execa(process.execPath, [CLI_PATH, ...args], {
    reject: false,
    stdin: 'ignore',
    cwd: REPO_ROOT,
    timeout: 60_000,
    ...(env ? { env } : {}),
  });
  return {
    stdout: r.stdout,
    stderr: r.exitCode === undefined ? [r.stderr, r.shortMessage].filter(Boolean).join('\n') : r.stderr,
    exitCode: r.exitCode ?? -1,
  };
}

async function answers(socket: string): Promise<boolean> {
  if (!existsSync(socket)) return false;
  try {
    await pluginCall('Plugin.Activate', undefined, socket, { timeoutMs: 2_000 });
    return true;
  } catch {
    return false;
  }
}

/** An event as `ledgernet events --json` prints it, loosely typed for assertions. */
export interface LoggedEvent {
  readonly seq: number;
  readonly id: string;
  readonly type: string;
  readonly data: Record<string, unknown>;
  readonly cause?: Record<string, unknown>;
}

/** The log at `stateDir` as `ledgernet events --json` prints it (asserts the command succeeds). */
export async function loggedEvents(stateDir: string): Promise<LoggedEvent[]> {
  const r = await ledgernetCli(['events', '--json', '--state-dir', stateDir]);
  if (r.exitCode !== 0) throw new Error(`ledgernet events --json failed: ${r.stderr}`);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as LoggedEvent);
}
