// `serve --control-group`: a group's members use the control socket, whether it is their primary
// group or (as usual) a supplementary one, and it stays so across restarts: the daemon (dist/, in
// a network namespace this test makes, with its own host guard dir) makes the state dir 0710 and
// the socket 0660 in that group at every start. A numeric gid, so /etc/group is not touched.
// Without the option it is root's alone again. Needs root (setpriv) and `npm run build`.
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { CLI_PATH, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { throwawayNetns } from '../helpers/netns.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces and to run as nobody';

const GID = 4242;
const MEMBER = ['--reuid=65534', '--regid=65534', `--groups=${GID}`];
const NON_MEMBER = ['--reuid=65534', '--regid=65534', '--clear-groups'];

describe('control socket for a group (serve --control-group)', { skip }, () => {
  const netns = throwawayNetns('lnctlgrp');
  let root: string;
  let runDir: string;
  let stateDir: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ln-ctlgrp-'));
    await chmod(root, 0o755); // only the state dir keeps users out
    runDir = await mkdtemp(join(tmpdir(), 'ln-ctlgrp-run-'));
    stateDir = join(root, 'state');
  });
  after(async () => {
    await stopAllDaemons();
    await rm(root, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  });

  const ctl = () => join(stateDir, 'control.sock');

  async function start(extra: readonly string[]): Promise<DaemonHandle> {
    const d = await startDaemon({
      stateDir,
      socket: join(root, 'plugin.sock'),
      launcher: ['ip', 'netns', 'exec', netns],
      extraArgs: ['--reconcile-interval', '0', ...extra],
      env: { LEDGERNET_RUN_DIR: runDir },
    });
    // The plugin socket answers first; the control socket follows it.
    for (let i = 0; i < 100 && !(await stat(ctl()).catch(() => null)); i++) await sleep(100);
    return d;
  }

  /** `ledgernet <args>` as uid 65534 with `who`'s groups. */
  const cliAs = (who: string[], args: string[]) =>
    execa('setpriv', [...who, process.execPath, CLI_PATH, ...args, '--state-dir', stateDir], { reject: false, cwd: '/', timeout: 30_000 });

  /** GET /status on the control socket as `who`: the HTTP status, or the connect error's code. */
  async function statusAs(who: string[]): Promise<string> {
    const script = `require('http').get({ socketPath: ${JSON.stringify(ctl())}, path: '/status' }, (r) => { console.log(r.statusCode); r.resume(); }).on('error', (e) => console.log(e.code));`;
    const r = await execa('setpriv', [...who, process.execPath, '-e', script], { reject: false, cwd: '/', timeout: 15_000 });
    return r.stdout.trim() || r.stderr;
  }

  async function assertGroupDoor(): Promise<void> {
    const dir = await stat(stateDir);
    const sock = await stat(ctl());
    assert.deepEqual([dir.mode & 0o777, dir.gid, sock.mode & 0o777, sock.uid, sock.gid], [0o710, GID, 0o660, 0, GID]);
    for (const name of await readdir(stateDir)) {
      if (name === 'control.sock') continue;
      assert.equal((await stat(join(stateDir, name))).mode & 0o077, 0, `${name} is its owner's alone`);
    }
    const r = await cliAs(MEMBER, ['reconcile']);
    assert.equal(r.exitCode, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /no changes: already converged/);
    assert.equal(await statusAs(MEMBER), '200');
    assert.equal(await statusAs(NON_MEMBER), 'EACCES', 'the state dir lets only the group pass');
    const other = await cliAs(NON_MEMBER, ['reconcile']);
    assert.equal(other.exitCode, 1);
  }

  it('a member by supplementary group gets in, a non-member does not; so again after a restart, and after loosened modes; without the option root only', async () => {
    let d = await start(['--control-group', String(GID)]);
    await assertGroupDoor();
    // An operator loosens the modes: the peer check still refuses a non-member.
    await chmod(stateDir, 0o711);
    await chmod(ctl(), 0o666);
    assert.equal(await statusAs(NON_MEMBER), '403');
    await d.stop();

    d = await start(['--control-group', String(GID)]);
    assert.match(d.logs(), /the state directory was open to group or others: tightened to 0710/);
    await assertGroupDoor();
    await d.stop();

    d = await start([]);
    const dir = await stat(stateDir);
    const sock = await stat(ctl());
    assert.deepEqual([dir.mode & 0o777, sock.mode & 0o777, sock.gid], [0o700, 0o600, 0]);
    assert.match(d.logs(), /the state directory was open to group or others: tightened to 0700/);
    assert.equal(await statusAs(MEMBER), 'EACCES');
    await d.stop();
  });
});
