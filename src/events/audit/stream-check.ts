// Whether the stream's last event of this host is the log's: the check the outbox makes after
// every failure before it publishes again, and after a publish that met an event already held.
import type { StreamHead } from './publisher.ts';

/** Why publishing stopped: the stream holds another event at a seq (`stream_conflict`), or more than the log (`stream_ahead`). */
export interface OutboxConflict {
  readonly reason: 'stream_conflict' | 'stream_ahead';
  readonly message: string;
}

export interface StreamCheck {
  readonly stream: string;
  readonly host: string;
  /** Seq of the last durable event in the log. */
  readonly head: number;
  /** The log's hash of the event at a seq (undefined past the head or when it is not there). */
  readonly logHashAt: (seq: number) => string | undefined | Promise<string | undefined>;
}

/** Null when the stream's event at `theirs.seq` is the log's; else why not. */
export async function compareStreamHead(theirs: StreamHead, c: StreamCheck): Promise<OutboxConflict | null> {
  const { host, stream } = c;
  const why = `the state dir was reset or another host publishes as ${host}; publishing stopped`;
  if (theirs.seq > c.head) {
    return {
      reason: 'stream_ahead',
      message: `stream ${stream} holds ${host}:${theirs.seq} (hash ${brief(theirs.hash)}) but the log ends at ${host}:${c.head}: ${why}`,
    };
  }
  const ours = await c.logHashAt(theirs.seq);
  if (ours === theirs.hash) return null;
  return {
    reason: 'stream_conflict',
    message: `stream ${stream} holds a different event ${host}:${theirs.seq} (hash ${brief(theirs.hash)}) than the log (hash ${brief(ours ?? 'none')}): ${why}`,
  };
}

const brief = (hash: string) => (hash.length > 16 ? `${hash.slice(0, 16)}…` : hash);
