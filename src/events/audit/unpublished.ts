// The outbox's memory of events not yet published: the events after the cursor, in order, as
// long as they are known without a gap; past `max` events or after a gap, the log is read again.
import type { StoredEvent } from '../domain/types.ts';

export class UnpublishedTail {
  private events: StoredEvent[];
  /** False once an event was not kept (a gap or too many): `next` then reads the log. */
  private complete: boolean;
  private readonly max: number;

  constructor(max: number, initial: readonly StoredEvent[], cursor: number) {
    this.max = max;
    const rest = initial.filter((e) => e.seq > cursor);
    this.events = rest.slice(0, max);
    this.complete = rest.length <= max;
  }

  /** A new durable event: kept when it follows the last one kept (or the cursor) and there is room. */
  offer(ev: StoredEvent, cursor: number): void {
    if (this.complete && this.events.length < this.max && (this.events.at(-1)?.seq ?? cursor) === ev.seq - 1) {
      this.events.push(ev);
    } else {
      this.complete = false;
    }
  }

  /** What is kept may not follow the cursor any more (the cursor was reset). */
  invalidate(): void {
    this.complete = false;
  }

  /** What is kept follows on without a gap: found by its place, not searched for. */
  find(seq: number): StoredEvent | undefined {
    const ev = this.events[seq - (this.events[0]?.seq ?? 0)];
    return ev?.seq === seq ? ev : undefined;
  }

  /** Forgets the events the stream now holds. */
  publishedUpTo(cursor: number): void {
    this.events = this.events.filter((e) => e.seq > cursor);
  }

  /**
   * Up to `n` events after the cursor, in order: from memory, else from `read` (the log's events
   * after `cursor`, at least up to `head` or `max` of them; more are fine).
   */
  async next(n: number, cursor: number, head: number, read: (cursor: number, head: number) => Promise<readonly StoredEvent[]>): Promise<StoredEvent[]> {
    if (cursor >= head) return [];
    const skip = this.events.findIndex((e) => e.seq > cursor);
    this.events = skip < 0 ? [] : this.events.slice(skip);
    if (this.events[0]?.seq !== cursor + 1) {
      const all = await read(cursor, head);
      // The file may hold records written but not yet fsynced: publish only up to the durable
      // head (what the store has announced), or a power loss could leave the stream ahead of the log.
      const rest = all.filter((e) => e.seq > cursor && e.seq <= head);
      this.events = rest.slice(0, this.max);
      this.complete = rest.length <= this.max;
    }
    const out: StoredEvent[] = [];
    for (const ev of this.events) {
      if (out.length >= n || ev.seq !== cursor + 1 + out.length) break;
      out.push(ev);
    }
    return out;
  }
}
