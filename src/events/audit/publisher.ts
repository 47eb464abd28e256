// Where the outbox sends events: an interface with a JetStream adapter (publisher-nats.ts) and
// this in-memory fake for tests. The outbox owns order, retries and the cursor; a publisher
// only delivers one message and says what the far end already holds.
import { hostFilter, type LedgernetCloudEvent } from './cloudevents.ts';

/** The last event of one host that the far end holds. */
export interface StreamHead {
  readonly seq: number;
  readonly hash: string;
}

export interface EventPublisher {
  /**
   * Connects if needed, makes sure the stream exists, and returns this host's last event in it
   * (null when it holds none). Throws while the far end cannot be reached.
   */
  resume(host: string): Promise<StreamHead | null>;
  /**
   * Publishes one event on `subject`, msg id = `event.id`; resolves once the stream acknowledged
   * it: with null when it was stored, or with the message the stream already held under that msg
   * id (its duplicate window), whose hash the caller must compare.
   */
  publish(subject: string, event: LedgernetCloudEvent): Promise<StreamHead | null>;
  /** A short description for logs, without secrets. */
  readonly describe: string;
  /** The stream's name, for messages. */
  readonly stream: string;
  close(): Promise<void>;
}

export interface StoredMessage {
  readonly streamSeq: number;
  readonly subject: string;
  readonly msgId: string;
  readonly event: LedgernetCloudEvent;
}

/**
 * In-memory stand-in for JetStream. `down` makes every call throw; `loseNextAck` stores the next
 * message but throws as a lost ack would. Duplicate detection by msg id lasts `dedupWindow`
 * messages (0 = none), so tests can play "beyond the duplicate window".
 */
export class MemoryPublisher implements EventPublisher {
  readonly messages: StoredMessage[] = [];
  down = false;
  loseNextAck = false;
  dedupWindow: number;
  resumes = 0;
  readonly describe = 'memory';
  readonly stream = 'MEMORY';

  constructor(opts: { dedupWindow?: number } = {}) {
    this.dedupWindow = opts.dedupWindow ?? 0;
  }

  async resume(host: string): Promise<StreamHead | null> {
    this.check();
    this.resumes += 1;
    const prefix = hostFilter(host).slice(0, -1);
    const last = this.messages.filter((m) => m.subject.startsWith(prefix)).at(-1);
    return last ? { seq: last.event.seq, hash: last.event.hash } : null;
  }

  async publish(subject: string, event: LedgernetCloudEvent): Promise<StreamHead | null> {
    this.check();
    const recent = this.dedupWindow > 0 ? this.messages.slice(-this.dedupWindow) : [];
    const held = recent.find((m) => m.msgId === event.id);
    if (!held) this.messages.push({ streamSeq: this.messages.length + 1, subject, msgId: event.id, event });
    if (this.loseNextAck) {
      this.loseNextAck = false;
      throw new Error('timeout waiting for the ack (simulated)');
    }
    return held ? { seq: held.event.seq, hash: held.event.hash } : null;
  }

  async close(): Promise<void> {}

  private check(): void {
    if (this.down) throw new Error('connection refused (simulated)');
  }
}
