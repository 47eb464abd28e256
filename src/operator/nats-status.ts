// The audit publisher's line in `ledgernet status`, from what the daemon says of its outbox.

/** What the daemon's status says of its NATS publisher (the outbox's stats). */
export interface AuditStatus {
  readonly backlog: number;
  readonly connected: boolean;
  /** publishing / refused (reachable, the stream does not take events) / unreachable / stopped / connecting. */
  readonly state?: string;
  readonly target: string;
  readonly lastError?: string | null;
  /** Set while publishing is stopped because the stream does not match the log. */
  readonly conflict?: { readonly reason: string; readonly message: string } | null;
  /** Events published without their data (over the stream's message limit) since the start, and the last one's id. */
  readonly elided?: number;
  readonly lastElided?: string | null;
}

/** Reached and publishing, reached but the stream refuses events (why), or not reached (why). */
function natsState(a: { connected: boolean; state?: string; lastError?: string | null }): string {
  const why = a.lastError ? ` (${a.lastError})` : '';
  if (a.state === 'refused') return `reachable, but the stream REFUSES events${why}`;
  if (a.connected) return 'connected, publishing';
  return a.state === 'connecting' ? 'connecting' : `NOT reachable${why}`;
}

/**
 * The audit publisher, for status: only a daemon that answered (`daemon`) can say whether it has
 * one (`audit`: null or absent when it is off); `notAnswering`: a daemon runs but did not answer.
 */
export function natsLine(audit: AuditStatus | null | undefined, daemon: boolean, notAnswering: boolean): string {
  if (!daemon) return notAnswering ? 'NATS publisher unknown (daemon not answering)' : 'NATS publisher not running (no daemon)';
  if (!audit) return 'NATS publisher off';
  if (audit.conflict) return `NATS ${audit.target} publishing STOPPED, backlog ${audit.backlog} event(s): ${audit.conflict.message}`;
  const elided = audit.elided ? `; ${audit.elided} event(s) published WITHOUT their data since the start (over the stream's message limit; the last ${audit.lastElided ?? '?'})` : '';
  return `NATS ${audit.target} ${natsState(audit)}, backlog ${audit.backlog} event(s)${elided}`;
}
