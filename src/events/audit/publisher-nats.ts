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
  type StreamInfo,
} from '@nats-io/jetstream';
import { hostFilter, legacyHostFilter, sourceFor, subjectFor, type LedgernetCloudEvent } from './cloudevents.ts';
import { AckInbox } from './jetstream-acks.ts';
import { StreamRefused, type EventPublisher, type PublishAck, type ResumePoint, type StreamHead } from './publisher.ts';
import { subjectsOverlap } from './subjects.ts';

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

type MsgQuery = { last_by_subj: string } | { seq: number } | { next_by_subj: string; seq: number };

const RETENTION = { limits: RetentionPolicy.Limits, interest: RetentionPolicy.Interest, workqueue: RetentionPolicy.Workqueue } as const;
const ms2ns = (ms: number) => ms * 1_000_000;

const SUBJECTS = 'ledgernet.>';
/** JetStream's error code for a new stream whose subjects another stream takes already. */
const SUBJECT_OVERLAP = 10065;

/**
 * Creates the stream over `ledgernet.>` unless it exists; an existing stream is left as the
 * operator set it, but it must take `host`'s subjects (else it is someone else's stream).
 */
async function ensureStream(jsm: JetStreamManager, s: StreamSettings, host: string): Promise<StreamInfo> {
  let info: StreamInfo | null = null;
  try {
    info = await jsm.streams.info(s.name);
  } catch (e) {
    if (!(e instanceof JetStreamApiError && e.code === JetStreamApiCodes.StreamNotFound)) throw e;
  }
  if (!info) {
    try {
      info = await jsm.streams.add({
        name: s.name,
        subjects: [SUBJECTS],
        retention: RETENTION[s.retention],
        storage: StorageType.File,
        max_age: ms2ns(s.maxAgeMs),
        duplicate_window: ms2ns(s.duplicateWindowMs),
      });
    } catch (e) {
      if (e instanceof JetStreamApiError && e.code === SUBJECT_OVERLAP) throw new StreamRefused(await overlapMessage(jsm, s.name));
      throw e;
    }
  }
  const subjects = info.config.subjects ?? [];
  const sample = subjectFor(host, 'network.created');
  if (!subjects.some((x) => subjectsOverlap(x, sample))) {
    throw new StreamRefused(
      `stream ${s.name} exists but is not ledgernet's: its subjects (${subjects.join(', ') || 'none'}) do not take ${hostFilter(host)}; ` +
        `give ledgernet a stream of its own (--nats-stream NAME, LEDGERNET_NATS_STREAM) or add ${SUBJECTS} to the subjects of ${s.name}`,
    );
  }
  return info;
}

/** Says which streams take subjects of `ledgernet.>` already, and what to do. */
async function overlapMessage(jsm: JetStreamManager, name: string): Promise<string> {
  const others: string[] = [];
  for await (const si of jsm.streams.list()) {
    const hit = (si.config.subjects ?? []).filter((x) => subjectsOverlap(x, SUBJECTS));
    if (hit.length > 0) others.push(`${si.config.name} (subjects ${hit.join(', ')})`);
  }
  const who = others.length > 0 ? others.join(', ') : 'another stream';
  return (
    `cannot create stream ${name} over ${SUBJECTS}: subjects overlap with an existing stream: ${who}; ` +
    `remove ${SUBJECTS} from that stream's subjects, or, if it is meant for ledgernet, name it with --nats-stream (LEDGERNET_NATS_STREAM)`
  );
}

/** The stream as the outbox needs to know it; `maxPayload`: the server's max_payload (NATS's default: 1 MiB). */
function identity(info: StreamInfo, maxPayload = 1024 * 1024): ResumePoint['stream'] {
  const c = info.config;
  const keepsAll = c.retention === RetentionPolicy.Limits && !c.max_age && !(c.max_msgs > 0) && !(c.max_bytes > 0) && !(c.max_msgs_per_subject > 0);
  const maxMessageBytes = c.max_msg_size > 0 ? Math.min(c.max_msg_size, maxPayload) : maxPayload;
  return { created: info.created, lastSeq: info.state.last_seq, keepsAll, duplicateWindowMs: (c.duplicate_window ?? 0) / 1_000_000, maxMessageBytes };
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

  async resume(host: string): Promise<ResumePoint> {
    const nc = await this.connection();
    const jsm = await jetstreamManager(nc, { timeout: this.o.ackTimeoutMs ?? 5_000 });
    const info = await ensureStream(jsm, this.o.stream, host);
    // The last message of any of this host's subjects (a wildcard last_by_subj).
    const head = await this.headOf(jsm, { last_by_subj: hostFilter(host) });
    // None: an older ledgernet may have published this host's events under another token (web.1
    // as web_1, before the escape); publishing goes on after them, not again from the first.
    const legacy = head ? null : legacyHostFilter(host);
    const old = legacy === null ? null : await this.lastOfHost(jsm, legacy, host);
    const stream = identity(info, nc.info?.max_payload);
    return old && legacy !== null ? { head: old, stream, legacy } : { head, stream };
  }

  /**
   * `host`'s last event under `filter`, a filter other hosts' events may be under too (an older
   * ledgernet's: web.1 and web_1 were both web_1): the filter's last message when it is this
   * host's, else found by reading the filter's messages from the stream's start (at an upgrade,
   * until this host has an event under its own subjects, and only when two names clash).
   */
  private async lastOfHost(jsm: JetStreamManager, filter: string, host: string): Promise<StreamHead | null> {
    const source = sourceFor(host);
    const last = await this.messageOf(jsm, { last_by_subj: filter });
    if (!last || last.source === source) return last?.head ?? null;
    let found: StreamHead | null = null;
    for (let at = 0; ; ) {
      const m = await this.messageOf(jsm, { next_by_subj: filter, seq: at + 1 });
      if (!m || m.head.streamSeq >= last.head.streamSeq) return found;
      if (m.source === source) found = m.head;
      at = m.head.streamSeq;
    }
  }

  async identity(): Promise<ResumePoint['stream'] | null> {
    const nc = await this.connection();
    const jsm = await jetstreamManager(nc, { timeout: this.o.ackTimeoutMs ?? 5_000 });
    try {
      return identity(await jsm.streams.info(this.o.stream.name), nc.info?.max_payload);
    } catch (e) {
      if (e instanceof JetStreamApiError && e.code === JetStreamApiCodes.StreamNotFound) return null;
      throw e;
    }
  }

  async remove(streamSeq: number): Promise<void> {
    const jsm = await jetstreamManager(await this.connection(), { timeout: this.o.ackTimeoutMs ?? 5_000 });
    await jsm.streams.deleteMessage(this.o.stream.name, streamSeq, false);
  }

  async publish(subject: string, event: LedgernetCloudEvent, body = JSON.stringify(event)): Promise<PublishAck> {
    const nc = await this.connection();
    if (this.acks?.nc !== nc) {
      this.acks?.inbox.close();
      this.acks = { nc, inbox: new AckInbox(nc) };
    }
    const ack = await this.acks.inbox.publish(subject, body, {
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

  private async headOf(jsm: JetStreamManager, q: MsgQuery): Promise<StreamHead | null> {
    return (await this.messageOf(jsm, q))?.head ?? null;
  }

  /** The event a msg get finds, and its source (whose it is). */
  private async messageOf(jsm: JetStreamManager, q: MsgQuery): Promise<{ head: StreamHead; source: unknown } | null> {
    // The server's msg get takes next_by_subj (nats-server 2.9+); the client's type does not list it.
    const m = await jsm.streams.getMessage(this.o.stream.name, q as Parameters<JetStreamManager['streams']['getMessage']>[1]);
    if (!m) return null;
    const ce = m.json<Partial<LedgernetCloudEvent>>();
    if (typeof ce.seq !== 'number' || typeof ce.hash !== 'string') {
      throw new Error(`the message on ${m.subject} (stream seq ${m.seq}) is not a ledgernet event`);
    }
    return { head: { seq: ce.seq, hash: ce.hash, streamSeq: m.seq }, source: ce.source };
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
