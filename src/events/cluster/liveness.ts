// Which hosts of the cluster have stopped sending heartbeats, judged on this host's own clock
// (the time since it last saw a host's record change in the KV bucket, never the writer's clock,
// so skew between hosts does not matter). A host judges only while it is itself in touch: its
// own heartbeats must come back through its watch, and have done so for a whole timeout. So a
// NATS outage, a stalled watch or this process being stopped (SIGSTOP, a VM pause) expires
// nobody: after it, every host gets a full timeout again. Pure: the caller passes the time in.

interface Tracked {
  /** When this host last saw the record change (or first saw a key of the host). */
  at: number;
  /** The record's revision as seen, null when the bucket holds no record (deleted or never written). */
  rev: number | null;
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

  /** A host's record as the watch delivered it: put (its revision) or deleted (null). */
  record(host: string, rev: number | null, now: number): void {
    if (host === this.self) {
      if (rev === null) return;
      if (now - this.ownEchoAt > this.echoGapMs) this.inTouchSince = now;
      this.ownEchoAt = now;
      return;
    }
    // Deleted: whoever expired it is removing its keys; any left after a timeout are removed again.
    this.hosts.set(host, { at: now, rev });
  }

  /** A member or endpoint key of `host` was put: a host with keys but no record is tracked too. */
  keys(host: string, now: number): void {
    if (host !== this.self && !this.hosts.has(host)) this.hosts.set(host, { at: now, rev: null });
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

  /** How many other hosts wrote their record within the timeout, as this host saw it. */
  heard(now: number): number {
    let n = 0;
    for (const t of this.hosts.values()) if (t.rev !== null && now - t.at <= this.timeoutMs) n++;
    return n;
  }

  /** The hosts not heard of for longer than the timeout; none unless this host was in touch all that time. */
  expired(now: number): ExpiredHost[] {
    if (!this.inTouch(now) || now - this.inTouchSince < this.timeoutMs) return [];
    const out: ExpiredHost[] = [];
    for (const [host, t] of this.hosts) {
      if (now - Math.max(t.at, this.inTouchSince) > this.timeoutMs) out.push({ host, rev: t.rev });
    }
    return out.sort((a, b) => (a.host < b.host ? -1 : 1));
  }
}
