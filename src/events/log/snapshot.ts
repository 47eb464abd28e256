// Snapshots bound replay time: the folded state at a durable seq, with the byte offset where the
// next record starts and the hash it must link to. The log stays the source of truth: a
// snapshot that does not line up with the log (missing, damaged, ahead of it, chain mismatch)
// is ignored and the whole log is replayed.
import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { State } from '../domain/types.ts';

export const SNAPSHOT_FILE = 'snapshot.json';
const FORMAT = 1;

export interface Snapshot {
  readonly format: number;
  readonly seq: number;
  readonly hash: string;
  /** Byte offset in events.log right after the record with `seq`. */
  readonly offset: number;
  /** Byte offset where the record with `seq` starts (to check the snapshot lines up). */
  readonly recordOffset: number;
  readonly state: State;
}

export async function readSnapshot(dir: string): Promise<Snapshot | null> {
  try {
    const s = JSON.parse(await readFile(join(dir, SNAPSHOT_FILE), 'utf8')) as Partial<Snapshot>;
    const ok =
      s.format === FORMAT &&
      typeof s.seq === 'number' &&
      typeof s.hash === 'string' &&
      typeof s.offset === 'number' &&
      typeof s.recordOffset === 'number' &&
      s.state !== undefined &&
      s.state.seq === s.seq &&
      s.state.hash === s.hash;
    return ok ? (s as Snapshot) : null;
  } catch {
    return null;
  }
}

/** Writes atomically: temp file, fsync, rename, fsync of the directory. */
export async function writeSnapshot(dir: string, snap: Omit<Snapshot, 'format'>): Promise<void> {
  const tmp = join(dir, `${SNAPSHOT_FILE}.tmp`);
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(JSON.stringify({ format: FORMAT, ...snap }));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, SNAPSHOT_FILE));
  const d = await open(dir, 'r');
  await d.sync().finally(() => d.close());
}
