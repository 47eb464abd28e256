// The outbox's reader of the log file: the events after the cursor, read in parts from where the
// last read stopped, so a long backlog is read (and its chain checked) once, not once per part.
import { liveStart, LOG_START, readLogPart, type ScanBase } from '../log/read.ts';
import type { StoredEvent } from '../domain/types.ts';

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
}
