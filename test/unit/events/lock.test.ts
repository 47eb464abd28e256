// The state-dir lock and the host guard as an attacker and a crash meet them: flock(2) on a file in
// a root-only directory, held by the open file after flock(1) exits, released by the kernel when
// the holder dies; a user other than root can neither hold nor block it.
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, chown, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { acquireHostGuard, acquireLock, HOST_GUARD_FILE, hostInstance, LOCK_FILE, procLocksId } from '../../../src/events/log/lock.ts';
import type { DriverError } from '../../../src/errors.ts';

const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];
const LOCK_TS = join(process.cwd(), 'src/events/log/lock.ts');

let root: string;
type Holder = ReturnType<typeof spawnHolder>;
const holders: Holder[] = [];
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ln-lock-'));
  // Only the lock's own directory and file may keep other users out, not this test's folder.
  await chmod(root, 0o755);
});
after(async () => {
  for (const h of holders) h.kill('SIGKILL');
  await Promise.allSettled(holders);
  await rm(root, { recursive: true, force: true });
});

/** Another process that takes `what` ('state' or 'guard') on `dir` and holds it until killed. */
function spawnHolder(code: string) {
  return execa(process.execPath, ['--import', 'tsx', '-e', code], { reject: false });
}

async function holder(what: 'state' | 'guard', dir: string): Promise<{ proc: Holder }> {
  const call =
    what === 'state'
      ? `m.acquireLock(${JSON.stringify(dir)}, { socket: '/run/holder.sock' })`
      : `m.acquireHostGuard({ stateDir: '/var/lib/holder', socket: '/run/holder.sock' }, ${JSON.stringify(dir)})`;
  const p = spawnHolder(`import(${JSON.stringify(LOCK_TS)}).then(async (m) => { await ${call}; console.log('held'); setInterval(() => {}, 1000); })`);
  holders.push(p);
  await new Promise<void>((resolve, reject) => {
    p.stdout?.on('data', (d: Buffer) => d.toString().includes('held') && resolve());
    void p.then((r) => reject(new Error(`holder exited: ${r.stderr}`)));
  });
  return { proc: p };
}

async function asNobody(cmd: string[]): Promise<{ exitCode: number; stderr: string }> {
  const r = await execa('setpriv', [...NOBODY, ...cmd], { reject: false, cwd: '/', timeout: 10_000 });
  return { exitCode: r.exitCode ?? -1, stderr: r.stderr };
}

describe('state directory lock (flock)', () => {
  it('a second process is refused naming the holder (pid, socket, start); kill -9 of the holder frees it at once', async () => {
    const dir = join(root, 'kill9');
    const { proc: h } = await holder('state', dir);
    await assert.rejects(acquireLock(dir), (e: DriverError) => {
      assert.equal(e.code, 'LN_ERR_LOCKED');
      assert.match(e.message, new RegExp(`\\(pid ${h.pid}\\) is using the state directory ${dir}; it serves /run/holder.sock since \\d{4}-`));
      return true;
    });
    h.kill('SIGKILL');
    await h;
    const release = await acquireLock(dir);
    assert.equal((JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')) as { pid: number }).pid, process.pid);
    await release();
  });

  it('a user other than root can neither hold nor block it, and cannot read who holds it', async () => {
    const dir = join(root, 'nobody');
    await acquireLock(dir).then((r) => r());
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    assert.equal((await stat(join(dir, LOCK_FILE))).mode & 0o777, 0o600);
    // `flock -n FILE` opens (or creates) FILE first: as nobody that fails, so nothing is held.
    const r = await asNobody(['flock', '--nonblock', '--exclusive', join(dir, LOCK_FILE), 'true']);
    assert.notEqual(r.exitCode, 0);
    assert.match(r.stderr, /Permission denied/);
    const other = await asNobody(['flock', '--nonblock', '--exclusive', join(dir, 'other.lock'), 'true']);
    assert.match(other.stderr, /Permission denied/);
    const release = await acquireLock(dir);
    await release();
  });

  it('an existing state dir open to others (0755) is tightened to 0700 and reported', async () => {
    const dir = join(root, 'loose');
    await mkdir(dir, { mode: 0o755 });
    await chmod(dir, 0o755);
    const seen: number[] = [];
    const release = await acquireLock(dir, {}, (from) => seen.push(from));
    assert.deepEqual(seen, [0o755]);
    assert.equal((await stat(dir)).mode & 0o777, 0o700);
    await release();
  });

  it('with a control group: the dir is 0710 in that group and all in it owner-only (a member can neither hold nor block the lock); kept at the next start; 0700 again without it', async () => {
    const dir = join(root, 'group');
    await mkdir(join(dir, 'archive'), { recursive: true, mode: 0o755 });
    await chmod(dir, 0o755);
    await writeFile(join(dir, 'events.log'), '', { mode: 0o644 });
    await writeFile(join(root, 'outside'), '', { mode: 0o644 });
    await symlink(join(root, 'outside'), join(dir, 'link'));
    const seen: [string, string][] = [];
    const note = (from: number, path: string) => seen.push([path, from.toString(8)]);
    let release = await acquireLock(dir, {}, note, 4242);
    const mode = async (p: string) => (await stat(join(dir, p))).mode & 0o777;
    assert.deepEqual([await mode(''), (await stat(dir)).gid], [0o710, 4242]);
    assert.deepEqual([await mode('events.log'), await mode('archive'), await mode(LOCK_FILE)], [0o600, 0o700, 0o600]);
    assert.deepEqual(seen.sort(), [[dir, '755'], [join(dir, 'archive'), '755'], [join(dir, 'events.log'), '644']]);
    assert.equal((await stat(join(root, 'outside'))).mode & 0o777, 0o644, 'a symlink is not followed');
    const member = ['--reuid=65534', '--regid=65534', '--groups=4242'];
    for (const cmd of [['flock', '--nonblock', '--exclusive', join(dir, LOCK_FILE), 'true'], ['cat', join(dir, 'events.log')], ['ls', dir]]) {
      const r = await execa('setpriv', [...member, ...cmd], { reject: false, cwd: '/', timeout: 10_000 });
      assert.match(r.stderr, /Permission denied/, cmd.join(' '));
    }
    await release();
    seen.length = 0;
    release = await acquireLock(dir, {}, note, 4242);
    assert.deepEqual(seen, [], 'the next start with the group changes nothing');
    await release();
    release = await acquireLock(dir, {}, note);
    assert.deepEqual([seen, await mode('')], [[[dir, '710']], 0o700]);
    await release();
  });

  it("a state dir another user owns is refused, naming its owner", async () => {
    const dir = join(root, 'foreign');
    await mkdir(dir, { mode: 0o700 });
    await chown(dir, 65534, 65534);
    await assert.rejects(acquireLock(dir), /belongs to uid 65534, not to this user \(uid 0\)/);
  });
});

describe('host guard', () => {
  it('a second instance is refused naming the first (pid, state dir, socket); after kill -9 it is free', async () => {
    const dir = join(root, 'guard');
    const { proc: h } = await holder('guard', dir);
    await assert.rejects(acquireHostGuard({ stateDir: '/var/lib/second', socket: '/run/second.sock' }, dir), (e: DriverError) => {
      assert.equal(e.code, 'LN_ERR_HOST_IN_USE');
      assert.match(e.message, new RegExp(`another ledgernet instance runs on this host \\(pid ${h.pid}, state dir /var/lib/holder, socket /run/holder.sock, started \\d{4}-`));
      return true;
    });
    h.kill('SIGKILL');
    await h;
    const release = await acquireHostGuard({ stateDir: '/var/lib/second', socket: '/run/second.sock' }, dir);
    const held = JSON.parse(await readFile(join(dir, HOST_GUARD_FILE), 'utf8')) as { pid: number; stateDir: string };
    assert.deepEqual([held.pid, held.stateDir], [process.pid, '/var/lib/second']);
    await release();
  });

  it('a guard dir others may write to is refused, not trusted', async () => {
    const dir = join(root, 'guard-open');
    await mkdir(dir, { mode: 0o777 });
    await chmod(dir, 0o777);
    await assert.rejects(acquireHostGuard({}, dir), /writable by group or others \(mode 777\)/);
  });

  it('nobody cannot hold or block the guard', async () => {
    const dir = join(root, 'guard-nobody');
    await acquireHostGuard({}, dir).then((r) => r());
    const r = await asNobody(['flock', '--nonblock', '--exclusive', join(dir, HOST_GUARD_FILE), 'true']);
    assert.match(r.stderr, /Permission denied/);
    await acquireHostGuard({}, dir).then((r2) => r2());
  });
});

describe('the running instance, read without taking the guard', () => {
  it('names the holder while it holds the guard; after kill -9 none, though its details stay in the file', async () => {
    const dir = join(root, 'instance');
    assert.equal(await hostInstance(dir), null, 'no guard file: none');
    const { proc: h } = await holder('guard', dir);
    assert.deepEqual(await hostInstance(dir), { pid: h.pid, stateDir: '/var/lib/holder', socket: '/run/holder.sock', elsewhere: false });
    h.kill('SIGKILL');
    await h;
    assert.match(await readFile(join(dir, HOST_GUARD_FILE), 'utf8'), /"stateDir":"\/var\/lib\/holder"/, 'the details stay');
    assert.equal(await hostInstance(dir), null, 'nobody holds it: none');
    // Asking took nothing: an instance starts as if nobody had asked.
    await acquireHostGuard({ stateDir: '/var/lib/next' }, dir).then((r) => r());
  });

  it("spells a file as /proc/locks does (glibc's major and minor of st_dev, in hex)", () => {
    assert.equal(procLocksId(0xfe00n, 1467601n), 'fe:00:1467601');
    assert.equal(procLocksId(0x19n, 7n), '00:19:7');
    // major 259, minor 300: minor's high bits sit above major's in st_dev.
    assert.equal(procLocksId((259n << 8n) | (300n & 0xffn) | ((300n & ~0xffn) << 12n), 1n), '103:12c:1');
  });
});
