// Where the outbox sends events: an interface with a JetStream adapter (publisher-nats.ts) and
// this in-memory fake for tests. The outbox owns order, retries and the cursor; a publisher
// only delivers one message and says what the far end already holds.
import { hostFilter, legacyHostFilter, sourceFor, type LedgernetCloudEvent } from './cloudevents.ts';

/** An event of one host that the far end holds. */
export interface StreamHead {
  readonly seq: number;
  readonly hash: string;
  /** Its position in the stream (shared by all hosts). */
  readonly streamSeq: number;
}

/** Which stream the far end holds now: a change of `created`, or a `lastSeq` behind one seen, means it was deleted and made again. */
interface StreamIdentity {
  /** When the stream was made (JetStream's `created`). */
  readonly created: string;
  /** The stream's last position (all hosts). */
  readonly lastSeq: number;
  /** Nothing but an operator removes messages: limits retention, no max age, no message or byte limits. */
  readonly keepsAll: boolean;
  /** JetStream's msg-id duplicate window: a removed message's id is taken as a duplicate that long. */
  readonly duplicateWindowMs: number;
  /** The largest message it takes, headers included (the server's max_payload, the stream's max_msg_size). */
  readonly maxMessageBytes: number;
}

/** Where publishing resumes: this host's last event in the stream (null when none), and the stream. */
export interface ResumePoint {
  readonly head: StreamHead | null;
  readonly stream: StreamIdentity;
  /**
   * Set when the stream holds nothing under this host's subjects and `head` is its last event
   * under those an older ledgernet published it on (legacyHostFilter): that filter.
   */
  readonly legacy?: string;
}

/**
 * The far end is reachable but does not take events: the stream is full (discard new), no stream
 * listens on the subject, or the stream is not one ledgernet can use. `why` says which, for status.
 */
export class StreamRefused extends Error {
  override readonly name = 'StreamRefused';
}

/** The far end's answer to one publish. */
export interface PublishAck {
  /** Where the stream holds the message now (or held it already). */
  readonly streamSeq: number;
  /** Null when it was stored now; else the message already held under that msg id, whose hash the caller compares. */
  readonly held: StreamHead | null;
}

export interface EventPublisher {
  /**
   * Connects if needed, makes sure the stream exists, and returns this host's last event in it
   * (null when it holds none) and which stream it is. Throws while the far end cannot be reached.
   */
  resume(host: string): Promise<ResumePoint>;
  /**
   * Publishes one event on `subject`, msg id = `event.id`, as `body` (default: `event` as JSON);
   * resolves once the stream acknowledged it (see PublishAck). Calls made one after another
   * reach the stream in that order, so a caller may have many in flight.
   */
  publish(subject: string, event: LedgernetCloudEvent, body?: string): Promise<PublishAck>;
  /**
   * Up to `max` events of `host` that the stream holds after stream position `streamSeq`, in
   * stream order (to see which of a window of publishes were stored when some acks were lost).
   */
  heldAfter(host: string, streamSeq: number, max: number): Promise<StreamHead[]>;
  /** Removes the message at `streamSeq` (one this host stored in a stream made again under it, out of order). */
  remove(streamSeq: number): Promise<void>;
  /** Which stream the far end holds now (null: none by that name), without making one. */
  identity(): Promise<StreamIdentity | null>;
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
 * message but throws as a lost ack would; `lose` does that (`ack`) or drops the message too
 * (`message`, as a reconnect can) for the msg ids it names, once each. Duplicate detection by msg id lasts `dedupWindow`
 * messages (0 = none), so tests can play "beyond the duplicate window". `recreate()` plays a
 * stream deleted and made again; `refuse` makes every publish refused (a full stream).
 */
const headOf = (m: StoredMessage): StreamHead => ({ seq: m.event.seq, hash: m.event.hash, streamSeq: m.streamSeq });

export class MemoryPublisher implements EventPublisher {
  readonly messages: StoredMessage[] = [];
  down = false;
  loseNextAck = false;
  readonly lose = new Map<string, 'ack' | 'message'>();
  dedupWindow: number;
  resumes = 0;
  /** Set: every publish is refused with this reason (reachable, but the stream takes nothing). */
  refuse: string | null = null;
  /** The largest message taken (a larger one is refused, as NATS refuses one over max_payload). */
  maxMessageBytes = Number.MAX_SAFE_INTEGER;
  private created = new Date(0).toISOString();
  private lastSeq = 0;
  readonly describe = 'memory';
  readonly stream = 'MEMORY';

  constructor(opts: { dedupWindow?: number } = {}) {
    this.dedupWindow = opts.dedupWindow ?? 0;
  }

  async identity(): Promise<StreamIdentity> {
    this.check();
    return { created: this.created, lastSeq: this.lastSeq, keepsAll: true, duplicateWindowMs: 0, maxMessageBytes: this.maxMessageBytes };
  }

  async resume(host: string): Promise<ResumePoint> {
    this.check();
    this.resumes += 1;
    const stream = await this.identity();
    const prefix = hostFilter(host).slice(0, -1);
    const last = this.messages.filter((m) => m.subject.startsWith(prefix)).at(-1);
    if (last) return { head: headOf(last), stream };
    // As NatsPublisher: this host's last event under an older ledgernet's subjects.
    const legacy = legacyHostFilter(host);
    const old = legacy === null ? undefined : this.messages.filter((m) => m.subject.startsWith(legacy.slice(0, -1)) && m.event.source === sourceFor(host)).at(-1);
    return old && legacy !== null ? { head: headOf(old), stream, legacy } : { head: null, stream };
  }

  /** The stream deleted and made again: empty, new sequence numbers, another created time. */
  recreate(): void {
    this.messages.length = 0;
    this.lastSeq = 0;
    this.created = new Date(Date.parse(this.created) + 1000).toISOString();
  }

  async publish(subject: string, event: LedgernetCloudEvent, body = JSON.stringify(event)): Promise<PublishAck> {
    this.check();
    if (Buffer.byteLength(body) > this.maxMessageBytes) throw new Error(`message of ${Buffer.byteLength(body)} bytes over the limit of ${this.maxMessageBytes} (simulated MAX_PAYLOAD_EXCEEDED)`);
    const recent = this.dedupWindow > 0 ? this.messages.slice(-this.dedupWindow) : [];
    const held = recent.find((m) => m.msgId === event.id);
    const lost = this.lose.get(event.id);
    this.lose.delete(event.id);
    if (this.refuse !== null) throw new StreamRefused(this.refuse);
    if (!held && lost !== 'message') this.messages.push({ streamSeq: ++this.lastSeq, subject, msgId: event.id, event });
    if (this.loseNextAck || lost) {
      this.loseNextAck = false;
      throw new Error('timeout waiting for the ack (simulated)');
    }
    return held ? { streamSeq: held.streamSeq, held: headOf(held) } : { streamSeq: this.lastSeq, held: null };
  }

  async heldAfter(host: string, streamSeq: number, max: number): Promise<StreamHead[]> {
    this.check();
    const prefix = hostFilter(host).slice(0, -1);
    return this.messages.filter((m) => m.streamSeq > streamSeq && m.subject.startsWith(prefix)).slice(0, max).map(headOf);
  }

  async remove(streamSeq: number): Promise<void> {
    this.check();
    const i = this.messages.findIndex((m) => m.streamSeq === streamSeq);
    if (i >= 0) this.messages.splice(i, 1);
  }

  async close(): Promise<void> {}

  private check(): void {
    if (this.down) throw new Error('connection refused (simulated)');
  }
}
