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
