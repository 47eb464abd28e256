// Reading the durable event log: framing, JSON, versions, seq continuity and the hash chain
// checked from the start or from a snapshot's position, and the torn tail kept aside before the
// writer (log.ts) cuts it off. Readers (the CLI, the outbox) use it without the writer's lock.
import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { DriverError } from '../../errors.ts';
import { badFrameAt, eachFrame, HEADER_BYTES, MAX_RECORD_BYTES, unframe, type ScanEnd } from './framing.ts';
import { startChecker, sharedBuffer, type Checker } from './check-thread.ts';
import { eventHash, hashFieldIs, storedBytesMatch } from './hash.ts';
import { GENESIS_HASH, type StoredEvent } from '../domain/types.ts';
import { newerError, newerRecord, upcast } from './upcast.ts';
import { ARCHIVE_DIR, archiveChain, listArchives, startOf, startOfFile, type ArchiveFile, type LogStart } from './archive.ts';

export const LOG_FILE = 'events.log';

export interface ScanResult {
  /** The events read (with ScanOptions.keep: only the last of them). */
  readonly events: StoredEvent[];
  /** How many events were read. */
  readonly count: number;
  readonly goodLength: number;
  /** Offset where the last good record starts (-1 when none was read). */
  readonly lastOffset: number;
  readonly end: ScanEnd;
}

/** Where a scan starts: the beginning of the log, or a snapshot's position in it. */
export interface ScanBase {
  readonly offset: number;
  readonly seq: number;
  readonly hash: string;
  /** Where the record with `seq` starts (-1 at the start of the log). */
  readonly recordOffset: number;
  /** A snapshot's other position of the same event: in the file an archive cut off by a crash left live (snapshot.ts). */
  readonly before?: { readonly offset: number; readonly recordOffset: number };
}

export const LOG_START: ScanBase = { offset: 0, seq: 0, hash: GENESIS_HASH, recordOffset: -1 };

export interface ScanOptions {
  /** Stop (clean) after this many records. */
  readonly limit?: number;
  /**
   * Called once the scan knows where it starts (`from`, or the log's start when `from` does not
   * line up); returns what is called with each verified event, in order (a replay folds them as
   * they come instead of holding a long log's events).
   */
  readonly consume?: (base: ScanBase) => (ev: StoredEvent) => void;
  /** Keep only about this many of the last events in the result (at least this many). */
  readonly keep?: number;
  /**
   * Recompute each event's hash (default true). Without: checksum, JSON, seq and chain links
   * only, for the publisher, which reads what the start already checked from the snapshot on,
   * sends the stored hash along, and whose observers recompute it (`audit --verify`).
   * 'stored' (a start's replay): checked over the stored bytes when the record is in the
   * canonical form this version writes (`storedBytesMatch`), else recomputed; a changed byte
   * fails the first check, so the recomputation still decides every damaged record.
   */
  readonly rehash?: boolean | 'stored';
  /** With rehash 'stored': the checker thread to use (tests start one and let it run ahead); stopped at the end. */
  readonly checker?: Checker;
  /**
   * A log that continues after archived events, read from its start (no snapshot lines up): 'all'
   * (default) reads every archive first and refuses when one is not there (a replay needs them
   * all); 'present' reads back as far as the archives that are here go (the result's base says
   * from where).
   */
  readonly archives?: 'all' | 'present';
}

/** True when the record between `recordOffset` and `offset` is the event `seq` with `hash`. */
export function baseLinesUp(buf: Buffer, base: ScanBase): boolean {
  if (base.offset === 0) return base.seq === 0;
  if (base.recordOffset < 0 || base.offset > buf.length || base.recordOffset >= base.offset) return false;
  const { frames, end } = unframe(buf.subarray(base.recordOffset, base.offset));
  if (frames.length !== 1 || end.kind !== 'clean') return false;
  try {
    const ev = JSON.parse(frames[0]?.payload ?? '') as { seq?: unknown; hash?: unknown };
    return ev.seq === base.seq && ev.hash === base.hash;
  } catch {
    return false;
  }
}

/**
 * Parses and verifies a log image from `base` on: framing, JSON, versions, seq continuity,
 * hash chain. Offsets in the result are offsets in `buf`.
 */
export function scanLog(buf: Buffer, base: ScanBase = LOG_START, bufStart = 0, o: ScanOptions = {}): ScanResult {
  const each = o.consume?.(base);
  const keep = o.keep ?? Infinity;
  const shift = base.offset;
  let count = 0;
  let events: StoredEvent[] = [];
  let prevHash = base.hash;
  let lastOffset = -1;
  let corrupt: { offset: number; reason: string; newer?: string } | null = null;
  const sub = buf.subarray(shift);
  const rehash = o.rehash ?? true;
  // A long replay's checksums and stored-bytes hashes are checked on the second core as well.
  const checker = rehash === 'stored' ? (o.checker ?? startChecker(sub)) : null;
  const checked = checker ? (n: number) => checker.checked(n) : undefined;
  // One record at a time: parsed, checked, handed on, and garbage before the next (a long replay).
  const visit = (rel: number, payload: () => string): boolean => {
    const offset = rel + shift;
    const check = rehash !== 'stored' ? rehash : checked?.(count) ? 'checked' : sub.subarray(rel + HEADER_BYTES, rel + HEADER_BYTES + sub.readUInt32BE(rel));
    // The message names the record's offset in the file, not in the part read (from a snapshot on).
    const ev = verified(payload(), offset + bufStart, base.seq + count + 1, prevHash, check);
    if (typeof ev === 'string') {
      corrupt = { offset, reason: ev };
      return false;
    }
    if ('newer' in ev) {
      corrupt = { offset, ...ev };
      return false;
    }
    each?.(ev);
    events.push(ev);
    if (events.length >= 2 * keep) events = events.slice(-keep);
    count += 1;
    prevHash = ev.hash;
    lastOffset = offset;
    return true;
  };
  let un: ReturnType<typeof eachFrame>;
  try {
    un = eachFrame(sub, bufStart + shift, o.limit ?? Infinity, visit, checked);
  } finally {
    checker?.stop();
  }
  const bad = corrupt as { offset: number; reason: string; newer?: string } | null;
  if (bad) return { events, count, goodLength: bad.offset, lastOffset, end: { kind: 'corrupt', ...bad } };
  const end: ScanEnd = un.end.kind === 'clean' ? un.end : { ...un.end, offset: un.end.offset + shift };
  return { events, count, goodLength: un.goodLength + shift, lastOffset, end };
}

/**
 * The event a record holds when it is JSON, a known version, the seq `want` and links to
 * `prevHash`; else why not: damage (a string), or a record a newer ledgernet wrote (`newer`),
 * which must be intact (seq, link, its own hash, always recomputed) to count as that, so that
 * damage to a type or version is still damage. `offset`: where the record starts in its file.
 */
function verified(payload: string, offset: number, want: number, prevHash: string, rehash: boolean | Buffer | 'checked'): StoredEvent | string | { reason: string; newer: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(payload);
  } catch {
    return 'record is not JSON';
  }
  let ev: StoredEvent;
  try {
    ev = upcast(raw, offset);
  } catch (e) {
    const newer = newerRecord(raw);
    if (newer === null) return (e as Error).message;
    const rec = raw as StoredEvent;
    const intact = rec.seq === want && rec.prevhash === prevHash && typeof rec.hash === 'string' && eventHash(rec) === rec.hash;
    return intact ? { reason: (e as Error).message, newer } : (e as Error).message;
  }
  if (ev.seq !== want) return `seq ${ev.seq} where ${want} was expected`;
  if (ev.prevhash !== prevHash) return `event ${ev.seq} does not link to the previous event's hash`;
  // With the record's bytes (rehash 'stored'), the cheap check first; only its failure recomputes.
  // 'checked': the checker thread found the bytes carry their hash; is it the one parsed?
  const cheap = () => (rehash === 'checked' ? hashFieldIs(payload, ev.hash) : typeof rehash !== 'boolean' && storedBytesMatch(rehash, ev.hash));
  const intact = rehash === false || cheap() || eventHash(ev) === ev.hash;
  if (!intact) return `event ${ev.seq} does not match its own hash (altered)`;
  return ev;
}

/**
 * Reads the log without taking the writer's lock and without repairing it (CLI readers). With a
 * `from` base (a snapshot's position) only the records after it are read, when it lines up.
 */
export async function readLog(dir: string, from: ScanBase = LOG_START, part?: Pick<ScanOptions, 'limit' | 'rehash' | 'consume' | 'keep' | 'archives'>): Promise<ScanResult & { base: ScanBase }> {
  // A part (limit) ends before the head, so only a whole read can tell that the log holds too little.
  const fh = await openLog(dir);
  if (!fh) return { events: [], count: 0, goodLength: 0, lastOffset: -1, end: { kind: 'clean' }, base: LOG_START };
  try {
    const res = await readAndScan(fh, from, part ?? {}, dir);
    if (res.end.kind === 'corrupt') throw scanError(dir, res.end);
    if (part?.limit === undefined) checkCovers(dir, from, res);
    return res;
  } finally {
    await fh.close();
  }
}

/** events.log opened for reading; null when there is none. */
export async function openLog(dir: string): Promise<FileHandle | null> {
  try {
    return await open(join(dir, LOG_FILE), 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new DriverError('LN_ERR_LOG_IO', `cannot read the event log in ${dir}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Up to `limit` events after `from` (a position a previous call returned, or LOG_START), and the
 * position after the last of them: a reader that goes through a long log in parts reads and
 * checks each record once (without recomputing hashes: see ScanOptions.rehash). A `from` that
 * does not line up with the file starts over at seq 1.
 */
export async function readLogPart(dir: string, from: ScanBase, limit: number): Promise<{ events: StoredEvent[]; next: ScanBase }> {
  const res = await readLog(dir, from, { limit, rehash: false });
  const last = res.events.at(-1);
  const next = last ? { offset: res.goodLength, seq: last.seq, hash: last.hash, recordOffset: res.lastOffset } : res.base;
  return { events: res.events, next };
}

/** Where the events of events.log start: LOG_START, or after its start record (archive.ts). */
export async function liveStart(dir: string): Promise<ScanBase> {
  const fh = await open(join(dir, LOG_FILE), 'r').catch(() => null);
  if (!fh) return LOG_START;
  try {
    const s = await startOfFile(fh);
    return s ? baseAfter(s) : LOG_START;
  } finally {
    await fh.close();
  }
}

/**
 * Up to `limit` events of the archive `a` after `from` (null, or a `from` that does not line up
 * with the file: from its first event), and the position after the last of them: an archive read
 * in parts, as readLogPart reads events.log, without reading the archives before it (they may
 * have been deleted once published). An archive was complete when it was made: a damaged or torn
 * record is damage, and so is an end before the last event its name says.
 */
export async function readArchivePart(dir: string, a: ArchiveFile, from: ScanBase | null, limit: number): Promise<{ events: StoredEvent[]; next: ScanBase }> {
  const path = join(dir, ARCHIVE_DIR, a.name);
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new DriverError('LN_ERR_LOG_IO', `cannot read the archived events ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const size = (await fh.stat()).size;
    // From the record of `from` on (checked to be that event), else the file from its start.
    const part = async (base: ScanBase) => {
      const start = base.offset > 0 ? base.recordOffset : 0;
      const buf = await readFrom(fh, start, size - start);
      const rel: ScanBase = base.offset > 0 ? { ...base, offset: base.offset - start, recordOffset: 0 } : LOG_START;
      return base.offset === 0 || baseLinesUp(buf, rel) ? { buf, rel, start } : null;
    };
    const inFile = from !== null && from.offset > 0 && from.recordOffset >= 0 && from.recordOffset < from.offset && from.offset <= size;
    let got = inFile ? await part(from) : null;
    if (!got) {
      const s = await startOfFile(fh);
      got = await part(s ? baseAfter(s) : LOG_START);
      if (!got) throw archiveBreak(path, 'its start record does not read back');
    }
    const { buf, rel, start } = got;
    const r = scanLog(buf, rel, start, { limit, rehash: false });
    if (r.end.kind === 'corrupt' && r.end.newer !== undefined) throw scanError(dir, { ...r.end, offset: r.end.offset + start }, path);
    if (r.end.kind !== 'clean') throw archiveBreak(path, `damaged at byte offset ${r.end.offset + start} (${r.end.kind === 'corrupt' ? r.end.reason : 'cut short'})`);
    const last = r.events.at(-1);
    const upTo = last?.seq ?? rel.seq;
    if (r.count < limit && upTo !== a.last) throw archiveBreak(path, `holds events up to seq ${upTo}, its name says ${a.last}`);
    const next = last ? { offset: r.goodLength + start, seq: last.seq, hash: last.hash, recordOffset: r.lastOffset + start } : { ...rel, offset: rel.offset + start, recordOffset: rel.recordOffset + start };
    return { events: r.events, next };
  } finally {
    await fh.close();
  }
}

/**
 * Reads what a replay from `from` needs and scans it: only the bytes from the snapshot's last
 * record on when `from` lines up with the file (so a long log is not read whole at every
 * start), else the whole file from the first record. Offsets in the result are file offsets.
 */
export async function readAndScan(fh: FileHandle, given: ScanBase, o: ScanOptions, dir: string): Promise<ScanResult & { base: ScanBase }> {
  const lined = await scanFromBase(fh, given, o);
  if (lined) return lined;
  const whole = await readFrom(fh, 0, (await fh.stat()).size);
  const start = startOf(whole);
  if (start) return scanWithArchives(dir, whole, start, o);
  await refuseIfArchived(dir, fh);
  return { ...scanLog(whole, LOG_START, 0, o), base: LOG_START };
}

/**
 * The scan of the records after `given` (or its `before` position) when it lines up with the
 * file, reading only the bytes from its last record on; null when neither lines up (the log is
 * then read from its start). Offsets in the result are file offsets.
 */
export async function scanFromBase(fh: FileHandle, given: ScanBase, o: ScanOptions): Promise<(ScanResult & { base: ScanBase }) | null> {
  const size = (await fh.stat()).size;
  const { before, ...at } = given;
  for (const from of before ? [at, { ...at, ...before }] : [at]) {
    if (!(from.offset > 0 && from.recordOffset >= 0 && from.recordOffset < from.offset && from.offset <= size)) continue;
    const start = from.recordOffset;
    const part = await readFrom(fh, start, size - start);
    const rel: ScanBase = { ...from, offset: from.offset - start, recordOffset: 0 };
    if (baseLinesUp(part, rel)) {
      // The consumer is told the file's base, not the part's.
      const consume = o.consume;
      const r = scanLog(part, rel, start, consume ? { ...o, consume: () => consume(from) } : o);
      const end: ScanEnd = r.end.kind === 'clean' ? r.end : { ...r.end, offset: r.end.offset + start };
      return { events: r.events, count: r.count, goodLength: r.goodLength + start, lastOffset: r.lastOffset < 0 ? -1 : r.lastOffset + start, end, base: from };
    }
  }
  return null;
}

/** Where the events of a file that opens with `s` start. */
export const baseAfter = (s: LogStart): ScanBase => ({ offset: s.bytes, seq: s.seq, hash: s.hash, recordOffset: 0 });

/**
 * A log that continues after archived events, read from its start: the archives first (see
 * ScanOptions.archives), each checked as a whole log (a torn or damaged archive is damage: it
 * was complete when it was archived), linked to the next by seq and hash, then the live file.
 * Offsets in the result are the live file's; with no event in it, the last record is its start
 * record (which carries the seq and hash of the last archived event).
 */
async function scanWithArchives(dir: string, whole: Buffer, start: LogStart, o: ScanOptions): Promise<ScanResult & { base: ScanBase }> {
  const { files, missing } = await archiveChain(dir, start.seq);
  if (missing > 0 && o.archives !== 'present') throw archivesMissing(dir, start, missing);
  const parts: { name: string; buf: Buffer; base: ScanBase; last: number }[] = [];
  for (const a of files) {
    const path = join(dir, ARCHIVE_DIR, a.name);
    const buf = await readFile(path).catch((e: unknown) => {
      throw new DriverError('LN_ERR_LOG_IO', `cannot read the archived events ${path}: ${(e as Error).message}`, { cause: e });
    });
    const s = startOf(buf);
    parts.push({ name: path, buf, base: s ? baseAfter(s) : LOG_START, last: a.last });
  }
  const base = parts[0]?.base ?? baseAfter(start);
  const { limit, checker, consume, ...rest } = o;
  const each = consume?.(base);
  // The archives are read whole; a limit and a test's checker concern the live file.
  const opts: ScanOptions = { ...rest, ...(each ? { consume: () => each } : {}) };
  const keep = o.keep ?? Infinity;
  let events: StoredEvent[] = [];
  let count = 0;
  let prev = base;
  for (const p of parts) {
    if (p.base.seq !== prev.seq || p.base.hash !== prev.hash) throw archiveBreak(p.name, `starts after event ${p.base.seq}, where the chain is at event ${prev.seq}`);
    const r = scanLog(p.buf, p.base, 0, opts);
    if (r.end.kind === 'corrupt' && r.end.newer !== undefined) throw scanError(dir, r.end, p.name);
    if (r.end.kind !== 'clean') throw archiveBreak(p.name, `damaged at byte offset ${r.end.offset} (${r.end.kind === 'corrupt' ? r.end.reason : 'cut short'})`);
    const lastEv = r.events.at(-1);
    if (!lastEv || lastEv.seq !== p.last) throw archiveBreak(p.name, `holds events up to seq ${lastEv?.seq ?? p.base.seq}, its name says ${p.last}`);
    events = events.concat(r.events).slice(-keep);
    count += r.count;
    prev = { offset: 0, seq: lastEv.seq, hash: lastEv.hash, recordOffset: 0 };
  }
  if (parts.length > 0 && (start.seq !== prev.seq || start.hash !== prev.hash)) {
    throw corruptError(dir, 0, `the log starts after event ${start.seq}, which does not link to the last archived event ${prev.seq}`);
  }
  const live = scanLog(whole, baseAfter(start), 0, { ...opts, ...(limit === undefined ? {} : { limit }), ...(checker ? { checker } : {}) });
  events = events.concat(live.events).slice(-keep);
  return { events, count: count + live.count, goodLength: live.goodLength, lastOffset: live.lastOffset < 0 ? 0 : live.lastOffset, end: live.end, base };
}

/**
 * A log that starts at the first event while archive/ holds archived events: its start record
 * was damaged (read from the first event on, a damaged start record could pass for a torn tail
 * and the log for an empty one), or an old events.log was put back. Refused either way. An
 * archive that is events.log itself (an archive cut off by a crash) does not count.
 */
export async function refuseIfArchived(dir: string, fh: FileHandle): Promise<void> {
  const files = await listArchives(dir);
  if (files.length === 0) return;
  const live = await fh.stat();
  for (const a of files) {
    const s = await stat(join(dir, ARCHIVE_DIR, a.name)).catch(() => null);
    if (s && (s.ino !== live.ino || s.dev !== live.dev)) {
      throw corruptError(dir, 0, `${join(dir, ARCHIVE_DIR)} holds archived events (${a.name}) but the log does not continue them: its first record is not the start record an archive writes`);
    }
  }
}

/**
 * A log read from a snapshot is not read from its start: its first record must still be what a
 * log can start with, the start record an archive writes (checked by the caller) or event 1. A
 * damaged one is refused: with archives deleted nothing else would notice, and the next archive
 * would carry it.
 */
export async function refuseBadFirstRecord(dir: string, fh: FileHandle): Promise<void> {
  const size = (await fh.stat()).size;
  if (size === 0) return;
  const head = await readFrom(fh, 0, Math.min(size, HEADER_BYTES));
  const len = head.length < HEADER_BYTES ? 0 : head.readUInt32BE(0);
  const buf = Buffer.from(await readFrom(fh, 0, Math.min(size, HEADER_BYTES + Math.min(len, MAX_RECORD_BYTES))));
  const problem = badFrameAt(buf, 0);
  let seq: unknown = null;
  if (problem === null) {
    try {
      seq = (JSON.parse(buf.toString('utf8', HEADER_BYTES)) as { seq?: unknown }).seq;
    } catch {
      // not JSON: named below
    }
  }
  if (seq !== 1) throw corruptError(dir, 0, `its first record is ${problem ?? 'neither the start record an archive writes nor event 1'}`);
}

export function archiveBreak(path: string, why: string): DriverError {
  return new DriverError('LN_ERR_LOG_CORRUPT', `the archived events ${path} are damaged or do not belong to this log: ${why}; restore the file from a backup`);
}

export function archivesMissing(dir: string, start: LogStart, missing: number): DriverError {
  return new DriverError(
    'LN_ERR_LOG_CORRUPT',
    `the event log ${join(dir, LOG_FILE)} continues after event ${start.seq} (archived in ${join(dir, start.archive)}) and ` +
      `no snapshot lines up with it, so the state is rebuilt from every event; events 1 to ${missing} are not in ` +
      `${join(dir, ARCHIVE_DIR)}: put the archive files back (or restore ${join(dir, 'snapshot.json')})`,
  );
}

/** Up to `length` bytes from `start` (fewer when the file ends before): not zero-filled first (a long log). */
export async function readFrom(fh: FileHandle, start: number, length: number): Promise<Buffer> {
  const buf = sharedBuffer(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, start + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}

/** The seq of the last good record of a scan (after a repair of its torn tail). */
function lastSeqOf(res: { count: number; base: ScanBase }): number {
  return res.base.seq + res.count;
}

/**
 * A snapshot is only written for events already durable in the log: one that covers events the
 * log does not hold means the log lost acknowledged events. Replaying without them would move
 * the state back in time silently, so this refuses.
 */
export function checkCovers(dir: string, from: ScanBase, res: { count: number; base: ScanBase; goodLength: number }): void {
  const last = lastSeqOf(res);
  if (from.seq <= last) return;
  throw new DriverError(
    'LN_ERR_LOG_CORRUPT',
    `the event log ${join(dir, LOG_FILE)} holds events up to seq ${last} (${res.goodLength} good bytes) but the snapshot ` +
      `${join(dir, 'snapshot.json')} covers events up to seq ${from.seq} (log offset ${from.offset}): acknowledged events are ` +
      `missing from the log (damaged, truncated or replaced); refusing to go back in time. Restore events.log from a backup`,
  );
}

/** The error for a scan that ended at a record it could not take: damage, or a newer ledgernet's record. */
export function scanError(dir: string, end: { offset: number; reason: string; newer?: string }, file = join(dir, LOG_FILE)): DriverError {
  return end.newer === undefined ? corruptError(dir, end.offset, end.reason) : newerError(file, `${end.newer}, at byte offset ${end.offset}`);
}

export function corruptError(dir: string, offset: number, reason: string): DriverError {
  return new DriverError(
    'LN_ERR_LOG_CORRUPT',
    `the event log ${join(dir, LOG_FILE)} is damaged at byte offset ${offset} (${reason}); ` +
      `run 'ledgernet events verify --state-dir ${dir}' and restore the file from a backup`,
  );
}

/** Name under which the bytes cut as a torn tail at `offset` are kept. */
export const tornFile = (offset: number) => `${LOG_FILE}.torn-${offset}`;

/** Copies the torn tail aside (never discarded), durably, before the log is cut. */
export async function keepTorn(dir: string, fh: FileHandle, offset: number, bytes: number): Promise<string> {
  const buf = Buffer.alloc(bytes);
  await fh.read(buf, 0, bytes, offset);
  for (let n = 1; ; n++) {
    const path = join(dir, n === 1 ? tornFile(offset) : `${tornFile(offset)}.${n}`);
    let out: FileHandle;
    try {
      out = await open(path, 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw new DriverError('LN_ERR_LOG_IO', `cannot keep the torn tail of the event log aside in ${path}: ${(e as Error).message}`, { cause: e });
    }
    try {
      await out.writeFile(buf);
      await out.sync();
    } catch (e) {
      throw new DriverError('LN_ERR_LOG_IO', `cannot keep the torn tail of the event log aside in ${path}: ${(e as Error).message}`, { cause: e });
    } finally {
      await out.close();
    }
    return path;
  }
}
