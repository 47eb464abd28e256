// Issue 9, "Disk full": the state dir on a small tmpfs that fills up. Docker gets a clear Err
// naming the problem and the state dir, nothing is half-applied (no network, no link, no
// container endpoint), the log stays intact, and once space is freed the very same commands
// succeed without restarting ledgernet.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { TEST_IMAGE, cleanupAll, docker, ping, track, uniqueName } from '../helpers/docker.ts';
import { ledgernetCli, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { assertNoLeaks, findLeaks, waitNoLeaks } from '../helpers/leaks.ts';

let root = '';
let mnt = '';
let mounted = false;
let daemon: DaemonHandle;

before(async () => {
  await assertNoLeaks();
  root = await mkdtemp(join(tmpdir(), 'ln-e2e-full-'));
  mnt = join(root, 'mnt');
  await mkdir(mnt);
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'ln-e2e-full', mnt]);
  mounted = true;
  daemon = await startDaemon({ stateDir: join(mnt, 'state'), extraArgs: ['--reconcile-interval', '1'] });
});

after(async () => {
  await cleanupAll();
  await stopAllDaemons();
  if (mounted) await execa('umount', [mnt], { reject: false });
  if (root) await rm(root, { recursive: true, force: true });
});

/** Writes a filler file until the file system refuses (ENOSPC). */
async function fill(path: string): Promise<void> {
  const fh = await open(path, 'a');
  const chunk = Buffer.alloc(64 * 1024, 0x41);
  try {
    for (;;) await fh.write(chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    await fh.close();
  }
}

const verify = () => ledgernetCli(['events', 'verify', '--state-dir', daemon.stateDir]);

describe('a full disk under the state dir', () => {
  test('Docker gets a clear Err, nothing is half-applied, and the same commands succeed once space is back', async (t) => {
    const n1 = track.network(uniqueName('full'));
    const created = await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.60.0/24', n1]);
    assert.equal(created.exitCode, 0, created.stderr);
    const before = (await findLeaks()).sort(); // n1's network and bridge: expected
    const filler = join(mnt, 'filler');
    await fill(filler);

    // A new network: refused, with the reason and the place.
    const n2 = track.network(uniqueName('full'));
    const create2 = ['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.61.0/24', n2];
    const refused = await docker(create2);
    assert.notEqual(refused.exitCode, 0, 'network create on a full disk must fail');
    assert.match(refused.stderr, /no space left/);
    assert.ok(refused.stderr.includes(daemon.stateDir), `the Err names the state dir: ${refused.stderr}`);
    assert.equal((await docker(['network', 'inspect', n2])).exitCode, 1, 'Docker holds no such network');
    t.diagnostic(`network create: ${refused.stderr}`);

    // A container on the existing network: refused; no endpoint, link or address is kept.
    const c1 = track.container(uniqueName('full'));
    const run = ['run', '-d', '--name', c1, '--network', n1, TEST_IMAGE, 'sleep', '600'];
    const runRefused = await docker(run);
    assert.notEqual(runRefused.exitCode, 0, 'docker run on a full disk must fail');
    assert.match(runRefused.stderr, /no space left/);
    t.diagnostic(`run: ${runRefused.stderr}`);
    await docker(['rm', '--force', c1]); // the container Docker created but could not start
    assert.deepEqual((await findLeaks()).sort(), before, 'nothing new in the kernel or in Docker');
    const mid = await verify();
    assert.equal(mid.exitCode, 0, `the log is intact while the disk is full: ${mid.stderr}`);

    // Space is back: the same commands succeed, with the same daemon.
    const pid = daemon.proc.pid;
    await rm(filler);
    const ok2 = await docker(create2);
    assert.equal(ok2.exitCode, 0, `network create after freeing space: ${ok2.stderr}\n${daemon.logs().slice(-2000)}`);
    const ok1 = await docker(run);
    assert.equal(ok1.exitCode, 0, `docker run after freeing space: ${ok1.stderr}\n${daemon.logs().slice(-2000)}`);
    assert.ok(await ping(c1, '10.231.60.1'), 'the container reaches its gateway');
    assert.equal(daemon.proc.pid, pid);
    assert.equal(daemon.proc.exitCode, null, 'ledgernet was not restarted');
    const end = await verify();
    assert.equal(end.exitCode, 0, end.stderr);
    assert.match(end.stdout, /^ok: \d+ events, hash chain intact/);
    t.diagnostic(`verify: ${end.stdout}`);

    await cleanupAll();
    await waitNoLeaks();
  });
});
