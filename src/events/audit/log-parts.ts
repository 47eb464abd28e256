// The outbox's reader of the log file: the events after the cursor, read in parts from where the
// last read stopped, so a long backlog is read (and its chain checked) once, not once per part,
// also when it reaches into the archives (archive.ts): each part reads one file, from its
// position on, and only the files that hold events after the cursor.
import { join } from 'node:path';
import { DriverError } from '../../errors.ts';
import { ARCHIVE_DIR, listArchives, type ArchiveFile } from '../log/archive.ts';
import { liveStart, readArchivePart, readLogPart, type ScanBase } from '../log/read.ts';
import { GENESIS_HASH, type StoredEvent } from '../domain/types.ts';

/**
 * The last event read (`seq`, `hash`: null after a jump, when the event before the next file's
 * first is not known) and where the next one starts: at `base` in `file` (an archive, or null:
 * events.log), or without a base at the start of the file that holds the next event.
 */
interface Position {
  readonly seq: number;
  readonly hash: string | null;
  readonly file: ArchiveFile | null;
  readonly base: ScanBase | null;
}

const START: Position = { seq: 0, hash: GENESIS_HASH, file: null, base: null };

export class LogParts {
  private at: Position = START;
  private readonly dir: string;
  private readonly max: number;

  /**
   * `from`: a position in events.log a reading in parts ended at (readLogParts' `next`): the first
   * call with its seq as the cursor goes on from there instead of reading the file from its start.
   */
  constructor(dir: string, max: number, from?: ScanBase) {
    this.dir = dir;
    this.max = max;
    if (from) this.at = { seq: from.seq, hash: from.hash, file: null, base: from };
  }

  /** Up to `max` events after `cursor`, none after `head` (records past it may not be durable yet). */
  async after(cursor: number, head: number): Promise<StoredEvent[]> {
    // Behind the cursor is fine (skipped); past it, start over.
    if (this.at.seq > cursor) this.at = START;
    // After an archive, events.log starts after its start record: the file that holds the
    // cursor's next event is read from its start (positions before it are gone, or in archives
    // that are not needed and may have been deleted once published).
    const live = await liveStart(this.dir);
    if (live.seq <= cursor && this.at.seq <= live.seq) {
      // Also at live.seq itself: a position at the end of a file that was archived since is not
      // one in the events.log that goes on from it.
      if (this.at.seq === live.seq && this.at.hash !== null && this.at.hash !== live.hash) {
        throw linkBreak(this.dir, `events.log starts after event ${live.seq} with another hash than the one read before`);
      }
      this.at = { seq: live.seq, hash: live.hash, file: null, base: live };
    } else if (cursor < live.seq) {
      const a = await this.holding(cursor + 1, live.seq);
      if (this.at.seq < a.first - 1) this.at = { seq: a.first - 1, hash: null, file: a, base: null };
    }
    const out: StoredEvent[] = [];
    while (out.length < this.max && this.at.seq < head) {
      // No more than `max` after the cursor: the next call goes on from the last event returned.
      const limit = Math.min(this.max - out.length + Math.max(0, cursor - this.at.seq), head - this.at.seq);
      const events = this.at.seq < live.seq ? await this.readArchived(limit, live.seq) : await this.readLive(live, limit);
      if (events.length === 0) break;
      for (const ev of events) if (ev.seq > cursor) out.push(ev);
    }
    return out;
  }

  /**
   * The hash of event `seq` (undefined when the log does not hold it yet), read from the one file
   * that holds it: events.log from its start record on when `seq` is there, else the archive that
   * holds it. No other archive is read: archives may be deleted once published (README), and a
   * start with a backlog must not load the whole history to check one event. An archive that
   * holds `seq` and is not there is named.
   */
  async hashAt(seq: number): Promise<string | undefined> {
    if (seq <= 0) return seq === 0 ? GENESIS_HASH : undefined;
    const live = await liveStart(this.dir);
    if (seq === live.seq) return live.hash;
    return (await this.after(seq - 1, seq)).find((e) => e.seq === seq)?.hash;
  }

  private async readLive(live: ScanBase, limit: number): Promise<StoredEvent[]> {
    let from = this.at.file === null ? this.at.base : null;
    if (from === null) {
      // From the end of an archive: events.log's start record names the event it goes on from.
      if (this.at.hash !== null && (this.at.seq !== live.seq || this.at.hash !== live.hash)) {
        throw linkBreak(this.dir, `events.log starts after event ${live.seq}, but the archived events end at ${this.at.seq}${this.at.seq === live.seq ? ' with another hash' : ''}`);
      }
      from = live;
    }
    const part = await readLogPart(this.dir, from, limit);
    this.at = { seq: part.next.seq, hash: part.next.hash, file: null, base: part.next };
    return part.events;
  }

  private async readArchived(limit: number, liveSeq: number): Promise<StoredEvent[]> {
    const a = this.at.file && this.at.file.first <= this.at.seq + 1 && this.at.seq + 1 <= this.at.file.last ? this.at.file : await this.holding(this.at.seq + 1, liveSeq);
    // A position in events.log stays good in the archive it became (a hard link of the same file).
    const inside = this.at.base !== null && this.at.seq >= a.first && (this.at.file === null || this.at.file.name === a.name);
    const part = await readArchivePart(this.dir, a, inside ? this.at.base : null, limit);
    const first = part.events[0];
    if (!inside && this.at.hash !== null && first && first.seq === this.at.seq + 1 && first.prevhash !== this.at.hash) {
      throw linkBreak(this.dir, `${a.name} does not link to event ${this.at.seq} before it`);
    }
    this.at = { seq: part.next.seq, hash: part.next.hash, file: a, base: part.next };
    return part.events;
  }

  /** The archive holding event `seq` (older than events.log's first, `liveSeq` + 1), or an error naming the missing ones. */
  private async holding(seq: number, liveSeq: number): Promise<ArchiveFile> {
    const files = await listArchives(this.dir);
    const a = files.find((f) => f.first <= seq && seq <= f.last);
    if (a) return a;
    const upTo = Math.min(liveSeq, ...files.filter((f) => f.first > seq).map((f) => f.first - 1));
    throw new DriverError(
      'LN_ERR_LOG_CORRUPT',
      `event${upTo > seq ? `s ${seq} to ${upTo}` : ` ${seq}`} of the log ${upTo > seq ? 'were' : 'was'} archived and no file of ${join(this.dir, ARCHIVE_DIR)} holds ${upTo > seq ? 'them' : 'it'} ` +
        `(deleted or moved before ${upTo > seq ? 'they were' : 'it was'} published?): put the archive files back`,
    );
  }
}

function linkBreak(dir: string, why: string): DriverError {
  return new DriverError('LN_ERR_LOG_CORRUPT', `the archived events in ${join(dir, ARCHIVE_DIR)} and the event log do not link: ${why}; run 'ledgernet events verify --state-dir ${dir}'`);
}
