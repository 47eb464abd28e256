// What the outbox (outbox.ts) is given and what it reports.
import type { EventPublisher } from './publisher.ts';
import type { OutboxConflict } from './stream-check.ts';
import type { StoredEvent } from '../domain/types.ts';

export interface OutboxLog {
  error(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface OutboxOptions {
  readonly publisher: EventPublisher;
  readonly host: string;
  readonly stateDir: string;
  readonly log: OutboxLog;
  /** The events read at start (after the snapshot, if one was used). */
  readonly initial: readonly StoredEvent[];
  /** Seq of the last durable event at start (default: the last of `initial`). */
  readonly headSeq?: number;
  /** Hash of that event (the state's `hash`), so a start needs not read the log to check a cursor there. */
  readonly headHash?: string;
  /** Reads the log again when the in-memory tail lacks the next event (default: the log file, in parts). */
  readonly readAll?: () => Promise<readonly StoredEvent[]>;
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
  /** How often a log line says how far behind the stream is while NATS is away (default 10 s). */
  readonly reportEveryMs?: number;
  /** Unpublished events kept in memory; past this the log is re-read (default 10,000). */
  readonly maxTail?: number;
  /** While stopped by a conflict, how often the stream is looked at again (default 30 s). */
  readonly recheckMs?: number;
}

export interface OutboxStats {
  readonly target: string;
  /** Seq of the last event the stream acknowledged. */
  readonly cursor: number;
  /** Seq of the last durable event in the log. */
  readonly head: number;
  /** Events in the log that the stream does not hold yet. */
  readonly backlog: number;
  readonly connected: boolean;
  /**
   * publishing: the stream takes events; refused: NATS is reached but the stream does not take
   * them (full, no stream on the subjects, not ledgernet's: lastError says why); unreachable: NATS
   * is not reached; stopped: see conflict; connecting: before the first answer.
   */
  readonly state: 'publishing' | 'refused' | 'unreachable' | 'stopped' | 'connecting';
  /** Publishes the stream refused since the start. */
  readonly refusals: number;
  /** Events published without their data since the start (their message would not fit the stream's limit), and the id of the last. */
  readonly elided: number;
  readonly lastElided: string | null;
  readonly lastError: string | null;
  /** Set while publishing is stopped because the stream does not match the log. */
  readonly conflict: OutboxConflict | null;
}
