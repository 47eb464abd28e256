// The outbox's reader of the log file: the events after the cursor, read in parts from where the
// last read stopped, so a long backlog is read (and its chain checked) once, not once per part.
import { LOG_START, readLogPart, type ScanBase } from '../log/read.ts';
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
