// A state-dir file this user may not use is said as such: a non-root operator was told the state
// dir was not a ledgernet state dir (EACCES read as "not there") or that no daemon answered.
import { DriverError } from '../errors.ts';

/** EACCES or EPERM: the file may be there, this user may not use it. */
export function isDenied(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return code === 'EACCES' || code === 'EPERM';
}

/** The error for `path` denied to this user; `who`: who may use it. */
export function deniedError(path: string, e: unknown, who = "root or the state dir's owner"): DriverError {
  const uid = process.geteuid?.() ?? 0;
  return new DriverError('LN_ERR_LOG_IO', `permission denied: uid ${uid} may not use ${path}; this command needs ${who} (sudo). Nothing was done`, { cause: e });
}
