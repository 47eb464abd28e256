import { decide } from './decide.ts';
import type { Command } from './commands.ts';
import { evolve } from './evolve.ts';
import type { EventLog } from './log.ts';
import type { State, StoredEvent } from './types.ts';

export type EventListener = (events: readonly StoredEvent[], state: State) => void;

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

  constructor(log: EventLog, initial: State) {
    this.log = log;
    this.head = initial;
    this.durableState = initial;
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

  /** decide → append → fold. Resolves with the stored events once they are durable. */
  async execute(cmd: Command): Promise<StoredEvent[]> {
    const events = decide(cmd, this.head);
    if (events.length === 0) {
      await this.waitDurable(this.head.seq);
      return [];
    }
    const { stored, durable } = this.log.append(events);
    const after = stored.reduce(evolve, this.head);
    this.head = after;
    await durable;
    if (after.seq > this.durableState.seq) this.durableState = after;
    for (const l of this.listeners) l(stored, this.durableState);
    return stored;
  }

  // A repeated call must not answer before the events it repeats are durable.
  private async waitDurable(seq: number): Promise<void> {
    while (this.durableState.seq < seq) await new Promise((r) => setTimeout(r, 1));
  }

  async close(): Promise<void> {
    await this.log.close();
  }
}
