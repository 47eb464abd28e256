// Publishing to JetStream with many messages in flight on one connection: each message goes out
// with a reply subject of one inbox subscription, and JetStream's PubAck comes back there. The
// client's own `jetstream(nc).publish` is a request per message (a new inbox mux entry, error
// objects with stack traces, a JetStream client), which costs more than the message itself when
// a backlog is drained. Same headers, same meaning: msg id, expected stream.
import { createInbox, headers, type Msg, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { StreamRefused } from './publisher.ts';

export interface PubAck {
  readonly stream: string;
  readonly seq: number;
  readonly duplicate: boolean;
}

interface Waiter {
  readonly resolve: (a: PubAck) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class AckInbox {
  private readonly prefix = createInbox();
  private readonly sub: Subscription;
  private readonly waiting = new Map<string, Waiter>();
  private n = 0;
  private readonly nc: NatsConnection;

  constructor(nc: NatsConnection) {
    this.nc = nc;
    this.sub = nc.subscribe(`${this.prefix}.*`, { callback: (err, msg) => this.onAck(err, msg) });
    void nc.closed().then(() => this.failAll(new Error('the NATS connection closed before JetStream acknowledged')));
  }

  /** Publishes `data` on `subject` with msg id `msgId`; resolves with JetStream's ack. */
  publish(subject: string, data: string, o: { msgId: string; stream: string; timeoutMs: number; contentType: string }): Promise<PubAck> {
    const reply = `${this.prefix}.${++this.n}`;
    const h = headers();
    h.set('Content-Type', o.contentType);
    h.set('Nats-Msg-Id', o.msgId);
    h.set('Nats-Expected-Stream', o.stream);
    return new Promise<PubAck>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(reply);
        reject(new Error(`JetStream did not acknowledge ${o.msgId} within ${o.timeoutMs} ms`));
      }, o.timeoutMs);
      this.waiting.set(reply, { resolve, reject, timer });
      try {
        this.nc.publish(subject, data, { reply, headers: h });
      } catch (e) {
        clearTimeout(timer);
        this.waiting.delete(reply);
        reject(e as Error);
      }
    });
  }

  private onAck(err: Error | null, msg: Msg): void {
    const w = this.waiting.get(msg.subject);
    if (!w) return;
    this.waiting.delete(msg.subject);
    clearTimeout(w.timer);
    if (err) return w.reject(err);
    // A status message instead of a PubAck: no stream listens on the subject (503).
    if (msg.headers?.hasError) {
      const why = msg.headers.code === 503 ? 'no stream takes its subject (no responders)' : `${msg.headers.code} ${msg.headers.description}`;
      return w.reject(new StreamRefused(`JetStream did not take the message: ${why}`));
    }
    try {
      const a = msg.json<Partial<PubAck> & { error?: { code?: number; err_code?: number; description?: string } }>();
      if (a.error) return w.reject(new StreamRefused(`JetStream refused the message: ${a.error.description ?? 'error'} (${a.error.err_code ?? a.error.code})`));
      if (typeof a.seq !== 'number') return w.reject(new Error('JetStream answered without a sequence number'));
      w.resolve({ stream: a.stream ?? '', seq: a.seq, duplicate: a.duplicate === true });
    } catch (e) {
      w.reject(e as Error);
    }
  }

  private failAll(e: Error): void {
    for (const w of this.waiting.values()) {
      clearTimeout(w.timer);
      w.reject(e);
    }
    this.waiting.clear();
  }

  close(): void {
    this.sub.unsubscribe();
    this.failAll(new Error('the publisher is closed'));
  }
}
