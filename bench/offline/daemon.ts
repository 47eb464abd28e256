// A ledgernet daemon of the benchmark's own: `node dist/cli.js serve` inside a network namespace
// the caller made (so its reconciler sees only that namespace), with its own state dir, plugin
// socket and host-guard dir under `dir`, and no Docker API. Build first (`npm run build`).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SERVE_NODE_FLAGS } from '../../src/config.ts';
import { CLI_PATH, REPO_ROOT, pluginCall } from '../../test/helpers/daemon.ts';

export interface BenchDaemonOptions {
  readonly netns: string;
  /** Holds state/, run/ and the socket p.sock; the caller removes it. */
  readonly dir: string;
  readonly extraArgs?: readonly string[];
  /** Options for node (supervisor and worker), e.g. V8 flags; after the supervisor's own (SERVE_NODE_FLAGS, as the unit starts it). */
  readonly nodeArgs?: readonly string[];
  /** Write a CPU profile of supervisor and worker here (on a clean stop). */
  readonly cpuProfDir?: string | undefined;
  readonly readyTimeoutMs?: number;
}

export interface BenchDaemon {
  readonly socket: string;
  readonly stateDir: string;
  readonly proc: ChildProcess;
  /** ms from spawn until the plugin socket answered Plugin.Activate. */
  readonly readyMs: number;
  workerPid(): number | null;
  logs(): string;
  /** SIGTERM and wait (SIGKILL after 20 s). */
  stop(): Promise<void>;
}

/** Resident set size of a process in MB (VmRSS), or NaN when it is gone. */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/**
 * Proportional set size of a process in MB (Pss of smaps_rollup): its private pages plus its share
 * of pages mapped by several processes (the node binary both serve processes map is counted once
 * over the two), or NaN when it is gone.
 */
export function pssMb(pid: number): number {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** CPU time (user + system) a process has used so far, in ms, or NaN when it is gone. */
export function cpuMs(pid: number): number {
  try {
    // Fields after the command name: state is 3rd, utime 14th and stime 15th of the whole line.
    const f = (readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1] ?? '').split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return Number.NaN;
  }
}

export async function startBenchDaemon(o: BenchDaemonOptions): Promise<BenchDaemon> {
  const stateDir = join(o.dir, 'state');
  const socket = join(o.dir, 'p.sock');
  await mkdir(join(o.dir, 'run'), { recursive: true });
  const prof = o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`] : [];
  const args = ['netns', 'exec', o.netns, process.execPath, ...SERVE_NODE_FLAGS, ...(o.nodeArgs ?? []), ...prof, CLI_PATH, 'serve', '--socket', socket, '--state-dir', stateDir, '--log-level', 'warn', ...(o.extraArgs ?? [])];
  const t0 = performance.now();
  // `ip netns exec` execs node: the pid is the supervisor's.
  const proc = spawn('ip', args, {
    cwd: REPO_ROOT,
    env: { ...process.env, LEDGERNET_RUN_DIR: join(o.dir, 'run'), LEDGERNET_DOCKER_SOCKET: '', LEDGERNET_NATS_URL: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const append = (c: Buffer) => {
    log = (log + c.toString('utf8')).slice(-1_000_000);
  };
  proc.stdout?.on('data', append);
  proc.stderr?.on('data', append);
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  let done = false;
  void exited.then(() => (done = true));
  const stop = async () => {
    if (done) return;
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(t);
  };
  const deadline = Date.now() + (o.readyTimeoutMs ?? 60_000);
  for (;;) {
    const r = await pluginCall('Plugin.Activate', undefined, socket, { timeoutMs: 2_000 }).catch(() => null);
    if (r?.status === 200) break;
    if (done || Date.now() > deadline) {
      await stop();
      throw new Error(`the bench daemon did not answer on ${socket}${done ? ' (it exited)' : ''}\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const readyMs = performance.now() - t0;
  return {
    socket,
    stateDir,
    proc,
    readyMs,
    workerPid: () => {
      try {
        return Number.parseInt(readFileSync(join(stateDir, 'worker.pid'), 'utf8'), 10) || null;
      } catch {
        return null;
      }
    },
    logs: () => log,
    stop,
  };
}
