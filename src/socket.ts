import { mkdir, stat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { DriverError } from './errors.ts';

/** True when something accepts connections on the unix socket at `path`. */
export function socketAnswers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ path });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * Makes `path` free for listening: creates its folder, refuses when a live process answers on
 * it, removes a stale socket file left by a crash.
 */
export async function prepareSocketPath(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const st = await stat(path).catch(() => null);
  if (!st) return;
  if (!st.isSocket()) {
    throw new DriverError('LN_ERR_SOCKET_IN_USE', `${path} exists and is not a socket; remove it or choose another --socket`);
  }
  if (await socketAnswers(path)) {
    throw new DriverError(
      'LN_ERR_SOCKET_IN_USE',
      `another process already answers on ${path}; is ledgernet already running? Stop it first or choose another --socket`,
    );
  }
  await unlink(path);
}
