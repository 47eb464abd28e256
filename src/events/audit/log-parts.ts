// The outbox's reader of the log file: the events after the cursor, read in parts from where the
// last read stopped, so a long backlog is read (and its chain checked) once, not once per part.
import { join } from 'node:path';
import { DriverError } from '../../errors.ts';
import { ARCHIVE_DIR, listArchives } from '../log/archive.ts';
import { liveStart, LOG_START, readArchivePart, readLogPart, type ScanBase } from '../log/read.ts';
import { GENESIS_HASH, type StoredEvent } from '../domain/types.ts';

export class LogParts {
  private pos: ScanBase = LOG_START;
  private readonly dir: string;
  private readonly max: number;

  constructor(dir: string, max: number) {
    this.dir = dir;
    this.max = max;
  }

  /** Up to `max` events after `cursor`, none after `head` (records past it may not be durable yet). */
  async after(cursor: number, head: number): Promise<StoredEvent[]> {
    // Behind the cursor is fine (skipped); past it, start over.
    if (this.pos.seq > cursor) this.pos = LOG_START;
    // After an archive (archive.ts), events.log starts after its start record: read from there
    // (positions in the file before it are gone) when the cursor is past it, so the archives are
    // read only for events not yet published.
    const live = await liveStart(this.dir);
    if (live.seq <= cursor && this.pos.seq <= live.seq) this.pos = live;
    const out: StoredEvent[] = [];
    while (out.length < this.max && this.pos.seq < head) {
      const part = await readLogPart(this.dir, this.pos, Math.min(this.max, head - this.pos.seq));
      if (part.events.length === 0) break;
      this.pos = part.next;
      for (const ev of part.events) if (ev.seq > cursor) out.push(ev);
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
    if (seq > live.seq) {
      const part = await readLogPart(this.dir, live, seq - live.seq);
      return part.events.find((e) => e.seq === seq)?.hash;
    }
    const a = (await listArchives(this.dir)).find((f) => f.first <= seq && seq <= f.last);
    if (!a) {
      throw new DriverError(
        'LN_ERR_LOG_CORRUPT',
        `event ${seq} of the log was archived and no file of ${join(this.dir, ARCHIVE_DIR)} holds it (deleted or moved before it was published?): ` +
          `put the archive holding it back`,
      );
    }
    const part = await readArchivePart(this.dir, a, null, seq - a.first + 1);
    return part.events.find((e) => e.seq === seq)?.hash;
  }
}
