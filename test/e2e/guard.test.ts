// One ledgernet per host, and nobody but root steers it: real `ledgernet serve` daemons (no
// dockerd needed), the real host guard (/run/docker/plugins/ledgernet-host.lock), and a user
// that is not root (nobody, through setpriv) trying the locks and the control socket.
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { ledgernetCli, startDaemon, stopAllDaemons } from '../helpers/daemon.ts';

const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];
const GUARD = '/run/docker/plugins/ledgernet-host.lock';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ln-guard-'));
  // Only ledgernet's own directories may keep other users out, not this test's folder.
  await chmod(root, 0o755);
});
after(async () => {
  await stopAllDaemons();
  await rm(root, { recursive: true, force: true });
});

async function fresh(name: string): Promise<{ stateDir: string; socket: string }> {
  const dir = join(root, name);
  await mkdir(dir, { mode: 0o755 });
  return { stateDir: join(dir, 'state'), socket: join(dir, 'plugin.sock') };
}

/** GET /status on a control socket as nobody: the HTTP status, or the connect error's code. */
async function statusAsNobody(controlSock: string): Promise<string> {
  const script = `require('http').get({ socketPath: ${JSON.stringify(controlSock)}, path: '/status' }, (r) => { console.log(r.statusCode); r.resume(); }).on('error', (e) => console.log(e.code));`;
  const r = await execa('setpriv', [...NOBODY, process.execPath, '-e', script], { reject: false, cwd: '/', timeout: 15_000 });
  return r.stdout.trim() || r.stderr;
}

describe('host guard: one instance per host', () => {
  test('a second serve with another state dir and socket refuses naming the first; after kill -9 of the first it starts', async () => {
    const a = await fresh('a');
    const b = await fresh('b');
    const first = await startDaemon({ ...a, extraArgs: ['--reconcile-interval', '0'] });
    try {
      const r = await ledgernetCli(['serve', '--state-dir', b.stateDir, '--socket', b.socket, '--reconcile-interval', '0']);
      assert.equal(r.exitCode, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`another ledgernet instance runs on this host \\(pid ${first.proc.pid}, state dir ${a.stateDir}, socket ${a.socket}, started `));
      assert.match(r.stderr, /LN_ERR_HOST_IN_USE/);
      assert.equal(existsSync(b.socket), false, 'the refused instance opened no socket');
      await first.kill9();
      const second = await startDaemon({ ...b, extraArgs: ['--reconcile-interval', '0'] });
      await second.stop();
    } finally {
      await first.stop();
    }
  });

  test('reconcile without a daemon refuses while another instance runs (its pass would remove that one\'s networks)', async () => {
    const a = await fresh('c');
    const b = await fresh('d');
    // b is a real state dir (an instance served it once), so the refusal is the guard's, not the
    // missing log's.
    await (await startDaemon({ ...b, extraArgs: ['--reconcile-interval', '0'] })).stop();
    assert.ok(existsSync(join(b.stateDir, 'events.log')));
    const d = await startDaemon({ ...a, extraArgs: ['--reconcile-interval', '0'] });
    try {
      const r = await ledgernetCli(['reconcile', '--state-dir', b.stateDir]);
      assert.equal(r.exitCode, 1);
      assert.match(r.stderr, new RegExp(`pid ${d.proc.pid}, state dir ${a.stateDir}`));
    } finally {
      await d.stop();
    }
  });
});

describe('only root holds, blocks or steers', () => {
  test('nobody cannot hold or block the guard or the state-dir lock; root starts anyway', async () => {
    const a = await fresh('e');
    const tries = [GUARD, join(a.stateDir, 'lock')].map((f) =>
      execa('setpriv', [...NOBODY, 'flock', '--nonblock', '--exclusive', f, 'sleep', '30'], { reject: false, cwd: '/', timeout: 15_000 }),
    );
    await mkdir(a.stateDir, { recursive: true, mode: 0o700 });
    const d = await startDaemon({ ...a, extraArgs: ['--reconcile-interval', '0'] });
    try {
      for (const t of await Promise.all(tries)) {
        assert.notEqual(t.exitCode, 0);
        assert.match(t.stderr, /Permission denied|No such file/);
      }
      const again = await execa('setpriv', [...NOBODY, 'flock', '--nonblock', '--exclusive', GUARD, 'true'], { reject: false, cwd: '/' });
      assert.match(again.stderr, /Permission denied/);
    } finally {
      await d.stop();
    }
  });

  test('sockets have their modes from the start; a 0755 state dir is tightened and logged; control.sock lets in only root or its group', async () => {
    const a = await fresh('f');
    await mkdir(a.stateDir, { mode: 0o755 });
    await chmod(a.stateDir, 0o755);
    const d = await startDaemon({ ...a, extraArgs: ['--reconcile-interval', '0'] });
    try {
      const ctl = join(a.stateDir, 'control.sock');
      // The plugin socket answers first; the control socket follows it.
      for (let i = 0; i < 100 && !(await stat(ctl).catch(() => null)); i++) await sleep(100);
      assert.equal((await stat(a.stateDir)).mode & 0o777, 0o700);
      assert.match(d.logs(), /the state directory was open to group or others: tightened to 0700/);
      assert.equal((await stat(a.socket)).mode & 0o777, 0o660);
      assert.equal((await stat(ctl)).mode & 0o777, 0o600);

      assert.equal(await statusAsNobody(ctl), 'EACCES', 'the 0700 state dir keeps nobody out');
      // An operator loosens the permissions by mistake: the peer check still refuses nobody.
      await chmod(a.stateDir, 0o755);
      await chmod(ctl, 0o666);
      assert.equal(await statusAsNobody(ctl), '403');
      const asRoot = await ledgernetCli(['status', '--json', '--state-dir', a.stateDir]);
      const { daemon } = JSON.parse(asRoot.stdout) as { daemon: { pid: number; supervisorPid: number } };
      assert.deepEqual([daemon.pid, daemon.supervisorPid], [d.workerPid(), d.proc.pid], 'status names the worker, the daemon behind the supervisor, and the supervisor');
      // Letting a group in: the socket's group may call.
      await chown(ctl, 0, 65534);
      assert.equal(await statusAsNobody(ctl), '200');
    } finally {
      await d.stop();
    }
  });
});
