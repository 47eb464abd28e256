// `ledgernet events` and `events verify` on a long log: the log and the archives still here, read
// as readLog(dir, LOG_START, { archives: 'present' }) reads them (framing, checksums, JSON,
// versions, seq continuity, the hash chain within and across the files, each hash recomputed;
// damage refused with the same errors, a torn tail of events.log reported), but in parts of about
// `partBytes` bytes, each handed on and dropped before the next is read: what is held is one part,
// not the log (a month of a busy host is gigabytes of log). The readers' replay (replayLog, for
// loadState) reads a log no snapshot lines up with the same way.
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { DriverError } from '../../errors.ts';
import { HEADER_BYTES, MAX_RECORD_BYTES, type ScanEnd } from './framing.ts';
import { archiveBreak, archivesMissing, baseAfter, checkCovers, corruptError, LOG_START, openLog, readAndScan, readFrom, refuseIfArchived, scanError, scanFromBase, scanLog, type ScanBase, type ScanOptions, type ScanResult } from './read.ts';
import { ARCHIVE_DIR, archiveChain, startOfFile } from './archive.ts';
import type { StoredEvent } from '../domain/types.ts';

/** What a reading in parts read. */
export interface PartsRead {
  /** Where it started: LOG_START, or after the last event no longer here (as readLog's base). */
  readonly base: ScanBase;
  /** How many events were handed on. */
  readonly count: number;
  /** How events.log ended (torn: a tail a crash left, cut off by the next writer). */
  readonly end: ScanEnd;
  /**
   * Where events.log goes on after the last event read in it (its start when it held none), for a
   * reader of what is appended later (LogParts.from); null when the reading was stopped.
   */
  readonly next: ScanBase | null;
}

export interface PartsOptions {
  /** About how many bytes of the log one part holds (a record longer than that is one part). */
  readonly partBytes?: number;
  /**
   * Recompute each event's hash (default true, as readLog); false: checksums, JSON, seq and chain
   * links only; 'stored': as a replay checks them (ScanOptions.rehash).
   */
  readonly rehash?: boolean | 'stored';
  /** 'present' (default): from the first archive here on; 'all': archives missing are refused, as a replay from event 1 refuses them (ScanOptions.archives). */
  readonly archives?: 'all' | 'present';
  /** Called once where the reading starts is known, before any part. */
  readonly onBase?: (base: ScanBase) => void | Promise<void>;
  /** Each part's events, in order; false stops the reading there (what follows is not read or checked). */
  readonly each: (events: StoredEvent[]) => boolean | void | Promise<boolean | void>;
}

export const PART_BYTES = 1024 * 1024;

/** Reads the log from its first event still here (archives included) in parts; throws on damage as readLog does. */
export async function readLogParts(dir: string, o: PartsOptions): Promise<PartsRead> {
  const fh = await openLog(dir);
  if (!fh) {
    await o.onBase?.(LOG_START);
    return { base: LOG_START, count: 0, end: { kind: 'clean' }, next: LOG_START };
  }
  try {
    return await readParts(dir, fh, o);
  } finally {
    await fh.close();
  }
}

/**
 * The readers' replay (loadState): what readLog(dir, from, { rehash: 'stored', consume }) reads
 * and checks, refused with the same errors (damage naming its offset, archives missing, a newer
 * ledgernet's record, a snapshot ahead of the log; a torn tail is left as it is), but a log
 * `from` does not line up with is read in parts (replayScan). `goodLength`: where the last good
 * record of events.log ends.
 */
export async function replayLog(dir: string, from: ScanBase, o: { consume: (base: ScanBase) => (ev: StoredEvent) => void; partBytes?: number }): Promise<{ count: number; base: ScanBase; goodLength: number }> {
  const fh = await openLog(dir);
  if (!fh) return { count: 0, base: LOG_START, goodLength: 0 };
  try {
    const res = await replayScan(fh, from, { rehash: 'stored', consume: o.consume, keep: 1, partBytes: o.partBytes ?? PART_BYTES }, dir);
    if (res.end.kind === 'corrupt') throw scanError(dir, res.end);
    checkCovers(dir, from, res);
    return res;
  } finally {
    await fh.close();
  }
}

/**
 * readAndScan, but with `o.partBytes` a log `given` does not line up with (no snapshot, or one
 * that does not) is read with its archives in parts of about that many bytes (as readLogParts
 * reads them, archives as `o.archives` says, default 'all'), each part's events handed to
 * `o.consume` and dropped: what is held is a part and the last `o.keep` events, not the log.
 * The same checks and errors; offsets in the result are events.log's, as readAndScan's.
 */
export async function replayScan(fh: FileHandle, given: ScanBase, o: ScanOptions & { readonly partBytes?: number }, dir: string): Promise<ScanResult & { base: ScanBase }> {
  const { partBytes, ...scan } = o;
  if (partBytes === undefined) return readAndScan(fh, given, scan, dir);
  const lined = await scanFromBase(fh, given, scan);
  if (lined) return lined;
  const keep = o.keep ?? Infinity;
  let events: StoredEvent[] = [];
  let add: (ev: StoredEvent) => void = () => undefined;
  const r = await readParts(dir, fh, {
    partBytes,
    rehash: o.rehash ?? true,
    archives: o.archives ?? 'all',
    onBase: (b) => {
      add = o.consume?.(b) ?? add;
    },
    each: (part) => {
      part.forEach(add);
      events = events.concat(part);
      if (events.length >= 2 * keep) events = events.slice(-keep);
    },
  });
  // Never stopped (`each` goes on): `next` is where events.log goes on after its last event.
  const next = r.next ?? r.base;
  return { events, count: r.count, goodLength: next.offset, lastOffset: r.count > 0 ? next.recordOffset : -1, end: r.end, base: r.base };
}

/** readLogParts over events.log opened as `fh`. */
async function readParts(dir: string, fh: FileHandle, o: PartsOptions): Promise<PartsRead> {
  const opened: FileHandle[] = [];
  try {
    const size = (await fh.stat()).size;
    const start = await startOfFile(fh);
    const reader = new PartReader(o);
    if (!start) {
      await refuseIfArchived(dir, fh);
      await o.onBase?.(LOG_START);
      const live = await reader.file(fh, size, LOG_START);
      if (live.end.kind === 'corrupt') throw scanError(dir, live.end);
      return { base: LOG_START, count: reader.count, end: live.end, next: reader.stopped ? null : live.next };
    }
    // As far back as the archives here go; each one opened first (one that cannot be is named before any is read).
    const { files, missing } = await archiveChain(dir, start.seq);
    if (missing > 0 && o.archives === 'all') throw archivesMissing(dir, start, missing);
    const parts: { path: string; fh: FileHandle; base: ScanBase; last: number }[] = [];
    for (const a of files) {
      const path = join(dir, ARCHIVE_DIR, a.name);
      const afh = await open(path, 'r').catch((e: unknown) => {
        throw new DriverError('LN_ERR_LOG_IO', `cannot read the archived events ${path}: ${(e as Error).message}`, { cause: e });
      });
      opened.push(afh);
      const s = await startOfFile(afh);
      parts.push({ path, fh: afh, base: s ? baseAfter(s) : LOG_START, last: a.last });
    }
    const base = parts[0]?.base ?? baseAfter(start);
    await o.onBase?.(base);
    let prev = { seq: base.seq, hash: base.hash };
    for (const p of parts) {
      if (p.base.seq !== prev.seq || p.base.hash !== prev.hash) throw archiveBreak(p.path, `starts after event ${p.base.seq}, where the chain is at event ${prev.seq}`);
      // An archive was complete when it was made: torn or damaged is damage, and so is an end before its name's last event.
      const r = await reader.file(p.fh, (await p.fh.stat()).size, p.base);
      if (reader.stopped) return { base, count: reader.count, end: { kind: 'clean' }, next: null };
      if (r.end.kind === 'corrupt' && r.end.newer !== undefined) throw scanError(dir, r.end, p.path);
      if (r.end.kind !== 'clean') throw archiveBreak(p.path, `damaged at byte offset ${r.end.offset} (${r.end.kind === 'corrupt' ? r.end.reason : 'cut short'})`);
      if (r.last === null || r.last.seq !== p.last) throw archiveBreak(p.path, `holds events up to seq ${r.last?.seq ?? p.base.seq}, its name says ${p.last}`);
      prev = r.last;
    }
    if (parts.length > 0 && (start.seq !== prev.seq || start.hash !== prev.hash)) {
      throw corruptError(dir, 0, `the log starts after event ${start.seq}, which does not link to the last archived event ${prev.seq}`);
    }
    const live = await reader.file(fh, size, baseAfter(start));
    if (live.end.kind === 'corrupt') throw scanError(dir, live.end);
    return { base, count: reader.count, end: live.end, next: reader.stopped ? null : live.next };
  } finally {
    for (const h of opened) await h.close();
  }
}

/** Reads files part by part, handing each part's events on. */
class PartReader {
  count = 0;
  stopped = false;
  private readonly o: PartsOptions;
  private readonly partBytes: number;
  private readonly buf: Buffer;
  constructor(o: PartsOptions) {
    this.o = o;
    this.partBytes = Math.max(HEADER_BYTES, o.partBytes ?? PART_BYTES);
    this.buf = Buffer.allocUnsafe(this.partBytes);
  }

  /**
   * The events of the file's first `size` bytes from `from` on, in parts; how it ends (offsets:
   * the file's) and its last event. A part ends at the last record whole in it; a record that
   * does not verify where the whole file was not read is judged again over the rest of the file,
   * so a torn tail and damage are told apart as a reading of the whole file tells them (framing.ts).
   */
  async file(fh: FileHandle, size: number, from: ScanBase): Promise<{ end: ScanEnd; last: { seq: number; hash: string } | null; next: ScanBase }> {
    let pos = from.offset;
    let at = { seq: from.seq, hash: from.hash };
    let last: { seq: number; hash: string } | null = null;
    // Where the file goes on after the last event read: the position a later reader starts at.
    let next: ScanBase = from;
    let want = this.partBytes;
    while (pos < size) {
      const asked = Math.min(want, size - pos);
      const buf = await this.read(fh, pos, asked);
      // Fewer bytes than asked: the file was cut since its size was read (a writer's recovery
      // after a failed write, a start cutting a torn tail): it ends here, as a whole read's would.
      const short = buf.length < asked;
      const whole = short || pos + buf.length >= size;
      const r = scanLog(buf, { offset: 0, seq: at.seq, hash: at.hash, recordOffset: -1 }, pos, { rehash: this.o.rehash ?? true });
      const ev = r.events.at(-1);
      if (ev) {
        last = at = { seq: ev.seq, hash: ev.hash };
        next = { offset: pos + r.goodLength, seq: ev.seq, hash: ev.hash, recordOffset: pos + r.lastOffset };
        this.count += r.events.length;
        if ((await this.o.each(r.events)) === false) {
          this.stopped = true;
          return { end: { kind: 'clean' }, last, next };
        }
      }
      if (r.end.kind === 'clean' || whole) {
        if (r.end.kind !== 'clean') return { end: { ...r.end, offset: r.end.offset + pos }, last, next };
        pos += r.goodLength;
        if (short) break;
        want = this.partBytes;
        continue;
      }
      const off = r.goodLength;
      pos += off;
      // A record this part cut (the rest of it in the file): the next part starts with it, made
      // long enough for it. Anything else: the rest of the file, read whole, judges it.
      const rest = buf.length - off;
      const len = rest < HEADER_BYTES ? 0 : buf.readUInt32BE(off);
      const cut = rest < HEADER_BYTES || (len > 0 && len <= MAX_RECORD_BYTES && HEADER_BYTES + len > rest);
      want = !cut ? size - pos : off > 0 ? this.partBytes : Math.max(2 * want, HEADER_BYTES + len);
    }
    return { end: { kind: 'clean' }, last, next };
  }

  /** `length` bytes from `start` (fewer at the end of the file), in one buffer used again for every part (what is read from it is copied). */
  private async read(fh: FileHandle, start: number, length: number): Promise<Buffer> {
    if (length > this.partBytes) return readFrom(fh, start, length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(this.buf, got, length - got, start + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return this.buf.subarray(0, got);
  }
}
