// Reading the durable event log: framing, JSON, versions, seq continuity and the hash chain
// checked from the start or from a snapshot's position, and the torn tail kept aside before the
// writer (log.ts) cuts it off. Readers (the CLI, the outbox) use it without the writer's lock.
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { DriverError } from '../../errors.ts';
import { eachFrame, HEADER_BYTES, unframe, type ScanEnd } from './framing.ts';
import { startChecker, sharedBuffer, type Checker } from './check-thread.ts';
import { eventHash, hashFieldIs, storedBytesMatch } from './hash.ts';
import { GENESIS_HASH, type StoredEvent } from '../domain/types.ts';
import { upcast } from './upcast.ts';

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
  let corrupt: { offset: number; reason: string } | null = null;
  const sub = buf.subarray(shift);
  const rehash = o.rehash ?? true;
  // A long replay's checksums and stored-bytes hashes are checked on the second core as well.
  const checker = rehash === 'stored' ? (o.checker ?? startChecker(sub)) : null;
  const checked = checker ? (n: number) => checker.checked(n) : undefined;
  // One record at a time: parsed, checked, handed on, and garbage before the next (a long replay).
  const visit = (rel: number, payload: () => string): boolean => {
    const offset = rel + shift;
    const check = rehash !== 'stored' ? rehash : checked?.(count) ? 'checked' : sub.subarray(rel + HEADER_BYTES, rel + HEADER_BYTES + sub.readUInt32BE(rel));
    const ev = verified(payload(), offset, base.seq + count + 1, prevHash, check);
    if (typeof ev === 'string') {
      corrupt = { offset, reason: ev };
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
  const bad = corrupt as { offset: number; reason: string } | null;
  if (bad) return { events, count, goodLength: bad.offset, lastOffset, end: { kind: 'corrupt', ...bad } };
  const end: ScanEnd = un.end.kind === 'clean' ? un.end : { ...un.end, offset: un.end.offset + shift };
  return { events, count, goodLength: un.goodLength + shift, lastOffset, end };
}

/** The event a record holds when it is JSON, a known version, the seq `want` and links to `prevHash`; else why not. */
function verified(payload: string, offset: number, want: number, prevHash: string, rehash: boolean | Buffer | 'checked'): StoredEvent | string {
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
    return (e as Error).message;
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
export async function readLog(dir: string, from: ScanBase = LOG_START, part?: Pick<ScanOptions, 'limit' | 'rehash' | 'consume' | 'keep'>): Promise<ScanResult & { base: ScanBase }> {
  // A part (limit) ends before the head, so only a whole read can tell that the log holds too little.
  let fh: FileHandle;
  try {
    fh = await open(join(dir, LOG_FILE), 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      return { events: [], count: 0, goodLength: 0, lastOffset: -1, end: { kind: 'clean' }, base: LOG_START };
    }
    throw new DriverError('LN_ERR_LOG_IO', `cannot read the event log in ${dir}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const res = await readAndScan(fh, from, part ?? {});
    if (res.end.kind === 'corrupt') throw corruptError(dir, res.end.offset, res.end.reason);
    if (part?.limit === undefined) checkCovers(dir, from, res);
    return res;
  } finally {
    await fh.close();
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

/**
 * Reads what a replay from `from` needs and scans it: only the bytes from the snapshot's last
 * record on when `from` lines up with the file (so a long log is not read whole at every
 * start), else the whole file from the first record. Offsets in the result are file offsets.
 */
export async function readAndScan(fh: FileHandle, from: ScanBase, o: ScanOptions = {}): Promise<ScanResult & { base: ScanBase }> {
  const size = (await fh.stat()).size;
  if (from.offset > 0 && from.recordOffset >= 0 && from.recordOffset < from.offset && from.offset <= size) {
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
  const whole = await readFrom(fh, 0, size);
  return { ...scanLog(whole, LOG_START, 0, o), base: LOG_START };
}

/** Up to `length` bytes from `start` (fewer when the file ends before): not zero-filled first (a long log). */
async function readFrom(fh: FileHandle, start: number, length: number): Promise<Buffer> {
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
