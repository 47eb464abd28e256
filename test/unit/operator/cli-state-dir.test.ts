// A mistyped --state-dir (a folder without events.log, or none at all) must not be read as an
// empty log: reconcile/release/repair would then take every ledgernet object on the host for an
// orphan. Every command that reads the log offline refuses it, naming the path, and makes nothing.
// The CLI runs for real (src/cli.ts through tsx) inside a fresh network namespace (`unshare -n`),
// so a command that wrongly went ahead could only touch that empty namespace.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
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
