// The durable event log: one append-only file, one writer. Appends are stamped (seq, time,
// hash chain) synchronously, in call order, and written by a single flush loop that groups
// everything queued into one write + one fdatasync (group commit).
import { mkdir, open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { DriverError } from '../errors.ts';
import { frame, unframe, type ScanEnd } from './framing.ts';
import { eventHash } from './hash.ts';
import { EventVersions, GENESIS_HASH, type NewEvent, type StoredEvent } from './types.ts';
import { upcast } from './upcast.ts';

export const LOG_FILE = 'events.log';

export interface ScanResult {
  readonly events: StoredEvent[];
  readonly goodLength: number;
  readonly end: ScanEnd;
}

/** Parses and verifies a whole log image: framing, JSON, versions, seq continuity, hash chain. */
export function scanLog(buf: Buffer): ScanResult {
  const { frames, goodLength, end } = unframe(buf);
  const events: StoredEvent[] = [];
  let prevHash = GENESIS_HASH;
  for (const f of frames) {
    let raw: unknown;
    try {
      raw = JSON.parse(f.payload);
    } catch {
      return { events, goodLength: f.offset, end: { kind: 'corrupt', offset: f.offset, reason: 'record is not JSON' } };
    }
    let ev: StoredEvent;
    try {
      ev = upcast(raw, f.offset);
    } catch (e) {
      return { events, goodLength: f.offset, end: { kind: 'corrupt', offset: f.offset, reason: (e as Error).message } };
    }
    const want = events.length + 1;
    const bad =
      ev.seq !== want
        ? `seq ${ev.seq} where ${want} was expected`
        : ev.prevhash !== prevHash
          ? `event ${ev.seq} does not link to the previous event's hash`
          : eventHash(ev) !== ev.hash
            ? `event ${ev.seq} does not match its own hash (altered)`
            : null;
    if (bad) return { events, goodLength: f.offset, end: { kind: 'corrupt', offset: f.offset, reason: bad } };
    events.push(ev);
    prevHash = ev.hash;
  }
  return { events, goodLength, end };
}

/** Reads the log without taking the writer's lock and without repairing it (CLI readers). */
export async function readLog(dir: string): Promise<ScanResult> {
  let buf: Buffer;
  try {
    buf = await readFile(join(dir, LOG_FILE));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { events: [], goodLength: 0, end: { kind: 'clean' } };
    throw new DriverError('LN_ERR_LOG_IO', `cannot read the event log in ${dir}: ${(e as Error).message}`, { cause: e });
  }
  const res = scanLog(buf);
  if (res.end.kind === 'corrupt') throw corruptError(dir, res.end.offset, res.end.reason);
  return res;
}

function corruptError(dir: string, offset: number, reason: string): DriverError {
  return new DriverError(
    'LN_ERR_LOG_CORRUPT',
    `the event log ${join(dir, LOG_FILE)} is damaged at byte offset ${offset} (${reason}); ` +
      `run 'ledgernet events verify --state-dir ${dir}' and restore the file from a backup`,
  );
}

export interface AppendResult {
  readonly stored: StoredEvent[];
  /** Resolves once every stored event is on disk (fdatasync). */
  readonly durable: Promise<void>;
}

interface Pending {
  readonly buf: Buffer;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

export interface LogOptions {
  readonly host: string;
  readonly now?: () => Date;
  /** Called after each group commit with its size and fsync time (metrics). */
  readonly onFlush?: (info: { events: number; bytes: number; fsyncMs: number }) => void;
}

export class EventLog {
  private readonly queue: Pending[] = [];
  private flushing = false;
  private failure: unknown = null;
  private seq: number;
  private hash: string;
  private bytes: number;
  private readonly now: () => Date;

  private readonly fh: FileHandle;
  private readonly opts: LogOptions;

  private constructor(fh: FileHandle, opts: LogOptions, last: StoredEvent | undefined, size: number) {
    this.fh = fh;
    this.opts = opts;
    this.seq = last?.seq ?? 0;
    this.hash = last?.hash ?? GENESIS_HASH;
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
  ): Promise<{ log: EventLog; events: StoredEvent[]; repaired: { offset: number; bytes: number } | null }> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, LOG_FILE);
    let fh: FileHandle;
    try {
      fh = await open(path, 'a+', 0o600);
    } catch (e) {
      throw new DriverError('LN_ERR_LOG_IO', `cannot open the event log ${path}: ${(e as Error).message}`, { cause: e });
    }
    try {
      const buf = await fh.readFile();
      const res = scanLog(buf);
      if (res.end.kind === 'corrupt') throw corruptError(dir, res.end.offset, res.end.reason);
      let repaired: { offset: number; bytes: number } | null = null;
      if (res.end.kind === 'torn') {
        await fh.truncate(res.goodLength);
        await fh.sync();
        repaired = { offset: res.end.offset, bytes: res.end.bytes };
      }
      const dirHandle = await open(dir, 'r');
      await dirHandle.sync().finally(() => dirHandle.close());
      return { log: new EventLog(fh, opts, res.events.at(-1), res.goodLength), events: res.events, repaired };
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

  /** Stamps the events now (in call order) and queues them for the next group commit. */
  append(events: readonly NewEvent[]): AppendResult {
    if (this.failure) return { stored: [], durable: Promise.reject(this.failure) };
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
    const buf = Buffer.concat(stored.map((s) => frame(JSON.stringify(s))));
    const durable = new Promise<void>((resolve, reject) => this.queue.push({ buf, resolve, reject }));
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
          if (this.failure) throw this.failure;
          await this.fh.write(buf);
          const t0 = performance.now();
          await this.fh.datasync();
          this.bytes += buf.length;
          this.opts.onFlush?.({ events: batch.length, bytes: buf.length, fsyncMs: performance.now() - t0 });
          for (const p of batch) p.resolve();
        } catch (e) {
          // After a failed write or fsync the file's state is unknown: refuse everything after.
          this.failure ??= new DriverError('LN_ERR_LOG_IO', `writing the event log failed: ${(e as Error).message}`, {
            cause: e,
          });
          for (const p of batch) p.reject(this.failure);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  /** Waits for queued appends, then closes the file. */
  async close(): Promise<void> {
    while (this.flushing || this.queue.length > 0) await new Promise((r) => setTimeout(r, 1));
    await this.fh.close();
  }
}
