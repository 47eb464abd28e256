// The durable event log: one append-only file, one writer. Appends are stamped (seq, time,
// hash chain) synchronously, in call order, and written by a single flush loop that groups
// everything queued into one write on a file opened with O_DSYNC (group commit: the write returns
// once the bytes are on disk, as write + fdatasync would, one system call and one trip through
// libuv's thread pool instead of two). Reading and checking the file is in read.ts.
import { mkdir, open, statfs, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import { dirname, join } from 'node:path';
import { DriverError } from '../../errors.ts';
import { frame, HEADER_BYTES, MAX_RECORD_BYTES, unframe } from './framing.ts';
import { sealEvent } from './hash.ts';
import { EventVersions, type Cause, type NewEvent, type StoredEvent } from '../domain/types.ts';
import { checkCovers, keepTorn, scanError, LOG_FILE, LOG_START, refuseBadFirstRecord, refuseIfArchived, type ScanBase, type ScanOptions } from './read.ts';
import { replayScan } from './read-parts.ts';
import { ARCHIVE_DIR, archiveFiles, removeUnfinishedArchive, startOfFile } from './archive.ts';

/** How the log is opened for writing (O_DSYNC: see the top of this file). */
const APPEND_DSYNC = constants.O_RDWR | constants.O_CREAT | constants.O_APPEND | constants.O_DSYNC;

export interface AppendResult {
  readonly stored: StoredEvent[];
  /** Resolves once every stored event is on disk (its group commit's O_DSYNC write returned). */
  readonly durable: Promise<void>;
}

interface Pending {
  readonly buf: Buffer;
  readonly last: { readonly seq: number; readonly hash: string; readonly len: number };
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

/** Default room kept on the state dir's file system for events that release something. */
const DEFAULT_RESERVE_BYTES = 1024 * 1024;
/**
 * A free-space reading younger than this, that leaves this much beyond the reserve after what
 * the log wrote since, answers `roomKnown` without a statfs (a statfs per call was 3 % of the
 * worker's CPU in row 6, and its await made concurrent calls decide twice). Closer to the
 * reserve, or once the reading is older, every taking call reads the file system again.
 */
const ROOM_FRESH_MS = 1_000;
const ROOM_MARGIN_BYTES = 64 * 1024 * 1024;

export interface LogOptions {
  readonly host: string;
  /**
   * Free bytes below which `checkRoom` refuses (default 1 MiB): appends that take something
   * (a network, an address…) stop while there is still room for the ones that give it back, so
   * Docker's cleanup after a refused call is recorded instead of leaked.
   */
  readonly reserveBytes?: number;
  readonly now?: () => Date;
  /** Called after each group commit with its size and the time its durable write took (metrics). */
  readonly onFlush?: (info: { events: number; bytes: number; fsyncMs: number }) => void;
}

export class EventLog {
  private readonly queue: Pending[] = [];
  private flushing = false;
  /** Set when a write or fsync failed; the next batch first cuts the file back to `bytes`. */
  private broken: DriverError | null = null;
  /** Set when the file can no longer be written at all (see archive): every batch is refused. */
  private fatal: DriverError | null = null;
  private seq: number;
  private hash: string;
  private bytes: number;
  private readonly now: () => Date;
  private readonly rejectListeners: ((e: DriverError) => void)[] = [];

  private fh: FileHandle;
  private readonly dir: string;
  private readonly path: string;
  private readonly opts: LogOptions;

  private durableHead: ScanBase;
  /** The seq the file's first event follows (0, or the last archived event's: see archive.ts). */
  private startSeq: number;
  /** The file is being replaced (archive): appends queue until it is done. */
  private archiving = false;
  /** The last free-space reading: when (performance.now()), how many bytes, and the log's size then. */
  private room: { at: number; free: number; bytes: number } | null = null;

  private constructor(
    fh: FileHandle,
    path: string,
    opts: LogOptions,
    last: { seq: number; hash: string; recordOffset: number },
    size: number,
    startSeq: number,
  ) {
    this.fh = fh;
    this.startSeq = startSeq;
    this.path = path;
    this.dir = dirname(path);
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
    /** With `partBytes`, a log `from` does not line up with is read in parts (replayScan), not whole. */
    scan: ScanOptions & { readonly partBytes?: number } = {},
  ): Promise<{
    log: EventLog;
    /** The events replayed (with `scan.keep`, only the last of them). */
    events: StoredEvent[];
    /** How many events were replayed. */
    count: number;
    /** The base the replay started from: `from`, or LOG_START when `from` did not line up. */
    base: ScanBase;
    /** A torn tail cut off at `offset`; its bytes were kept in the file `keptAs`. */
    repaired: { offset: number; bytes: number; keptAs: string } | null;
  }> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, LOG_FILE);
    let fh: FileHandle;
    try {
      await removeUnfinishedArchive(dir, path);
      fh = await open(path, APPEND_DSYNC, 0o600);
    } catch (e) {
      throw new DriverError('LN_ERR_LOG_IO', `cannot open the event log ${path}: ${(e as Error).message}`, { cause: e });
    }
    try {
      // A snapshot that does not line up with the log is ignored: replay everything.
      const res = await replayScan(fh, from, scan, dir);
      const base = res.base;
      if (res.end.kind === 'corrupt') throw scanError(dir, res.end);
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
      // A start from a snapshot reads nothing before it: the start record is checked here.
      const start = await startOfFile(fh);
      if (!start) {
        await refuseIfArchived(dir, fh);
        await refuseBadFirstRecord(dir, fh);
      }
      const startSeq = start?.seq ?? 0;
      return { log: new EventLog(fh, path, opts, last, res.goodLength, startSeq), events: res.events, count: res.count, base, repaired };
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
    return !this.flushing && !this.archiving && this.queue.length === 0;
  }

  /**
   * Called, synchronously, whenever appends are refused: every event stamped after the durable
   * head was dropped, and the next append continues the chain from the durable head.
   */
  onReject(listener: (e: DriverError) => void): void {
    this.rejectListeners.push(listener);
  }

  /** Stamps the events now (in call order), each with `cause`, and queues them for the next group commit. */
  append(events: readonly NewEvent[], cause?: Cause): AppendResult {
    const at = this.now().toISOString();
    const payloads: string[] = [];
    let seq = this.seq;
    let prevhash = this.hash;
    const stored = events.map((e) => {
      seq += 1;
      const base = {
        seq,
        id: `${this.opts.host}:${seq}`,
        host: this.opts.host,
        type: e.type,
        v: EventVersions[e.type],
        at,
        data: e.data,
        prevhash,
        ...(cause ? { cause } : {}),
      };
      // Stored in canonical form, so that a replay checks the hash over the stored bytes.
      const { hash, payload } = sealEvent(base as Omit<StoredEvent, 'hash'>);
      prevhash = hash;
      payloads.push(payload);
      return { ...base, hash } as StoredEvent;
    });
    if (stored.length === 0) return { stored, durable: Promise.resolve() };
    const frames = payloads.map(frame);
    // A record over the limit would be read back as damage, and the log could not be opened again.
    const huge = frames.findIndex((f) => f.length - HEADER_BYTES > MAX_RECORD_BYTES);
    if (huge >= 0) {
      const e = stored[huge] as StoredEvent;
      throw new DriverError('LN_ERR_LOG_IO', `event ${e.type} would be ${frames[huge]?.length} bytes, more than the log's ${MAX_RECORD_BYTES} per record; nothing was recorded`);
    }
    this.seq = seq;
    this.hash = prevhash;
    const buf = Buffer.concat(frames);
    const lastEvent = stored[stored.length - 1] as StoredEvent;
    const last = { seq: lastEvent.seq, hash: lastEvent.hash, len: frames[frames.length - 1]?.length ?? 0 };
    const durable = new Promise<void>((resolve, reject) => this.queue.push({ buf, last, resolve, reject }));
    this.kick();
    return { stored, durable };
  }

  private kick(): void {
    if (this.flushing || this.archiving) return;
    this.flushing = true;
    void this.flushLoop();
  }

  private async flushLoop(): Promise<void> {
    try {
      // An archive waiting for the file stops the loop after the batch being written.
      while (this.queue.length > 0 && !this.archiving) {
        const batch = this.queue.splice(0);
        const buf = Buffer.concat(batch.map((p) => p.buf));
        try {
          if (this.fatal) throw this.fatal;
          if (this.broken) await this.recover();
          const t0 = performance.now();
          await this.writeAll(buf);
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
          if (!this.fatal) await this.fh.truncate(this.bytes).catch(() => undefined);
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

  /** True when a recent free-space reading leaves far more than the reserve (checkRoom would pass). */
  roomKnown(): boolean {
    const r = this.room;
    if (!r || performance.now() - r.at >= ROOM_FRESH_MS) return false;
    return r.free - (this.bytes - r.bytes) >= (this.opts.reserveBytes ?? DEFAULT_RESERVE_BYTES) + ROOM_MARGIN_BYTES;
  }

  /** Throws LN_ERR_LOG_IO when the state dir's file system has less free room than the reserve. */
  async checkRoom(): Promise<void> {
    const reserve = this.opts.reserveBytes ?? DEFAULT_RESERVE_BYTES;
    let free: number;
    try {
      const at = performance.now();
      const bytes = this.bytes;
      const st = await statfs(dirname(this.path));
      free = st.bavail * st.bsize;
      this.room = { at, free, bytes };
    } catch {
      this.room = null;
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

  /**
   * Moves every durable event into archive/ and goes on in a new events.log that starts after
   * them (see archive.ts for the steps and what a crash between them leaves). Appends made
   * meanwhile wait and are written to the new file. `snapshot` writes the state at the given head
   * (the new file's start record) before the new file replaces the old one, so a start after
   * the archive never needs the archives. Null when nothing was written since the file started,
   * or only the record of the last archive (`log.archived`: archiving it alone would only make
   * another).
   */
  async archive(snapshot: (head: ScanBase) => Promise<void>): Promise<{ file: string; first: number; last: number; bytes: number } | null> {
    if (this.archiving) throw new DriverError('LN_ERR_LOG_IO', 'the event log is being archived already; try again once that is done');
    this.archiving = true;
    try {
      while (this.flushing) await new Promise((r) => setTimeout(r, 1));
      if (this.fatal ?? this.broken) throw this.fatal ?? this.broken;
      const head = this.durableHead;
      if (head.seq === this.startSeq || (head.seq === this.startSeq + 1 && (await this.lastType()) === 'log.archived')) return null;
      const first = this.startSeq + 1;
      const bytes = this.bytes;
      // The new file's head: its start record, which carries the last archived event's seq and hash.
      const headAt = (startBytes: number): ScanBase => ({ offset: startBytes, seq: head.seq, hash: head.hash, recordOffset: 0 });
      // The snapshot also says where that event is in the old file, the log if a crash cuts the archive off before the swap.
      const before = { offset: head.offset, recordOffset: head.recordOffset };
      const { name, startBytes, synced } = await archiveFiles(this.dir, this.path, this.startSeq, head, (b) => snapshot({ ...headAt(b), before }));
      if (synced) {
        // Appends to either file could be lost: the old one is the archive now, the new one may not
        // be events.log after a power cut. A restart syncs the state dir before it writes.
        this.fatal = new DriverError('LN_ERR_LOG_IO', `the event log was archived but ${this.dir} cannot be synced: ${synced.message}; restart ledgernet`, { cause: synced });
        throw this.fatal;
      }
      const fh = await open(this.path, APPEND_DSYNC, 0o600).catch((e: unknown) => {
        // The open file is the archive now: nothing may be written to it, and nothing can be
        // written to the new log. Every append is refused until a restart opens the new log.
        this.fatal = new DriverError('LN_ERR_LOG_IO', `the event log was archived but ${this.path} cannot be opened: ${(e as Error).message}; restart ledgernet`, { cause: e });
        throw this.fatal;
      });
      const old = this.fh;
      this.fh = fh;
      await old.close().catch(() => undefined);
      this.bytes = startBytes;
      this.durableHead = headAt(startBytes);
      this.startSeq = head.seq;
      this.room = null;
      return { file: join(this.dir, ARCHIVE_DIR, name), first, last: head.seq, bytes };
    } finally {
      this.archiving = false;
      if (this.queue.length > 0) this.kick();
    }
  }

  /** The type of the last durable event (read back from the file), or null when it cannot be read. */
  private async lastType(): Promise<string | null> {
    const { recordOffset, offset } = this.durableHead;
    if (recordOffset < 0) return null;
    const buf = Buffer.alloc(offset - recordOffset);
    await this.fh.read(buf, 0, buf.length, recordOffset);
    const { frames } = unframe(buf);
    try {
      return (JSON.parse(frames[0]?.payload ?? '') as { type?: string }).type ?? null;
    } catch {
      return null;
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
