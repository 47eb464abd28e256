// The publish cursor: the seq (and hash) of the last event the stream acknowledged. Written
// atomically (temp file, fsync, rename, fsync of the directory) so a crash leaves the old or the
// new cursor, never a torn one.
import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { DriverError } from '../../errors.ts';

export const CURSOR_FILE = 'publish.cursor';

export interface Cursor {
  readonly seq: number;
  readonly hash: string;
}

export async function readCursor(dir: string): Promise<Cursor | null> {
  let text: string;
  try {
    text = await readFile(join(dir, CURSOR_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new DriverError('LN_ERR_LOG_IO', `cannot read the publish cursor in ${dir}: ${(e as Error).message}`, { cause: e });
  }
  const c = JSON.parse(text) as Partial<Cursor>;
  if (typeof c.seq !== 'number' || typeof c.hash !== 'string') {
    throw new DriverError('LN_ERR_LOG_IO', `the publish cursor ${join(dir, CURSOR_FILE)} is damaged; delete it to resume from the stream`);
  }
  return { seq: c.seq, hash: c.hash };
}

export async function writeCursor(dir: string, cursor: Cursor): Promise<void> {
  const path = join(dir, CURSOR_FILE);
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(`${JSON.stringify(cursor)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  const dh = await open(dir, 'r');
  await dh.sync().finally(() => dh.close());
}
