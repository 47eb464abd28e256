// Which hosts of the cluster have stopped sending heartbeats, judged on this host's own clock
// (the time since it last saw a host's record change in the KV bucket, never the writer's clock,
// so skew between hosts does not matter). A host judges only while it is itself in touch: its
// own heartbeats must come back through its watch, and have done so for a whole timeout. So a
// NATS outage, a stalled watch or this process being stopped (SIGSTOP, a VM pause) expires
// nobody: after it, every host gets a full timeout again. Pure: the caller passes the time in.
// Hosts may run with different --cluster-host-timeout: each record says how often its host
// writes it (`intervalMs`), and a host is expired only after max(this host's timeout, 3 × its
// interval). Judged by the local timeout alone, a host with 3 s expired one with the default
// 30 s (a beat every 5 s) again and again.

/** How often a host writes its record: a sixth of its timeout, between 100 ms and 5 s. */
export function heartbeatInterval(timeoutMs: number): number {
  return Math.min(5_000, Math.max(100, Math.floor(timeoutMs / 6)));
}

interface Tracked {
  /** When this host last saw the record change (or first saw a key of the host). */
  at: number;
  /** The record's revision as seen, null when the bucket holds no record (deleted or never written). */
  rev: number | null;
  /** How long this host waits for it: max(its own timeout, 3 × the interval its record gives). */
  limit: number;
}

/** A host whose timeout ran out: `rev` is the revision of its record as seen (null: none). */
export interface ExpiredHost {
  readonly host: string;
  readonly rev: number | null;
}

export class HostLiveness {
  private readonly hosts = new Map<string, Tracked>();
  private readonly self: string;
  private readonly timeoutMs: number;
  /** The longest gap between two of this host's own heartbeats seen back that still counts as in touch. */
  private readonly echoGapMs: number;
  private ownEchoAt = Number.NEGATIVE_INFINITY;
  private inTouchSince = Number.POSITIVE_INFINITY;

  constructor(o: { self: string; timeoutMs: number; intervalMs: number }) {
    this.self = o.self;
    this.timeoutMs = o.timeoutMs;
    this.echoGapMs = 3 * o.intervalMs;
  }

  /**
   * A host's record as the watch delivered it: put (its revision) or deleted (null). `intervalMs`:
   * how often that host writes it, as its record says (null: an older ledgernet's record, or
   * deleted: the last one known stays).
   */
  record(host: string, rev: number | null, now: number, intervalMs: number | null = null): void {
    if (host === this.self) {
      if (rev === null) return;
      if (now - this.ownEchoAt > this.echoGapMs) this.inTouchSince = now;
      this.ownEchoAt = now;
      return;
    }
    // Deleted: whoever expired it is removing its keys; any left after a timeout are removed again.
    const limit = intervalMs === null ? (this.hosts.get(host)?.limit ?? this.timeoutMs) : Math.max(this.timeoutMs, 3 * intervalMs);
    this.hosts.set(host, { at: now, rev, limit });
  }

  /** A member or endpoint key of `host` was put: a host with keys but no record is tracked too. */
  keys(host: string, now: number): void {
    if (host !== this.self && !this.hosts.has(host)) this.hosts.set(host, { at: now, rev: null, limit: this.timeoutMs });
  }

  /** The host's keys were removed (or it had none left): not tracked until something of it shows again. */
  forget(host: string, rev: number | null): void {
    if (this.hosts.get(host)?.rev === rev) this.hosts.delete(host);
  }

  /** The watch was restarted or this host lost touch: nobody is judged for a timeout from now. */
  lostTouch(): void {
    this.ownEchoAt = Number.NEGATIVE_INFINITY;
    this.inTouchSince = Number.POSITIVE_INFINITY;
  }

  /** True while this host's own heartbeats come back through its watch. */
  inTouch(now: number): boolean {
    return now - this.ownEchoAt <= this.echoGapMs;
  }

  /** How many other hosts wrote their record within their timeout, as this host saw it. */
  heard(now: number): number {
    let n = 0;
    for (const t of this.hosts.values()) if (t.rev !== null && now - t.at <= t.limit) n++;
    return n;
  }

  /** The hosts not heard of for longer than their timeout; none unless this host was in touch for its own timeout and all that time. */
  expired(now: number): ExpiredHost[] {
    if (!this.inTouch(now) || now - this.inTouchSince < this.timeoutMs) return [];
    const out: ExpiredHost[] = [];
    for (const [host, t] of this.hosts) {
      if (now - Math.max(t.at, this.inTouchSince) > t.limit) out.push({ host, rev: t.rev });
    }
    return out.sort((a, b) => (a.host < b.host ? -1 : 1));
  }
}
