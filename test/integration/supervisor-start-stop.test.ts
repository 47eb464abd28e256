// The supervisor's own start and stop, with real processes (dist/, supervisor and worker, in a
// network namespace this test makes, with its own host guard dir and no Docker): a stale
// worker.pid naming an unrelated process, a signal or the supervisor's death while the worker
// starts, a replacement worker that hangs before it is ready, SIGHUP. Needs root and `npm run build`.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { CLI_PATH, REPO_ROOT, pluginCall, startDaemon, stopAllDaemons } from '../helpers/daemon.ts';
import { throwawayNetns } from '../helpers/netns.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';
const ARGS = ['--reconcile-interval', '0', '--docker-socket', ''];

/** Alive and not a zombie. */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function waitFor(what: string, cond: () => boolean, timeoutMs: number, intervalMs = 20): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

function pidIn(file: string): number | null {
  try {
    const pid = Number.parseInt(readFileSync(file, 'utf8'), 10);
    return pid > 1 ? pid : null;
  } catch {
    return null;
  }
}

describe("the supervisor's own start and stop", { skip }, () => {
  const netns = throwawayNetns('lnsup');
  let root: string;
  let runDir: string;
  let n = 0;
  /** Processes a test made; SIGKILLed after it (SIGCONT first: a stopped one dies only then). */
  const made = new Set<number>();
  const paths = () => {
    n += 1;
    return { stateDir: join(root, `s${n}`, 'state'), socket: join(root, `s${n}`, 'p.sock') };
  };
  const env = () => ({ LEDGERNET_RUN_DIR: runDir });

  /** `serve` without waiting for it to be ready: the process (in the test's netns) and its output. */
  const spawnServe = (stateDir: string, socket: string, extra: readonly string[] = []) => {
    const proc = spawn('ip', ['netns', 'exec', netns, process.execPath, CLI_PATH, 'serve', '--socket', socket, '--state-dir', stateDir, ...ARGS, ...extra], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env() },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<{ code: number | null; signal: string | null }>((r) => proc.on('exit', (code, signal) => r({ code, signal })));
    if (proc.pid) made.add(proc.pid);
    return { proc, exited, out: () => out };
  };

  /** Whether anybody holds the flock of the state dir's lock (flock(1) cannot take it). */
  const lockHeld = async (stateDir: string) => (await execa('flock', ['--nonblock', '--conflict-exit-code', '75', join(stateDir, 'lock'), 'true'], { reject: false })).exitCode === 75;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ln-sup-'));
    runDir = await mkdtemp(join(tmpdir(), 'ln-sup-run-'));
  });
  afterEach(async () => {
    await stopAllDaemons();
    for (const pid of made) {
      try {
        process.kill(pid, 'SIGCONT');
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    made.clear();
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  });

  /** A stale worker.pid naming `victim` (the state dir made as serve makes it); then serve must start at once and leave it alone. */
  const startsBeside = async (victim: number) => {
    const { stateDir, socket } = paths();
    await mkdir(stateDir, { recursive: true, mode: 0o700 });
    await writeFile(join(stateDir, 'worker.pid'), `${victim}\n`);
    const t0 = Date.now();
    const d = await startDaemon({ stateDir, socket, launcher: ['ip', 'netns', 'exec', netns], extraArgs: ARGS, env: env() });
    made.add(d.proc.pid ?? 0);
    assert.ok(Date.now() - t0 < 8_000, `serve took ${Date.now() - t0} ms: it waited for pid ${victim}\n${d.logs()}`);
    assert.ok(running(victim), `pid ${victim} was killed by serve\n${d.logs()}`);
    assert.match(d.logs(), new RegExp(`names pid ${victim}, which is not a ledgernet worker holding this state dir's lock: left alone`));
    assert.doesNotMatch(d.logs(), /earlier supervisor still runs/);
  };

  it('a stale worker.pid naming an unrelated "nats-server" neither gets it killed nor delays the start', async () => {
    const victim = spawn('sleep', ['600'], { argv0: 'nats-server', detached: true, stdio: 'ignore' });
    assert.ok(victim.pid);
    made.add(victim.pid);
    await waitFor('the victim to run as nats-server', () => readFileSync(`/proc/${victim.pid}/cmdline`, 'utf8').startsWith('nats-server'), 5_000);
    await startsBeside(victim.pid);
  });

  it('a stale worker.pid naming a process whose parent is "redis-server" is no reason to refuse (LN_ERR_LOCKED)', async () => {
    // The parent's name has "serve" in it, and so has the child's.
    const parent = spawn('bash', ['-c', '(exec -a redis-server sleep 600) & echo $!; wait'], { argv0: 'redis-server', detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
    assert.ok(parent.pid);
    made.add(parent.pid);
    const child = await new Promise<number>((r) => parent.stdout.once('data', (c: Buffer) => r(Number.parseInt(c.toString(), 10))));
    made.add(child);
    await waitFor('the child to run as redis-server', () => readFileSync(`/proc/${child}/cmdline`, 'utf8').startsWith('redis-server'), 5_000);
    await startsBeside(child);
    assert.ok(running(parent.pid), 'its parent runs too');
  });

  /** Spawns serve and returns once its worker runs (worker.pid written at spawn), SIGSTOPped so it is still starting. */
  const serveWithStoppedWorker = async () => {
    const { stateDir, socket } = paths();
    const s = spawnServe(stateDir, socket);
    let worker: number | null = null;
    await waitFor('the worker to be spawned', () => (worker = pidIn(join(stateDir, 'worker.pid'))) !== null, 15_000, 2);
    const w = worker as unknown as number;
    made.add(w);
    process.kill(w, 'SIGSTOP');
    assert.doesNotMatch(s.out(), /worker ready/, 'the worker was stopped before it was ready');
    return { ...s, stateDir, socket, worker: w };
  };

  /** After a stop: no process, no plugin socket file, no worker.pid, the lock free. */
  const nothingLeft = async (o: { stateDir: string; socket: string; worker: number; out: () => string }) => {
    await waitFor(`worker ${o.worker} to exit\n${o.out()}`, () => !running(o.worker), 15_000, 50);
    assert.equal(existsSync(o.socket), false, `the plugin socket file was removed\n${o.out()}`);
    assert.equal(existsSync(join(o.stateDir, 'worker.pid')), false, `worker.pid was removed\n${o.out()}`);
    assert.equal(await lockHeld(o.stateDir), false, 'the state lock is free');
  };

  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`${sig} while the worker starts stops it and the supervisor (nothing left behind)`, async () => {
      const s = await serveWithStoppedWorker();
      process.kill(s.proc.pid ?? 0, sig);
      await sleep(200);
      process.kill(s.worker, 'SIGCONT');
      const exit = await Promise.race([s.exited, sleep(30_000).then(() => 'late' as const)]);
      assert.deepEqual(exit, { code: 0, signal: null }, `the supervisor exited cleanly\n${s.out()}`);
      assert.match(s.out(), /stopped before serving: the starting worker was stopped/);
      await nothingLeft(s);
    });
  }

  it('SIGTERM in the middle of the worker start (not stopped) leaves nothing behind either', async () => {
    const { stateDir, socket } = paths();
    const s = spawnServe(stateDir, socket);
    let worker: number | null = null;
    await waitFor('the worker to be spawned', () => (worker = pidIn(join(stateDir, 'worker.pid'))) !== null, 15_000, 2);
    made.add(worker as unknown as number);
    await sleep(400);
    process.kill(s.proc.pid ?? 0, 'SIGTERM');
    const exit = await Promise.race([s.exited, sleep(30_000).then(() => 'late' as const)]);
    assert.deepEqual(exit, { code: 0, signal: null }, `the supervisor exited cleanly\n${s.out()}`);
    await nothingLeft({ stateDir, socket, worker: worker as unknown as number, out: s.out });
  });

  it('a worker whose supervisor is SIGKILLed while it starts exits on its own', async () => {
    const s = await serveWithStoppedWorker();
    process.kill(s.proc.pid ?? 0, 'SIGKILL');
    await s.exited;
    process.kill(s.worker, 'SIGCONT');
    await waitFor(`worker ${s.worker} to exit on its own\n${s.out()}`, () => !running(s.worker), 20_000, 50);
    assert.equal(await lockHeld(s.stateDir), false, 'the state lock is free');
  });

  it('a replacement worker that hangs before it is ready (SIGSTOP) is killed after --worker-start-timeout and replaced', async () => {
    const { stateDir, socket } = paths();
    const d = await startDaemon({ stateDir, socket, launcher: ['ip', 'netns', 'exec', netns], extraArgs: [...ARGS, '--worker-watchdog', '2', '--worker-start-timeout', '3'], env: env() });
    made.add(d.proc.pid ?? 0);
    const first = await d.kill9Worker();
    assert.ok(first, 'a worker ran');
    let hung: number | null = null;
    await waitFor('the replacement to be spawned', () => (hung = pidIn(join(stateDir, 'worker.pid'))) !== first && hung !== null, 10_000, 2);
    const h = hung as unknown as number;
    made.add(h);
    process.kill(h, 'SIGSTOP');
    const next = await d.waitWorker(h, 20_000);
    made.add(next);
    assert.ok(!running(h), 'the hung worker was killed');
    assert.match(d.logs(), /the starting worker's event loop has not answered for [3-6] s \(stopped, or stuck in a loop or call; --worker-start-timeout\); killing it and starting a new one/);
    assert.equal((await pluginCall('NetworkDriver.GetCapabilities', undefined, socket, { timeoutMs: 10_000 })).status, 200);
  });

  it('SIGHUP stops the supervisor as SIGTERM does: its worker, socket file and worker.pid go', async () => {
    const { stateDir, socket } = paths();
    const d = await startDaemon({ stateDir, socket, launcher: ['ip', 'netns', 'exec', netns], extraArgs: ARGS, env: env() });
    made.add(d.proc.pid ?? 0);
    const worker = d.workerPid();
    assert.ok(worker);
    process.kill(d.proc.pid ?? 0, 'SIGHUP');
    assert.deepEqual(await d.waitExit(30_000), { code: 0, signal: null }, d.logs());
    assert.match(d.logs(), /"signal":"SIGHUP".*shutting down/);
    await nothingLeft({ stateDir, socket, worker, out: d.logs });
  });

  it('a call made while the worker is stopping (not dead) waits for the next worker: no "died 4 times"', async () => {
    const { stateDir, socket } = paths();
    const d = await startDaemon({ stateDir, socket, launcher: ['ip', 'netns', 'exec', netns], extraArgs: [...ARGS, '--worker-watchdog', '2'], env: env() });
    made.add(d.proc.pid ?? 0);
    const worker = d.workerPid();
    assert.ok(worker);
    made.add(worker);
    // Stopping: its link to the supervisor is closed; then held there (a stop step that blocks).
    process.kill(worker, 'SIGTERM');
    await sleep(20);
    try {
      process.kill(worker, 'SIGSTOP');
    } catch (e) {
      // An idle worker may be gone already (a stop of a few ms on a fast machine): then the call
      // still must wait for the next worker, which is what this asserts.
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
    }
    const r = await pluginCall('NetworkDriver.GetCapabilities', undefined, socket, { timeoutMs: 30_000 });
    assert.equal(r.status, 200, `answered by the next worker: ${r.text}\n${d.logs()}`);
    assert.doesNotMatch(d.logs(), /died \d+ times/);
  });
});
