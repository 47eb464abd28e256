// A mistyped --state-dir (a folder without events.log, or none at all) must not be read as an
// empty log: reconcile/release/repair would then take every ledgernet object on the host for an
// orphan. Every command that reads the log offline refuses it, naming the path, and makes nothing.
// The CLI runs for real (src/cli.ts through tsx) inside a fresh network namespace (`unshare -n`),
// so a command that wrongly went ahead could only touch that empty namespace.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EventLog } from '../../../src/events/index.ts';
import { acquireHostGuard } from '../../../src/events/log/lock.ts';
import { runningHint } from '../../../src/operator/commands.ts';
import { runCli } from '../../helpers/cli.ts';

let empty: string;
before(async () => {
  empty = await mkdtemp(join(tmpdir(), 'ln-statedir-'));
});
after(async () => {
  await rm(empty, { recursive: true, force: true });
});

describe('a state dir without events.log is refused', () => {
  const cases: string[][] = [
    ['reconcile'],
    ['reconcile', '--dry-run'],
    ['release', '0123456789ab'],
    ['events'],
    ['events', 'verify'],
    ['status'],
    ['repair', '--dry-run', '--docker-socket', '/nonexistent/docker.sock'],
  ];
  for (const args of cases) {
    for (const which of ['an empty folder', 'a missing folder'] as const) {
      it(`ledgernet ${args.join(' ')} with ${which}: exit 1 naming the missing log, nothing created`, async () => {
        const dir = which === 'an empty folder' ? empty : join(empty, 'typo');
        const r = await runCli([...args, '--state-dir', dir], { isolated: true });
        assert.equal(r.exitCode, 1, `${r.stdout}\n${r.stderr}`);
        assert.match(r.stderr, new RegExp(`no event log at ${join(dir, 'events.log').replaceAll('.', '\\.')}`));
        assert.match(r.stderr, /--state-dir/);
        assert.equal(r.stdout, '');
        assert.deepEqual(await readdir(empty), [], 'nothing made in the state dir');
        assert.equal(existsSync(join(empty, 'typo')), false);
      });
    }
  }
});

// A non-root operator was told a valid root state dir (0700) was not a ledgernet state dir.
describe('a state dir this user may not read: permission denied, naming the path, not "not a state dir"', { skip: process.getuid?.() !== 0 && 'needs root (setpriv)' }, () => {
  let dir: string;
  let runDir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ln-statedir-root-'));
    runDir = await mkdtemp(join(tmpdir(), 'ln-statedir-root-run-'));
    const { log } = await EventLog.open(dir, { host: 'h' });
    await log.close();
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  });
  const nobody = (args: readonly string[]) => runCli([...args, '--state-dir', dir], { isolated: true, uid: 65534, env: { LEDGERNET_RUN_DIR: runDir } });
  const denied = (path: string) => new RegExp(`^ledgernet: permission denied: uid 65534 may not use ${path.replaceAll('.', '\\.')}; this command needs root`);

  for (const args of [['events'], ['events', 'verify'], ['events', 'archive'], ['status'], ['reconcile'], ['reconcile', '--dry-run'], ['release', '0123456789ab'], ['repair', '--dry-run', '--docker-socket', '/nonexistent/docker.sock']]) {
    it(`ledgernet ${args.join(' ')} as uid 65534 on root's 0700 state dir: exit 1, permission denied on events.log`, async () => {
      const r = await nobody(args);
      assert.equal(r.exitCode, 1, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, denied(join(dir, 'events.log')));
      assert.doesNotMatch(r.stderr, /not a ledgernet state dir/);
      assert.equal(r.stdout, '');
    });
  }

  it('the dir open to others but the log 0600: the same', async () => {
    await chmod(dir, 0o755);
    try {
      const r = await nobody(['events']);
      assert.equal(r.exitCode, 1, r.stderr);
      assert.match(r.stderr, denied(join(dir, 'events.log')));
    } finally {
      await chmod(dir, 0o700);
    }
  });

  it('cluster forget (asks only the daemon): permission denied on the control socket, not "none answers"', async () => {
    const r = await nobody(['cluster', 'forget', 'h3']);
    assert.equal(r.exitCode, 1, r.stderr);
    assert.match(r.stderr, denied(join(dir, 'control.sock')));
    assert.match(r.stderr, /or the control socket's group/);
  });
});

describe('the state dir of the daemon running on this host is named', () => {
  it('ledgernet status with another --state-dir: the message names the running one (the host guard says which), read without taking it', async () => {
    const guard = join(empty, '..', `${empty.split('/').at(-1)}-guard`);
    const release = await acquireHostGuard({ stateDir: '/var/lib/ln-running', socket: '/run/ln-running.sock' }, guard);
    try {
      const r = await runCli(['status', '--state-dir', empty], { isolated: true, env: { LEDGERNET_RUN_DIR: guard } });
      assert.equal(r.exitCode, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`the ledgernet daemon running on this host \\(pid ${process.pid}\\) uses --state-dir /var/lib/ln-running\\. Nothing was done`));
      // Its own state dir without a log (a daemon's first moments): no hint pointing at itself.
      const own = await runCli(['status', '--state-dir', '/var/lib/ln-running'], { isolated: true, env: { LEDGERNET_RUN_DIR: guard } });
      assert.doesNotMatch(own.stderr, /daemon running on this host/);
    } finally {
      await release();
    }
    const after = await runCli(['status', '--state-dir', empty], { isolated: true, env: { LEDGERNET_RUN_DIR: guard } });
    assert.doesNotMatch(after.stderr, /running on this host/, 'nobody holds the guard: no hint');
    await rm(guard, { recursive: true, force: true });
  });

  it('a managed plugin (another pid namespace) is pointed at by its state mount, not by a path it sees', () => {
    assert.match(runningHint({ pid: 7, stateDir: '/var/lib/ledgernet', elsewhere: true }, '/srv/x'), /in another pid namespace, e\.g\. the managed plugin\) keeps its log in \/var\/lib\/ledgernet as it sees it: on the host, that is its state mount's source/);
    assert.equal(runningHint({ pid: 7, stateDir: '/srv/x/', elsewhere: false }, '/srv/x'), '', 'the same dir, spelled otherwise');
    assert.equal(runningHint(null, '/srv/x'), '');
  });
});
