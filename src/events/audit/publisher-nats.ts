// The JetStream adapter of EventPublisher. It never calls connect() itself: main.ts passes a
// function that does (the composition root owns connections and their secrets). Once a
// connection is up, the client reconnects on its own; a closed one is replaced on the next call.
import type { NatsConnection } from '@nats-io/transport-node';
import {
  JetStreamApiCodes,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstreamManager,
  type JetStreamManager,
} from '@nats-io/jetstream';
import { hostFilter, type LedgernetCloudEvent } from './cloudevents.ts';
import { AckInbox } from './jetstream-acks.ts';
import type { EventPublisher, PublishAck, StreamHead } from './publisher.ts';

type Retention = 'limits' | 'interest' | 'workqueue';

interface StreamSettings {
  /** Default `LEDGERNET`. */
  readonly name: string;
  readonly retention: Retention;
  /** 0 = keep forever. */
  readonly maxAgeMs: number;
  /** JetStream's msg-id duplicate window. */
  readonly duplicateWindowMs: number;
}

export interface NatsPublisherOptions {
  readonly connect: () => Promise<NatsConnection>;
  readonly stream: StreamSettings;
  /** Shown in logs; must not hold secrets. */
  readonly describe: string;
  /** How long to wait for each ack (default 5 s). */
  readonly ackTimeoutMs?: number;
}

const RETENTION = { limits: RetentionPolicy.Limits, interest: RetentionPolicy.Interest, workqueue: RetentionPolicy.Workqueue } as const;
const ms2ns = (ms: number) => ms * 1_000_000;

/** Creates the stream over `ledgernet.>` unless it exists; an existing stream is left as the operator set it. */
async function ensureStream(jsm: JetStreamManager, s: StreamSettings): Promise<void> {
  try {
    await jsm.streams.info(s.name);
    return;
  } catch (e) {
    if (!(e instanceof JetStreamApiError && e.code === JetStreamApiCodes.StreamNotFound)) throw e;
  }
  await jsm.streams.add({
    name: s.name,
    subjects: ['ledgernet.>'],
    retention: RETENTION[s.retention],
    storage: StorageType.File,
    max_age: ms2ns(s.maxAgeMs),
    duplicate_window: ms2ns(s.duplicateWindowMs),
  });
}

export class NatsPublisher implements EventPublisher {
  readonly describe: string;
  readonly stream: string;
  private nc: NatsConnection | null = null;
  private connecting: Promise<NatsConnection> | null = null;
  private acks: { nc: NatsConnection; inbox: AckInbox } | null = null;
  private closed = false;
  private readonly o: NatsPublisherOptions;

  constructor(o: NatsPublisherOptions) {
    this.o = o;
    this.describe = o.describe;
    this.stream = o.stream.name;
  }

  // Many publishes may be in flight: they share one connect.
  private connection(): Promise<NatsConnection> {
    if (this.nc && !this.nc.isClosed()) return Promise.resolve(this.nc);
    this.connecting ??= this.connectOnce().finally(() => (this.connecting = null));
    return this.connecting;
  }

  private async connectOnce(): Promise<NatsConnection> {
    const nc = await this.o.connect();
    // close() ran while we were connecting: do not leave a connection behind.
    if (this.closed) {
      await nc.close();
      throw new Error('the publisher is closed');
    }
    this.nc = nc;
    return nc;
  }

  async resume(host: string): Promise<StreamHead | null> {
    const nc = await this.connection();
    const jsm = await jetstreamManager(nc, { timeout: this.o.ackTimeoutMs ?? 5_000 });
    await ensureStream(jsm, this.o.stream);
    // The last message of any of this host's subjects (a wildcard last_by_subj).
    return this.headOf(jsm, { last_by_subj: hostFilter(host) });
  }

  async publish(subject: string, event: LedgernetCloudEvent): Promise<PublishAck> {
    const nc = await this.connection();
    if (this.acks?.nc !== nc) {
      this.acks?.inbox.close();
      this.acks = { nc, inbox: new AckInbox(nc) };
    }
    const ack = await this.acks.inbox.publish(subject, JSON.stringify(event), {
      msgId: event.id,
      stream: this.o.stream.name,
      timeoutMs: this.o.ackTimeoutMs ?? 5_000,
      contentType: 'application/cloudevents+json',
    });
    if (!ack.duplicate) return { streamSeq: ack.seq, held: null };
    // The stream already held a message with this id: say which, so the caller compares hashes.
    const jsm = await jetstreamManager(nc, { timeout: this.o.ackTimeoutMs ?? 5_000 });
    const held = await this.headOf(jsm, { seq: ack.seq });
    if (held) return { streamSeq: ack.seq, held };
    // Removed (purged) while its id is still in the duplicate window: this event is not stored,
    // and will be once the window has passed. A failure, so the outbox retries.
    throw new Error(`stream ${this.stream} still remembers msg id ${event.id} of a removed message (duplicate window); retrying until the window has passed`);
  }

  async heldAfter(host: string, streamSeq: number, max: number): Promise<StreamHead[]> {
    const jsm = await jetstreamManager(await this.connection(), { timeout: this.o.ackTimeoutMs ?? 5_000 });
    const out: StreamHead[] = [];
    let at = streamSeq;
    while (out.length < max) {
      const h = await this.headOf(jsm, { next_by_subj: hostFilter(host), seq: at + 1 });
      if (!h) break;
      out.push(h);
      at = h.streamSeq;
    }
    return out;
  }

  private async headOf(jsm: JetStreamManager, q: { last_by_subj: string } | { seq: number } | { next_by_subj: string; seq: number }): Promise<StreamHead | null> {
    // The server's msg get takes next_by_subj (nats-server 2.9+); the client's type does not list it.
    const m = await jsm.streams.getMessage(this.o.stream.name, q as Parameters<JetStreamManager['streams']['getMessage']>[1]);
    if (!m) return null;
    const ce = m.json<Partial<LedgernetCloudEvent>>();
    if (typeof ce.seq !== 'number' || typeof ce.hash !== 'string') {
      throw new Error(`the message on ${m.subject} (stream seq ${m.seq}) is not a ledgernet event`);
    }
    return { seq: ce.seq, hash: ce.hash, streamSeq: m.seq };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.acks?.inbox.close();
    this.acks = null;
    const nc = this.nc;
    this.nc = null;
    if (nc && !nc.isClosed()) await nc.close();
  }
}
