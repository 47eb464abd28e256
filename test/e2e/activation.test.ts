// Socket activation (issue 9, finding 9): with the plugin socket held by the service manager
// (packaging/systemd/ledgernet.socket; here test/helpers/socket-holder.ts plays systemd's part),
// a Docker call made while the whole daemon is down waits in the socket's backlog and succeeds
// once the daemon is started again, even when supervisor and worker were SIGKILLed with the call
// queued. `ledgernet serve` refuses an inherited fd that is not the plugin socket, and never
// removes the service manager's socket file.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { cleanupAll, docker, TEST_IMAGE, track, uniqueName, waitFor, type RunResult } from '../helpers/docker.ts';
import { CLI_PATH, ledgernetCli, PLUGIN_SOCKET, REPO_ROOT, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { assertNoLeaks, waitNoLeaks } from '../helpers/leaks.ts';
import { holdSocket, type SocketHolder } from '../helpers/socket-holder.ts';

const ARGS = ['--reconcile-interval', '2', '--log-level', 'info'];
const tmp = mkdtempSync(join(tmpdir(), 'ledgernet-activation-'));
let holder: SocketHolder | null = null;

before(() => assertNoLeaks());

after(async () => {
  await cleanupAll();
  await stopAllDaemons();
  await holder?.close();
  rmSync(tmp, { recursive: true, force: true });
});

/** Runs `serve` with fd 3 = `fd3` (or nothing) and `env`; it must exit with a refusal. */
async function serveRefused(env: Record<string, string>, fd3: number | SocketHolder | null, socket: string): Promise<{ code: number | null; out: string }> {
  const state = mkdtempSync(join(tmp, 'state-'));
  const args = [CLI_PATH, 'serve', '--socket', socket, '--state-dir', state];
  // A file on fd 3: a shell sets LISTEN_PID to its own pid and execs serve (as systemd does).
  const launcher = fd3 === null ? [] : typeof fd3 === 'number' ? ['sh', '-c', 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"'] : fd3.launcher;
  const [cmd, ...pre] = [...launcher, process.execPath];
  const child = spawn(cmd as string, [...pre, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, LEDGERNET_DOCKER_SOCKET: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe', typeof fd3 === 'number' ? fd3 : 'ignore'],
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const late = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  clearTimeout(late);
  return { code, out };
}

/** Connections waiting in the listening socket's accept queue (`ss -xl`'s Recv-Q). */
async function backlog(path: string): Promise<number> {
  const r = await execa('ss', ['-xlnH', 'src', path]);
  return Number(r.stdout.trim().split(/\s+/)[2] ?? 0);
}

/** Starts `args`, waits until Docker's call to the plugin waits in the backlog, SIGKILLs the whole daemon, starts it again. */
async function callThroughCrash(d: DaemonHandle, h: SocketHolder, args: string[]): Promise<{ r: RunResult; d: DaemonHandle }> {
  process.kill(d.proc.pid!, 'SIGSTOP');
  const call = docker(args, { timeoutMs: 120_000 });
  await waitFor(async () => (await backlog(h.path)) >= 1, { what: `docker ${args[0]}'s call in the plugin socket's backlog`, timeoutMs: 20_000 });
  await d.kill9All(); // SIGKILL ends a stopped process too
  assert.ok(existsSync(h.path), 'the socket file stays');
  assert.ok((await backlog(h.path)) >= 1, 'the call still waits in the backlog with no daemon running');
  const next = await startDaemon({ ...d.options, launcher: h.launcher });
  return { r: await call, d: next };
}

describe('socket activation', () => {
  test('serve refuses an inherited fd that is not the plugin socket or not a socket, and LISTEN_PID of another process', async () => {
    const other = await holdSocket(join(tmp, 'other.sock'));
    try {
      const elsewhere = await serveRefused({}, other, join(tmp, 'plugin.sock'));
      assert.notEqual(elsewhere.code, 0);
      assert.match(elsewhere.out, /fd 3 listens on .*other\.sock, not on the plugin socket .*plugin\.sock/);
      assert.ok(existsSync(other.path), 'the service manager\'s socket file is left alone');
    } finally {
      await other.close();
    }
    const wrongPid = await serveRefused({ LISTEN_FDS: '1', LISTEN_PID: '1' }, null, join(tmp, 'plugin.sock'));
    assert.notEqual(wrongPid.code, 0);
    assert.match(wrongPid.out, /LISTEN_PID=1 names another process, not this one/);
    const file = join(tmp, 'not-a-socket');
    const fd = openSync(file, 'w');
    try {
      const r = await serveRefused({}, fd, join(tmp, 'plugin.sock'));
      assert.notEqual(r.code, 0);
      assert.match(r.out, /fd 3 \(LISTEN_FDS=1\) is not a socket/);
    } finally {
      closeSync(fd);
    }
    assert.equal(existsSync(join(tmp, 'plugin.sock')), false, 'nothing was bound at the configured path');
  });

  test('the whole daemon SIGKILLed while docker network create and docker run wait in the backlog: both succeed', async () => {
    holder = await holdSocket(PLUGIN_SOCKET);
    let d = await startDaemon({ extraArgs: ARGS, launcher: holder.launcher, keepStateDir: false });
    // The supervisor can answer a call that waited in the backlog before its log line reaches us.
    await waitFor(() => /from the service manager \(socket activation, fd 3\)/.test(d.logs()), { what: 'the supervisor says it serves the inherited socket', timeoutMs: 5_000 });
    const st = await ledgernetCli(['status', '--state-dir', d.stateDir]);
    assert.match(st.stdout, new RegExp(`^daemon: running \\(supervisor pid ${d.proc.pid}, worker pid ${d.workerPid()}\\), plugin socket from the service manager \\(socket activation\\)$`, 'm'), st.stdout + st.stderr);
    const net = track.network(uniqueName('act'));
    let out = await callThroughCrash(d, holder, ['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.220.0/24', net]);
    d = out.d;
    assert.equal(out.r.exitCode, 0, `docker network create: ${out.r.stderr}`);
    const c = track.container(uniqueName('act'));
    out = await callThroughCrash(d, holder, ['run', '-d', '--name', c, '--network', net, TEST_IMAGE, 'sleep', '600']);
    d = out.d;
    assert.equal(out.r.exitCode, 0, `docker run: ${out.r.stderr}`);
    const ping = await docker(['exec', c, 'ping', '-c', '1', '-W', '2', '10.231.220.1']);
    assert.equal(ping.exitCode, 0, `the container reaches its gateway: ${ping.stdout}${ping.stderr}`);

    // A graceful stop leaves the service manager's socket in place (and its calls waiting).
    await d.terminate();
    assert.ok(existsSync(PLUGIN_SOCKET), 'the socket file stays after a clean stop');
    d = await startDaemon({ ...d.options, launcher: holder.launcher });
    assert.equal((await docker(['rm', '-f', c])).exitCode, 0);
    const rm = await docker(['network', 'rm', net]);
    assert.equal(rm.exitCode, 0, `docker network rm: ${rm.stderr}`);
    await waitNoLeaks(20_000);
    await d.stop();
    await holder.close();
    holder = null;
    assert.equal(existsSync(PLUGIN_SOCKET), false);
  });
});
