// The durable event log: one append-only file, one writer. Appends are stamped (seq, time,
// hash chain) synchronously, in call order, and written by a single flush loop that groups
// everything queued into one write + one fdatasync (group commit).
import { mkdir, open, statfs, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DriverError } from '../../errors.ts';
import { frame, unframe, type ScanEnd } from './framing.ts';
import { eventHash } from './hash.ts';
import { EventVersions, GENESIS_HASH, type NewEvent, type StoredEvent } from '../domain/types.ts';
import { upcast } from './upcast.ts';

export const LOG_FILE = 'events.log';

export interface ScanResult {
  readonly events: StoredEvent[];
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
export function scanLog(buf: Buffer, base: ScanBase = LOG_START, bufStart = 0): ScanResult {
  const un = unframe(buf.subarray(base.offset), bufStart + base.offset);
  const shift = base.offset;
  const frames = un.frames.map((f) => ({ ...f, offset: f.offset + shift }));
  const goodLength = un.goodLength + shift;
  const end: ScanEnd = un.end.kind === 'clean' ? un.end : { ...un.end, offset: un.end.offset + shift };
  const events: StoredEvent[] = [];
  let prevHash = base.hash;
  let lastOffset = -1;
  for (const f of frames) {
    let raw: unknown;
    try {
      raw = JSON.parse(f.payload);
    } catch {
      return { events, goodLength: f.offset, lastOffset, end: { kind: 'corrupt', offset: f.offset, reason: 'record is not JSON' } };
    }
    let ev: StoredEvent;
    try {
      ev = upcast(raw, f.offset);
    } catch (e) {
      return { events, goodLength: f.offset, lastOffset, end: { kind: 'corrupt', offset: f.offset, reason: (e as Error).message } };
    }
    const want = base.seq + events.length + 1;
    const bad =
      ev.seq !== want
        ? `seq ${ev.seq} where ${want} was expected`
        : ev.prevhash !== prevHash
          ? `event ${ev.seq} does not link to the previous event's hash`
          : eventHash(ev) !== ev.hash
            ? `event ${ev.seq} does not match its own hash (altered)`
            : null;
    if (bad) return { events, goodLength: f.offset, lastOffset, end: { kind: 'corrupt', offset: f.offset, reason: bad } };
    events.push(ev);
    prevHash = ev.hash;
    lastOffset = f.offset;
  }
  return { events, goodLength, lastOffset, end };
}

/**
 * Reads the log without taking the writer's lock and without repairing it (CLI readers). With a
 * `from` base (a snapshot's position) only the records after it are read, when it lines up.
 */
export async function readLog(dir: string, from: ScanBase = LOG_START): Promise<ScanResult & { base: ScanBase }> {
  let fh: FileHandle;
  try {
    fh = await open(join(dir, LOG_FILE), 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      return { events: [], goodLength: 0, lastOffset: -1, end: { kind: 'clean' }, base: LOG_START };
    }
    throw new DriverError('LN_ERR_LOG_IO', `cannot read the event log in ${dir}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const res = await readAndScan(fh, from);
    if (res.end.kind === 'corrupt') throw corruptError(dir, res.end.offset, res.end.reason);
    checkCovers(dir, from, res);
    return res;
  } finally {
    await fh.close();
  }
}

/**
 * Reads what a replay from `from` needs and scans it: only the bytes from the snapshot's last
 * record on when `from` lines up with the file (so a long log is not read whole at every
 * start), else the whole file from the first record. Offsets in the result are file offsets.
 */
async function readAndScan(fh: FileHandle, from: ScanBase): Promise<ScanResult & { base: ScanBase }> {
  const size = (await fh.stat()).size;
  if (from.offset > 0 && from.recordOffset >= 0 && from.recordOffset < from.offset && from.offset <= size) {
    const start = from.recordOffset;
    const part = Buffer.alloc(size - start);
    await fh.read(part, 0, part.length, start);
    const rel: ScanBase = { ...from, offset: from.offset - start, recordOffset: 0 };
    if (baseLinesUp(part, rel)) {
      const r = scanLog(part, rel, start);
      const end: ScanEnd = r.end.kind === 'clean' ? r.end : { ...r.end, offset: r.end.offset + start };
      return { events: r.events, goodLength: r.goodLength + start, lastOffset: r.lastOffset < 0 ? -1 : r.lastOffset + start, end, base: from };
    }
  }
  const whole = Buffer.alloc(size);
  await fh.read(whole, 0, size, 0);
  return { ...scanLog(whole), base: LOG_START };
}

/** The seq of the last good record of a scan (after a repair of its torn tail). */
export function lastSeqOf(res: { events: readonly StoredEvent[]; base: ScanBase }): number {
  return res.events.at(-1)?.seq ?? res.base.seq;
}

/**
 * A snapshot is only written for events already durable in the log: one that covers events the
 * log does not hold means the log lost acknowledged events. Replaying without them would move
 * the state back in time silently, so this refuses.
 */
function checkCovers(dir: string, from: ScanBase, res: { events: readonly StoredEvent[]; base: ScanBase; goodLength: number }): void {
  const last = lastSeqOf(res);
  if (from.seq <= last) return;
  throw new DriverError(
    'LN_ERR_LOG_CORRUPT',
    `the event log ${join(dir, LOG_FILE)} holds events up to seq ${last} (${res.goodLength} good bytes) but the snapshot ` +
      `${join(dir, 'snapshot.json')} covers events up to seq ${from.seq} (log offset ${from.offset}): acknowledged events are ` +
      `missing from the log (damaged, truncated or replaced); refusing to go back in time. Restore events.log from a backup`,
  );
}

function corruptError(dir: string, offset: number, reason: string): DriverError {
  return new DriverError(
    'LN_ERR_LOG_CORRUPT',
    `the event log ${join(dir, LOG_FILE)} is damaged at byte offset ${offset} (${reason}); ` +
      `run 'ledgernet events verify --state-dir ${dir}' and restore the file from a backup`,
  );
}

/** Name under which the bytes cut as a torn tail at `offset` are kept. */
export const tornFile = (offset: number) => `${LOG_FILE}.torn-${offset}`;

/** Copies the torn tail aside (never discarded), durably, before the log is cut. */
async function keepTorn(dir: string, fh: FileHandle, offset: number, bytes: number): Promise<string> {
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

export interface AppendResult {
  readonly stored: StoredEvent[];
  /** Resolves once every stored event is on disk (fdatasync). */
  readonly durable: Promise<void>;
}

interface Pending {
  readonly buf: Buffer;
  readonly last: { readonly seq: number; readonly hash: string; readonly len: number };
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

/** Default room kept on the state dir's file system for events that release something. */
export const DEFAULT_RESERVE_BYTES = 1024 * 1024;

export interface LogOptions {
  readonly host: string;
  /**
   * Free bytes below which `checkRoom` refuses (default 1 MiB): appends that take something
   * (a network, an address…) stop while there is still room for the ones that give it back, so
   * Docker's cleanup after a refused call is recorded instead of leaked.
   */
  readonly reserveBytes?: number;
  readonly now?: () => Date;
  /** Called after each group commit with its size and fsync time (metrics). */
  readonly onFlush?: (info: { events: number; bytes: number; fsyncMs: number }) => void;
}

export class EventLog {
  private readonly queue: Pending[] = [];
  private flushing = false;
  /** Set when a write or fsync failed; the next batch first cuts the file back to `bytes`. */
  private broken: DriverError | null = null;
  private seq: number;
  private hash: string;
  private bytes: number;
  private readonly now: () => Date;
  private readonly rejectListeners: ((e: DriverError) => void)[] = [];

  private readonly fh: FileHandle;
  private readonly path: string;
  private readonly opts: LogOptions;

  private durableHead: ScanBase;

  private constructor(
    fh: FileHandle,
    path: string,
    opts: LogOptions,
    last: { seq: number; hash: string; recordOffset: number },
    size: number,
  ) {
    this.fh = fh;
    this.path = path;
    this.opts = opts;
    this.seq = last.seq;
    this.hash = last.hash;
    this.durableHead = { offset: size, seq: last.seq, hash: last.hash, recordOffset: last.recordOffset };
    this.bytes = size;
    this.now = opts.now ?? (() => new Date());
  }

  /**
   * Opens (or creates) the log for writing. A torn tail is cut back to the last good record and
   * reported in `repaired`; damage before the end throws LN_ERR_LOG_CORRUPT.
   */
  static async open(
    dir: string,
    opts: LogOptions,
    from: ScanBase = LOG_START,
  ): Promise<{
    log: EventLog;
    events: StoredEvent[];
    /** The base the replay started from: `from`, or LOG_START when `from` did not line up. */
    base: ScanBase;
    /** A torn tail cut off at `offset`; its bytes were kept in the file `keptAs`. */
    repaired: { offset: number; bytes: number; keptAs: string } | null;
  }> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, LOG_FILE);
    let fh: FileHandle;
    try {
      fh = await open(path, 'a+', 0o600);
    } catch (e) {
      throw new DriverError('LN_ERR_LOG_IO', `cannot open the event log ${path}: ${(e as Error).message}`, { cause: e });
    }
    try {
      // A snapshot that does not line up with the log is ignored: replay everything.
      const res = await readAndScan(fh, from);
      const base = res.base;
      if (res.end.kind === 'corrupt') throw corruptError(dir, res.end.offset, res.end.reason);
      checkCovers(dir, from, res);
      let repaired: { offset: number; bytes: number; keptAs: string } | null = null;
      if (res.end.kind === 'torn') {
        const keptAs = await keepTorn(dir, fh, res.end.offset, res.end.bytes);
        await fh.truncate(res.goodLength);
        await fh.sync();
        repaired = { offset: res.end.offset, bytes: res.end.bytes, keptAs };
      }
      const dirHandle = await open(dir, 'r');
      await dirHandle.sync().finally(() => dirHandle.close());
      const lastEv = res.events.at(-1);
      const last = lastEv
        ? { seq: lastEv.seq, hash: lastEv.hash, recordOffset: res.lastOffset }
        : { seq: base.seq, hash: base.hash, recordOffset: base.recordOffset };
      return { log: new EventLog(fh, path, opts, last, res.goodLength), events: res.events, base, repaired };
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  get lastSeq(): number {
    return this.seq;
  }

  get sizeBytes(): number {
    return this.bytes;
  }

  /** Position of the last durable record: where a snapshot taken now would resume. */
  get head(): ScanBase {
    return this.durableHead;
  }

  /** True when every stamped event is on disk (nothing queued or being written). */
  get idle(): boolean {
    return !this.flushing && this.queue.length === 0;
  }

  /**
   * Called, synchronously, whenever appends are refused: every event stamped after the durable
   * head was dropped, and the next append continues the chain from the durable head.
   */
  onReject(listener: (e: DriverError) => void): void {
    this.rejectListeners.push(listener);
  }

  /** Stamps the events now (in call order) and queues them for the next group commit. */
  append(events: readonly NewEvent[]): AppendResult {
    const at = this.now().toISOString();
    const stored = events.map((e) => {
      this.seq += 1;
      const base = {
        seq: this.seq,
        id: `${this.opts.host}:${this.seq}`,
        host: this.opts.host,
        type: e.type,
        v: EventVersions[e.type],
        at,
        data: e.data,
        prevhash: this.hash,
      };
      const hash = eventHash(base as Omit<StoredEvent, 'hash'>);
      this.hash = hash;
      return { ...base, hash } as StoredEvent;
    });
    if (stored.length === 0) return { stored, durable: Promise.resolve() };
    const frames = stored.map((s) => frame(JSON.stringify(s)));
    const buf = Buffer.concat(frames);
    const lastEvent = stored[stored.length - 1] as StoredEvent;
    const last = { seq: lastEvent.seq, hash: lastEvent.hash, len: frames[frames.length - 1]?.length ?? 0 };
    const durable = new Promise<void>((resolve, reject) => this.queue.push({ buf, last, resolve, reject }));
    this.kick();
    return { stored, durable };
  }

  private kick(): void {
    if (this.flushing) return;
    this.flushing = true;
    void this.flushLoop();
  }

  private async flushLoop(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0);
        const buf = Buffer.concat(batch.map((p) => p.buf));
        try {
          if (this.broken) await this.recover();
          await this.writeAll(buf);
          const t0 = performance.now();
          await this.fh.datasync();
          this.bytes += buf.length;
          const tail = (batch[batch.length - 1] as Pending).last;
          this.durableHead = { offset: this.bytes, seq: tail.seq, hash: tail.hash, recordOffset: this.bytes - tail.len };
          this.opts.onFlush?.({ events: batch.length, bytes: buf.length, fsyncMs: performance.now() - t0 });
          for (const p of batch) p.resolve();
        } catch (e) {
          // After a failed write or fsync the file's state is unknown: nothing of this batch, nor
          // of what was stamped after it (it chains onto it), is ever acknowledged.
          this.broken = e instanceof DriverError ? e : this.ioError(e);
          this.rejectAll(batch, this.broken);
          // Cut a partial record off at once (it frees the space it took); the next batch checks.
          await this.fh.truncate(this.bytes).catch(() => undefined);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private ioError(e: unknown): DriverError {
    const why = (e as Error).message;
    const hint = (e as NodeJS.ErrnoException).code === 'ENOSPC' ? ' (the file system of the state dir is full; free space there)' : '';
    return new DriverError('LN_ERR_LOG_IO', `writing the event log ${this.path} failed: ${why}${hint}; nothing was recorded`, { cause: e });
  }

  private rejectAll(batch: readonly Pending[], err: DriverError): void {
    const dropped = [...batch, ...this.queue.splice(0)];
    this.seq = this.durableHead.seq;
    this.hash = this.durableHead.hash;
    for (const l of this.rejectListeners) l(err);
    for (const p of dropped) p.reject(err);
  }

  /**
   * After a failure: cut the file back to the last durable record and make that durable, so
   * that the next write starts on a clean boundary. Throws (and the batch is refused) while
   * that is not possible.
   */
  private async recover(): Promise<void> {
    try {
      await this.fh.truncate(this.bytes);
      await this.fh.datasync();
      const size = (await this.fh.stat()).size;
      if (size !== this.bytes) throw new Error(`the file has ${size} bytes after cutting it back to ${this.bytes}`);
    } catch (e) {
      throw this.ioError(e);
    }
    this.broken = null;
  }

  /** Throws LN_ERR_LOG_IO when the state dir's file system has less free room than the reserve. */
  async checkRoom(): Promise<void> {
    const reserve = this.opts.reserveBytes ?? DEFAULT_RESERVE_BYTES;
    let free: number;
    try {
      const st = await statfs(dirname(this.path));
      free = st.bavail * st.bsize;
    } catch {
      return; // cannot tell: the write itself will say
    }
    if (free >= reserve) return;
    throw new DriverError(
      'LN_ERR_LOG_IO',
      `no space left for the event log: the file system of ${dirname(this.path)} has ${free} bytes free, less than the ` +
        `${reserve} bytes ledgernet keeps for releasing networks and addresses; free space there (nothing was recorded)`,
    );
  }

  /** A write may be short (ENOSPC, a file size limit): write the rest, or fail. */
  private async writeAll(buf: Buffer): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await this.fh.write(buf, done, buf.length - done);
      if (bytesWritten <= 0) throw new Error(`short write: ${done} of ${buf.length} bytes written`);
      done += bytesWritten;
    }
  }

  /** The error of the last failed write while the log has not written since, else null. */
  get failed(): DriverError | null {
    return this.broken;
  }

  /** Waits until every queued append is written. */
  async drain(): Promise<void> {
    while (this.flushing || this.queue.length > 0) await new Promise((r) => setTimeout(r, 1));
  }

  /** Waits for queued appends, then closes the file. */
  async close(): Promise<void> {
    await this.drain();
    await this.fh.close();
  }
}
