import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { DriverError } from '../errors.ts';

export const LOCK_FILE = 'lock';

/**
 * Takes the state directory's writer lock: a file holding our pid, created exclusively. A lock
 * left by a process that no longer runs (kill -9) is taken over.
 */
export async function acquireLock(dir: string): Promise<() => Promise<void>> {
  const path = join(dir, LOCK_FILE);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o600);
      await fh.writeFile(`${process.pid}\n`);
      await fh.sync();
      await fh.close();
      return async () => {
        const holder = await lockHolder(dir);
        if (holder === process.pid) await unlink(path).catch(() => undefined);
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new DriverError('LN_ERR_LOG_IO', `cannot create the lock ${path}: ${(e as Error).message}`, { cause: e });
      }
    }
    const pid = await lockHolder(dir);
    if (pid !== null && pid !== process.pid && isAlive(pid)) {
      throw new DriverError(
        'LN_ERR_LOCKED',
        `another ledgernet process (pid ${pid}) is using the state directory ${dir}; stop it first, or give this one another --state-dir`,
      );
    }
    await unlink(path).catch(() => undefined);
  }
  throw new DriverError('LN_ERR_LOCKED', `could not take the lock ${path}: it keeps reappearing`);
}

/** The pid written in the lock file, or null when there is none. */
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
