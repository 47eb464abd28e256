// Archived events: `ledgernet events archive` moves the events of events.log into
// archive/events-<first>-<last>.log (the file as it was, hard-linked, never copied) and goes on in
// a new events.log whose first frame is a start record naming the seq and hash it continues from.
// The hash chain runs on across the files; a start that has a snapshot reads only events.log, one
// without a snapshot that lines up reads the archives first (each one the whole log of its time,
// itself starting with the start record of the one before). Readers that show history (`events`,
// `events verify`) read as far back as the archives that are still here go.
import { link, mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { DriverError } from '../../errors.ts';
import { badFrameAt, frame, HEADER_BYTES } from './framing.ts';

export const ARCHIVE_DIR = 'archive';
const START_KIND = 'ledgernet.log.start';

/** Where a log file starts: after the event `seq` with `hash` (0 and no file: the first log). */
export interface LogStart {
  readonly seq: number;
  readonly hash: string;
  /** The archive (relative to the state dir) holding the events up to `seq`. */
  readonly archive: string;
  /** Length of the start record's frame: where the file's first event starts. */
  readonly bytes: number;
}

/** The start record a log that continues after `seq` opens with (a frame, not an event). */
function startFrame(s: { seq: number; hash: string; archive: string; at: string }): Buffer {
  // `seq` and `hash` as an event has them: a snapshot taken right after an archive points at this record.
  return frame(JSON.stringify({ kind: START_KIND, seq: s.seq, hash: s.hash, archive: s.archive, at: s.at }));
}

/** The start record at the beginning of `buf` (a whole log file or its first bytes), or null when it starts with an event. */
export function startOf(buf: Buffer): LogStart | null {
  if (badFrameAt(buf, 0) !== null) return null;
  const end = HEADER_BYTES + buf.readUInt32BE(0);
  let raw: unknown;
  try {
    raw = JSON.parse(buf.toString('utf8', HEADER_BYTES, end));
  } catch {
    return null;
  }
  const r = raw as Partial<Record<'kind' | 'seq' | 'hash' | 'archive', unknown>>;
  if (r.kind !== START_KIND || !Number.isSafeInteger(r.seq) || typeof r.hash !== 'string' || typeof r.archive !== 'string') return null;
  return { seq: r.seq as number, hash: r.hash, archive: r.archive, bytes: end };
}

/** Reads the start record of an open log file, if it has one. */
export async function startOfFile(fh: FileHandle): Promise<LogStart | null> {
  const head = Buffer.alloc(HEADER_BYTES);
  const { bytesRead } = await fh.read(head, 0, HEADER_BYTES, 0);
  if (bytesRead < HEADER_BYTES) return null;
  const len = Math.min(head.readUInt32BE(0), 64 * 1024);
  const buf = Buffer.alloc(HEADER_BYTES + len);
  const got = (await fh.read(buf, 0, buf.length, 0)).bytesRead;
  return startOf(buf.subarray(0, got));
}

const pad = (n: number) => String(n).padStart(12, '0');
const archiveName = (first: number, last: number) => `events-${pad(first)}-${pad(last)}.log`;
const ARCHIVE_RE = /^events-(\d{12})-(\d{12})\.log$/;

export interface ArchiveFile {
  readonly name: string;
  readonly first: number;
  readonly last: number;
}

/** The archive files in the state dir, oldest first. */
export async function listArchives(dir: string): Promise<ArchiveFile[]> {
  const names = await readdir(join(dir, ARCHIVE_DIR)).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return [] as string[];
    throw new DriverError('LN_ERR_LOG_IO', `cannot list the archived events in ${join(dir, ARCHIVE_DIR)}: ${e.message}`, { cause: e });
  });
  const out: ArchiveFile[] = [];
  for (const name of names) {
    const m = ARCHIVE_RE.exec(name);
    if (m) out.push({ name, first: Number(m[1]), last: Number(m[2]) });
  }
  return out.sort((a, b) => a.first - b.first);
}

/**
 * The archives a log starting after `seq` continues, oldest first, as far back as they are here
 * (each one ends where the next one starts); `missing` is the seq up to which events are not
 * here (0 when the chain reaches the first event).
 */
export async function archiveChain(dir: string, seq: number): Promise<{ files: ArchiveFile[]; missing: number }> {
  const byLast = new Map((await listArchives(dir)).map((a) => [a.last, a]));
  const files: ArchiveFile[] = [];
  let upTo = seq;
  while (upTo > 0) {
    const a = byLast.get(upTo);
    if (!a) break;
    files.unshift(a);
    upTo = a.first - 1;
  }
  return { files, missing: upTo };
}

/**
 * Left by an archive cut off by a crash: events.log.next, and an archive hard link that is still
 * events.log itself (the new log never replaced it). Removed at the writer's start.
 */
export async function removeUnfinishedArchive(dir: string, logPath: string): Promise<void> {
  await unlink(`${logPath}.next`).catch(() => undefined);
  const live = await stat(logPath).catch(() => null);
  if (!live) return;
  for (const a of await listArchives(dir)) {
    const p = join(dir, ARCHIVE_DIR, a.name);
    const s = await stat(p).catch(() => null);
    if (s && s.ino === live.ino && s.dev === live.dev) await unlink(p);
  }
}

async function syncDir(path: string): Promise<void> {
  const d = await open(path, 'r');
  await d.sync().finally(() => d.close());
}

/**
 * The file steps of an archive, in the order a crash can cut at any point: (1) events.log is
 * hard-linked as the archive, (2) the new log (its start record only) is written and synced as
 * events.log.next, (3) `beforeSwap` runs (the writer's snapshot of the state at `head`, pointing
 * into the new log), (4) events.log.next replaces events.log. Cut before (4), the old log is
 * whole and the snapshot lines up with it through its `before` position; the leftovers go at the
 * next start (removeUnfinishedArchive). After (4) the new log is events.log: `synced` is the
 * error of the directory's fsync that makes the rename durable, if it failed (the caller must then
 * write nothing more: a power cut could bring the old file back).
 */
export async function archiveFiles(
  dir: string,
  logPath: string,
  from: number,
  head: { seq: number; hash: string },
  beforeSwap: (startBytes: number) => Promise<void>,
): Promise<{ name: string; startBytes: number; synced: Error | null }> {
  const name = archiveName(from + 1, head.seq);
  const archDir = join(dir, ARCHIVE_DIR);
  const archPath = join(archDir, name);
  const next = `${logPath}.next`;
  let linked = false;
  let startBytes = 0;
  try {
    await mkdir(archDir, { recursive: true, mode: 0o700 });
    await link(logPath, archPath);
    linked = true;
    await syncDir(archDir);
    const start = startFrame({ seq: head.seq, hash: head.hash, archive: `${ARCHIVE_DIR}/${name}`, at: new Date().toISOString() });
    await unlink(next).catch(() => undefined);
    const fh = await open(next, 'wx', 0o600);
    try {
      await fh.writeFile(start);
      await fh.sync();
    } finally {
      await fh.close();
    }
    startBytes = start.length;
    await beforeSwap(startBytes);
    await rename(next, logPath);
  } catch (e) {
    await unlink(next).catch(() => undefined);
    // Not swapped: the archive link would be a second name of the live log.
    if (linked && (await stat(logPath).then((s) => s.nlink > 1, () => false))) await unlink(archPath).catch(() => undefined);
    if (e instanceof DriverError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'EEXIST' ? `${archPath} already exists` : (e as Error).message;
    throw new DriverError('LN_ERR_LOG_IO', `archiving the event log failed: ${why}; nothing was moved`, { cause: e });
  }
  // Swapped: the new log is events.log, whether or not the rename is durable yet.
  const synced = await syncDir(dir).then(
    () => null,
    (e: unknown) => e as Error,
  );
  return { name, startBytes, synced };
}
