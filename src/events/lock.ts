// The state directory's writer lock. It is an abstract unix socket (Linux) named after the
// directory: binding it is atomic, and the kernel releases it when the holder dies, however it
// dies. So there is no stale lock after kill -9 or a reboot, no pid that a new process could
// reuse, and no race between two processes taking over a stale lock file. The `lock` file only
// tells humans (and error messages) which pid holds it.
import { createHash } from 'node:crypto';
import { mkdir, readFile, realpath, unlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { DriverError } from '../errors.ts';

export const LOCK_FILE = 'lock';

function lockName(realDir: string): string {
  return `\0ledgernet-lock-${createHash('sha256').update(realDir).digest('hex').slice(0, 40)}`;
}

function bind(name: string): Promise<Server | null> {
  return new Promise((resolve, reject) => {
    const server = createServer((sock) => sock.destroy());
    server.once('error', (e: NodeJS.ErrnoException) => (e.code === 'EADDRINUSE' ? resolve(null) : reject(e)));
    server.listen(name, () => resolve(server));
  });
}

/** Takes the writer lock of `dir` (created if missing); resolves with its release function. */
export async function acquireLock(dir: string): Promise<() => Promise<void>> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const real = await realpath(dir);
  let server: Server | null;
  try {
    server = await bind(lockName(real));
  } catch (e) {
    throw new DriverError('LN_ERR_LOG_IO', `cannot take the lock of ${dir}: ${(e as Error).message}`, { cause: e });
  }
  if (!server) {
    const pid = await lockHolder(dir);
    throw new DriverError(
      'LN_ERR_LOCKED',
      `another ledgernet process${pid ? ` (pid ${pid})` : ''} is using the state directory ${dir}; stop it first, or give this one another --state-dir`,
    );
  }
  const held = server;
  held.unref();
  await writeFile(join(dir, LOCK_FILE), `${process.pid}\n`, { mode: 0o600 });
  return async () => {
    if ((await lockHolder(dir)) === process.pid) await unlink(join(dir, LOCK_FILE)).catch(() => undefined);
    await new Promise<void>((resolve) => held.close(() => resolve()));
  };
}

/** The pid the lock file names (informational), or null when there is none. */
export async function lockHolder(dir: string): Promise<number | null> {
  try {
    const pid = Number.parseInt((await readFile(join(dir, LOCK_FILE), 'utf8')).trim(), 10);
    return Number.isFinite(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
