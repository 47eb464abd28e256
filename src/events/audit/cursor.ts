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

/**
 * The cursor file of one state dir. After a batch the outbox writes it in the background
 * (`writeSoon`), one write at a time and always the latest cursor, so the next batch does not
 * wait for an fsync. A crash leaves an older cursor, and the resync at start moves it up over
 * the events the stream holds after it without a gap (not simply to the stream's last event of
 * this host: a reconnect can lose one message of a window while later ones are stored, and the
 * daemon may stop before that ack fails; see Outbox.resumeAtStart).
 */
export class CursorFile {
  private writing: Promise<void> | null = null;
  private latest: Cursor | null = null;
  private readonly dir: string;
  private readonly onError: (e: unknown) => void;

  constructor(dir: string, onError: (e: unknown) => void) {
    this.dir = dir;
    this.onError = onError;
  }

  /** Writes now (and waits). */
  async write(cursor: Cursor): Promise<void> {
    await this.idle();
    await writeCursor(this.dir, cursor);
  }

  writeSoon(cursor: Cursor): void {
    this.latest = cursor;
    this.writing ??= (async () => {
      for (let c = this.latest; c !== null; c = this.latest) {
        this.latest = null;
        await writeCursor(this.dir, c).catch(this.onError);
      }
    })().finally(() => (this.writing = null));
  }

  /** Resolves once no background write is pending. */
  async idle(): Promise<void> {
    while (this.writing) await this.writing;
  }
}
