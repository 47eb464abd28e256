import { decide } from '../domain/decide.ts';
import type { Command } from '../domain/commands.ts';
import { evolve } from '../domain/evolve.ts';
import type { EventLog } from './log.ts';
import { writeSnapshot } from './snapshot.ts';
import { DriverError } from '../../errors.ts';
import { relative } from 'node:path';
import type { Cause, EventType, State, StoredEvent } from '../domain/types.ts';

/** Events that give something back: recorded from the log's reserve when the disk is nearly full. */
const RELEASING: ReadonlySet<EventType> = new Set<EventType>([
  'network.deleted',
  'network.rolledback',
  'endpoint.left',
  'endpoint.deleted',
  'endpoint.rolledback',
  'endpoint.lost',
  'endpoint.external.revoked',
  'pool.released',
  'address.released',
]);

export type EventListener = (events: readonly StoredEvent[], state: State) => void;

export interface StoreOptions {
  /** Write a snapshot every this many events (0: never, except at close). */
  readonly snapshotEvery?: number;
  /** The state dir, where snapshots go; no snapshots without it. */
  readonly dir?: string;
  readonly onSnapshotError?: (e: unknown) => void;
  /** Seq of the snapshot the initial state was rebuilt from (default: the initial state's own). */
  readonly snapshotSeq?: number;
}

/**
 * Decides commands against the head state (which includes appends not yet on disk, so that
 * concurrent callers see each other in order), and publishes the durable state once the group
 * commit holding their events has been fsynced. Readers that act on the kernel use `state`.
 */
export class EventStore {
  private head: State;
  private durableState: State;
  private readonly listeners: EventListener[] = [];

  private readonly log: EventLog;
  private readonly opts: StoreOptions;
  private snapshotSeq: number;
  private snapshotting: Promise<void> | null = null;
  /** How often the log refused appends, and why the last time (see waitDurable). */
  private rejections = 0;
  private lastRejection: unknown = null;

  constructor(log: EventLog, initial: State, opts: StoreOptions = {}) {
    this.log = log;
    this.opts = opts;
    this.snapshotSeq = opts.snapshotSeq ?? initial.seq;
    this.head = initial;
    this.durableState = initial;
    // Everything not yet durable was dropped, synchronously: decide against the durable state
    // again before any other command is decided (a failed write can recover on the next one).
    log.onReject((e) => {
      this.head = this.durableState;
      this.rejections += 1;
      this.lastRejection = e;
    });
  }

  /** The state as folded from events that are on disk. */
  get state(): State {
    return this.durableState;
  }

  get lastSeq(): number {
    return this.durableState.seq;
  }

  get logBytes(): number {
    return this.log.sizeBytes;
  }

  onEvents(listener: EventListener): void {
    this.listeners.push(listener);
  }

  /**
   * The state with every decided event, durable or not yet: what the reconciler plans from, so
   * that kernel work can start while the group commit is written (if the log refuses the events,
   * this falls back to the durable state and what was made for them is an orphan).
   */
  get latest(): State {
    return this.head;
  }

  /**
   * decide → append → fold. Resolves with the stored events once they are durable; each records
   * `cause`, who made it happen. `onDecided` is called once the events are appended (in
   * `latest`), before they are durable; not for a command that decides nothing.
   */
  async execute(cmd: Command, cause: Cause, onDecided?: () => void): Promise<StoredEvent[]> {
    const before = this.head;
    let events = decide(cmd, before);
    if (events.some((e) => !RELEASING.has(e.type)) && !this.log.roomKnown()) {
      // Taking something needs room beyond the reserve (unless a recent reading showed plenty:
      // then nothing is awaited and decide runs once); decide again after the wait if other
      // commands ran meanwhile (decide and append stay one synchronous step; decide is pure, so
      // an unchanged head gives the same events).
      await this.log.checkRoom();
      if (this.head !== before) events = decide(cmd, this.head);
    }
    if (events.length === 0) {
      await this.waitDurable(this.head.seq);
      return [];
    }
    const { stored, durable } = this.log.append(events, cause);
    const after = stored.reduce(evolve, this.head);
    this.head = after;
    onDecided?.();
    await durable;
    if (after.seq > this.durableState.seq) this.durableState = after;
    for (const l of this.listeners) l(stored, this.durableState);
    const every = this.opts.snapshotEvery ?? 0;
    if (every > 0 && this.durableState.seq - this.snapshotSeq >= every) void this.snapshot();
    return stored;
  }

  /** Writes a snapshot of the durable state when the log is idle (nothing half-written). */
  async snapshot(): Promise<void> {
    const dir = this.opts.dir;
    if (!dir || this.snapshotting || !this.log.idle) return;
    const head = this.log.head;
    const state = this.durableState;
    if (head.seq !== state.seq || state.seq === this.snapshotSeq) return;
    this.snapshotting = writeSnapshot(dir, { seq: head.seq, hash: head.hash, offset: head.offset, recordOffset: head.recordOffset, state })
      .then(() => {
        this.snapshotSeq = head.seq;
      })
      .catch((e: unknown) => this.opts.onSnapshotError?.(e))
      .finally(() => {
        this.snapshotting = null;
      });
    await this.snapshotting;
  }

  /**
   * Moves the log's durable events into the state dir's archive/ (EventLog.archive) with a
   * snapshot of the state after the last of them, so that no start needs the archive, and records
   * that (`log.archived`, with `cause`) in the new file right after (calls made during the
   * archive come before it). Null when no event was
   * written since the log's last archive; `unrecorded` says why the record failed (the archive
   * itself is done then).
   */
  async archive(cause: Cause): Promise<{ file: string; first: number; last: number; bytes: number; unrecorded?: string } | null> {
    const done = await this.archiveFile();
    if (!done || !this.opts.dir) return done;
    const archive = relative(this.opts.dir, done.file);
    try {
      await this.execute({ type: 'RecordArchive', first: done.first, last: done.last, archive, bytes: done.bytes }, cause);
      return done;
    } catch (e) {
      return { ...done, unrecorded: (e as Error).message };
    }
  }

  private async archiveFile(): Promise<{ file: string; first: number; last: number; bytes: number } | null> {
    const dir = this.opts.dir;
    if (!dir) throw new DriverError('LN_ERR_CONFIG', 'no state dir to archive the event log in');
    while (this.snapshotting) await this.snapshotting;
    const run = this.log.archive(async (head) => {
      // Events are folded into the durable state in the turn after their fsync resolves.
      for (let i = 0; this.durableState.seq < head.seq && i < 1_000; i++) await new Promise((r) => setImmediate(r));
      const state = this.durableState;
      if (state.seq !== head.seq) throw new DriverError('LN_ERR_INTERNAL', `the state is at seq ${state.seq}, the log's last durable event is ${head.seq}; nothing was archived`);
      const { seq, hash, offset, recordOffset, before } = head;
      await writeSnapshot(dir, { seq, hash, offset, recordOffset, ...(before ? { before } : {}), state });
      this.snapshotSeq = head.seq;
    });
    this.snapshotting = run.then(
      () => undefined,
      () => undefined,
    );
    try {
      return await run;
    } finally {
      this.snapshotting = null;
    }
  }

  // A repeated call must not answer before the events it repeats are durable; once the log has
  // refused them, they never will be.
  private async waitDurable(seq: number): Promise<void> {
    const rejections = this.rejections;
    while (this.durableState.seq < seq) {
      if (this.rejections !== rejections) throw this.lastRejection;
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  async close(): Promise<void> {
    while (this.snapshotting) await this.snapshotting;
    await this.log.drain();
    await this.snapshot();
    await this.log.close();
  }
}
