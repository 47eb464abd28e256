// Locks the kernel releases when their holder dies, however it dies: flock(2) on a file inside a
// directory only root (its owner) can enter or write (`serve --control-group` lets one group pass
// through the state dir to the control socket, and every file there is owner-only). So no other
// user can take or block them (they cannot open the file), there is no stale lock after kill -9 or
// a reboot, and no pid that a new process could reuse.
//
// Node has no flock(): the file is opened here and `flock --nonblock 3` (util-linux) runs with
// that open file as its fd 3. A flock belongs to the open file description, which this process
// still holds after flock(1) exits, so the lock stays held until this process closes the file or
// dies. The file is never unlinked (a holder of an unlinked inode and a holder of its new file
// would both "hold" it); after locking, the holder writes who it is (JSON) into it, for the
// message that refuses the next one.
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { chmod, chown, lstat, mkdir, open, readdir, readFile, readlink, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { DriverError } from '../../errors.ts';

export const LOCK_FILE = 'lock';
/** The host-wide guard's file, in the guard directory (see hostGuardDir). */
export const HOST_GUARD_FILE = 'ledgernet-host.lock';
/**
 * Where the host-wide guard lives: a root-only directory every instance on the host sees. Docker
 * creates it before it starts any plugin, and the managed plugin mounts the host's copy.
 */
const DEFAULT_GUARD_DIR = '/run/docker/plugins';

/** Who holds a lock, as the holder wrote it. */
interface LockHolder {
  readonly pid: number;
  /** The holder's pid namespace (`pid:[inode]`): its pid means nothing in another one. */
  readonly pidns?: string;
  readonly stateDir?: string;
  readonly socket?: string;
  readonly startedAt?: string;
  readonly command?: string;
}

/** What a holder writes about itself; `pid` defaults to this process (a supervised worker names its supervisor). */
export type LockInfo = Omit<LockHolder, 'pid' | 'pidns' | 'startedAt'> & { pid?: number };

const CONFLICT = 75;

/** flock -n -x on `fd`: true when taken, false when another open file holds it. */
function flockNow(fd: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn('flock', ['--nonblock', '--exclusive', '--conflict-exit-code', String(CONFLICT), '3'], {
      stdio: ['ignore', 'ignore', 'pipe', fd],
    });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.once('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'ENOENT' ? new Error('flock(1) is not installed (package util-linux)', { cause: e }) : e),
    );
    child.once('close', (code) => {
      if (code === 0) resolve(true);
      else if (code === CONFLICT) resolve(false);
      else reject(new Error(`flock exited with ${code}: ${stderr.trim()}`));
    });
  });
}

/**
 * Creates `dir` (0700) if missing and makes sure only this user can use it: refuses one another
 * user owns; an existing one that group or others may enter is tightened to 0700 when `tighten`,
 * else refused if they may write to it. Passing through (0710) is kept for `group` when it is the
 * dir's group. Returns the mode it had when it was tightened.
 */
async function ensurePrivateDir(dir: string, o: { what: string; tighten: boolean; group?: number | undefined }): Promise<{ tightenedFrom: number } | null> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await stat(dir);
  const me = process.geteuid?.() ?? 0;
  if (!st.isDirectory()) throw new DriverError('LN_ERR_LOG_IO', `${o.what} ${dir} is not a directory`);
  if (st.uid !== me) {
    throw new DriverError(
      'LN_ERR_LOG_IO',
      `${o.what} ${dir} belongs to uid ${st.uid}, not to this user (uid ${me}): its owner could change what ledgernet reads there; chown it to uid ${me} or choose another directory`,
    );
  }
  const mode = st.mode & 0o777;
  const passes = o.group !== undefined && st.gid === o.group ? 0o010 : 0;
  if ((mode & 0o077 & ~passes) === 0) return null;
  if (o.tighten) {
    await chmod(dir, 0o700);
    return { tightenedFrom: mode };
  }
  if ((mode & 0o022) !== 0) {
    throw new DriverError('LN_ERR_LOG_IO', `${o.what} ${dir} is writable by group or others (mode ${mode.toString(8)}); only its owner may write there`);
  }
  return null;
}

/**
 * Lets group `gid` pass through the private `dir` (0710, its group `gid`) to the control socket,
 * and nothing more: first every file and folder in it is made owner-only, so the group can open
 * none of them (the lock file included: an open file can be flock'ed). Sockets are left alone
 * (one may be a running daemon's). Returns those it tightened, with the mode they had.
 */
async function letGroupPass(dir: string, gid: number): Promise<{ path: string; mode: number }[]> {
  const tightened: { path: string; mode: number }[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (!e.isFile() && !e.isDirectory()) continue; // chmod follows a symlink
    const path = join(dir, e.name);
    const mode = (await lstat(path)).mode & 0o777;
    if ((mode & 0o077) === 0) continue;
    await chmod(path, mode & 0o700);
    tightened.push({ path, mode });
  }
  const st = await stat(dir);
  if (st.gid !== gid) await chown(dir, st.uid, gid);
  if ((st.mode & 0o777) !== 0o710) await chmod(dir, 0o710);
  return tightened;
}

async function openLockFile(path: string): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  } catch (e) {
    throw new DriverError('LN_ERR_LOG_IO', `cannot open the lock file ${path}: ${(e as Error).message}`, { cause: e });
  }
  const st = await fh.stat();
  const me = process.geteuid?.() ?? 0;
  if (!st.isFile() || st.uid !== me) {
    await fh.close();
    throw new DriverError('LN_ERR_LOG_IO', `the lock file ${path} is not a regular file of uid ${me}; remove it`);
  }
  if ((st.mode & 0o077) !== 0) await fh.chmod(0o600);
  return fh;
}

async function ownPidNamespace(): Promise<string | undefined> {
  return readlink('/proc/self/ns/pid').catch(() => undefined);
}

/** The holder the lock file at `path` names, or null when it names none. */
async function readHolder(path: string): Promise<LockHolder | null> {
  const text = await readFile(path, 'utf8').catch(() => '');
  try {
    const h = JSON.parse(text) as LockHolder;
    return Number.isInteger(h.pid) && h.pid > 0 ? h : null;
  } catch {
    return null;
  }
}

/** "pid 12 (…), state dir D, socket S, started T" for messages. */
async function describeHolder(h: LockHolder | null): Promise<string> {
  if (!h) return 'pid unknown (it has not written its details yet)';
  const ns = h.pidns && h.pidns !== (await ownPidNamespace()) ? ' in another pid namespace, e.g. a managed Docker plugin' : '';
  return [
    `pid ${h.pid}${ns}`,
    ...(h.stateDir ? [`state dir ${h.stateDir}`] : []),
    ...(h.socket ? [`socket ${h.socket}`] : []),
    ...(h.command ? [`running \`${h.command}\``] : []),
    ...(h.startedAt ? [`started ${h.startedAt}`] : []),
  ].join(', ');
}

/**
 * Takes the flock of the file at `path` (its directory must be private already). Resolves with
 * the release function, or with null when another process holds it.
 */
async function takeFileLock(path: string, info: LockInfo): Promise<(() => Promise<void>) | null> {
  const fh = await openLockFile(path);
  let taken: boolean;
  try {
    taken = await flockNow(fh.fd);
  } catch (e) {
    await fh.close();
    throw new DriverError('LN_ERR_LOG_IO', `cannot take the lock ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (!taken) {
    await fh.close();
    return null;
  }
  const pidns = await ownPidNamespace();
  const holder: LockHolder = { ...info, pid: info.pid ?? process.pid, ...(pidns ? { pidns } : {}), startedAt: new Date().toISOString() };
  const text = `${JSON.stringify(holder)}\n`;
  await fh.truncate(0);
  await fh.write(text, 0, 'utf8');
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    // Emptied, not unlinked (see the top of this file); closing the file releases the lock.
    await fh.truncate(0).catch(() => undefined);
    await fh.close();
  };
}

/**
 * Takes the writer lock of the state directory `dir` (created 0700 if missing; with `group`, made
 * 0710 for that group: see letGroupPass). `onTightened` hears of a state dir that group or others
 * could enter (now 0700 or 0710), and with `group` of each thing in it the group could read (now
 * owner-only), with the mode it had.
 */
export async function acquireLock(
  dir: string,
  info: LockInfo = {},
  onTightened?: (fromMode: number, path: string) => void,
  group?: number,
): Promise<() => Promise<void>> {
  const tightened = await ensurePrivateDir(dir, { what: 'the state directory', tighten: true, group });
  if (tightened) onTightened?.(tightened.tightenedFrom, dir);
  if (group !== undefined) for (const t of await letGroupPass(dir, group)) onTightened?.(t.mode, t.path);
  const path = join(dir, LOCK_FILE);
  const release = await takeFileLock(path, { stateDir: dir, ...info });
  if (release) return release;
  const holder = await readHolder(path);
  const since = [
    ...(holder?.socket ? [`it serves ${holder.socket}`] : holder?.command ? [`it runs \`${holder.command}\``] : []),
    ...(holder?.startedAt ? [`since ${holder.startedAt}`] : []),
  ].join(' ');
  throw new DriverError(
    'LN_ERR_LOCKED',
    `another ledgernet process${holder ? ` (pid ${holder.pid})` : ''} is using the state directory ${dir}${since ? `; ${since}` : ''}; stop it first, or give this one another --state-dir`,
  );
}

/** The guard directory: LEDGERNET_RUN_DIR (tests, the managed plugin's mount) or the default. */
function hostGuardDir(env: NodeJS.ProcessEnv = process.env): string {
  return env['LEDGERNET_RUN_DIR'] || DEFAULT_GUARD_DIR;
}

/**
 * Takes the host-wide guard: one ledgernet instance per host, whatever its socket or state dir
 * (two would remove each other's bridges as orphans). Refuses naming the holder.
 */
export async function acquireHostGuard(info: LockInfo, dir: string = hostGuardDir()): Promise<() => Promise<void>> {
  await ensurePrivateDir(dir, { what: 'the host guard directory', tighten: false });
  const path = join(dir, HOST_GUARD_FILE);
  const release = await takeFileLock(path, info);
  if (release) return release;
  throw new DriverError(
    'LN_ERR_HOST_IN_USE',
    `another ledgernet instance runs on this host (${await describeHolder(await readHolder(path))}); two instances remove each other's networks: stop it first (guard ${path})`,
  );
}

/** The running instance the host guard names, as `hostInstance` finds it. */
export interface HostInstance {
  readonly pid: number;
  readonly stateDir?: string;
  readonly socket?: string;
  /** In another pid namespace (the managed plugin): its pid and paths are its own view. */
  readonly elsewhere: boolean;
}

/** "MAJOR:MINOR:INODE" as /proc/locks names a file (major and minor in hex), from stat's st_dev (glibc's major() and minor()) and st_ino. */
export function procLocksId(dev: bigint, ino: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  const hex = (n: bigint) => n.toString(16).padStart(2, '0');
  return `${hex(major)}:${hex(minor)}:${ino}`;
}

/**
 * The ledgernet instance that holds the host guard now, or null when none does. Read-only: the
 * guard is never taken to find out (a daemon starting then would be refused naming this process);
 * the kernel's list of held locks (/proc/locks) says whether the guard file is locked, and the file
 * says by whom (a holder killed with -9 leaves its details but no lock).
 */
export async function hostInstance(dir: string = hostGuardDir()): Promise<HostInstance | null> {
  const path = join(dir, HOST_GUARD_FILE);
  const st = await stat(path, { bigint: true }).catch(() => null);
  if (!st?.isFile()) return null;
  const id = procLocksId(st.dev, st.ino);
  const locks = await readFile('/proc/locks', 'utf8').catch(() => '');
  // `1: FLOCK  ADVISORY  WRITE <pid> <id> 0 EOF`; a waiter's line (`1: -> FLOCK …`) holds nothing.
  if (!locks.split('\n').some((l) => l.split(/\s+/)[5] === id)) return null;
  const h = await readHolder(path);
  if (!h) return null;
  const elsewhere = h.pidns !== undefined && h.pidns !== (await ownPidNamespace());
  return { pid: h.pid, ...(h.stateDir ? { stateDir: h.stateDir } : {}), ...(h.socket ? { socket: h.socket } : {}), elsewhere };
}

/**
 * Whether process `pid` holds the flock of the lock file at `path` now: one of its open files is
 * that file (same device and inode), and the kernel shows a lock held through it (the `lock:` line
 * of /proc/<pid>/fdinfo/<fd>, listed only under the open file that holds it; /proc/locks names
 * flock(1)'s pid, long gone). Proof, unlike a pid: a process that reuses the pid of a dead holder
 * holds no such lock. False when it cannot be told (no such process, no permission).
 */
async function holdsLock(pid: number, path: string): Promise<boolean> {
  const st = await stat(path, { bigint: true }).catch(() => null);
  if (!st?.isFile()) return false;
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
  for (const fd of fds) {
    const f = await stat(`/proc/${pid}/fd/${fd}`, { bigint: true }).catch(() => null);
    if (f?.dev !== st.dev || f.ino !== st.ino) continue;
    if (/^lock:/m.test(await readFile(`/proc/${pid}/fdinfo/${fd}`, 'utf8').catch(() => ''))) return true;
  }
  return false;
}

/** Whether process `pid` holds the writer lock of the state directory `dir` now (see holdsLock). */
export function holdsStateLock(dir: string, pid: number): Promise<boolean> {
  return holdsLock(pid, join(dir, LOCK_FILE));
}

/** The pid the state dir's lock file names (informational), or null when there is none. */
export async function lockHolder(dir: string): Promise<number | null> {
  return (await readHolder(join(dir, LOCK_FILE)))?.pid ?? null;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
