// `ledgernet events --network N --container C --address IP`: which events concern what the operator
// asks about ("which container had 10.231.0.7 at 03:12, and who changed it?"). Each filter given
// must hold (they combine). Endpoints are matched by what the log says of them anywhere, so every
// line of an endpoint's life shows, the ones before its container was named included. Pure.
import { DriverError } from '../../errors.ts';
import { canonicalIp } from './cidr.ts';
import { namesFrom } from './names.ts';
import type { StoredEvent } from './types.ts';

export interface EventQuery {
  /** A network id, a 12+ hex prefix of one, or a name Docker gave it. */
  readonly network?: string;
  /** A container id, a 12+ hex prefix of one, or a name Docker gave it. */
  readonly container?: string;
  /** An IPv4 or IPv6 address (any form; a `/len` is ignored). */
  readonly address?: string;
}

/** What the log says of each endpoint (local or a cluster peer's): the containers named for it, with their names, and its addresses. */
export class EndpointFacts {
  private readonly containers = new Map<string, Map<string, Set<string>>>();
  private readonly addresses = new Map<string, Set<string>>();

  /** Adds what `events` say (call it with every event before filtering, and with new ones as they come). */
  add(events: Iterable<StoredEvent>): this {
    for (const e of events) {
      const d = e.data as { endpointId?: unknown; address?: unknown; addressV6?: unknown; containerId?: unknown; name?: unknown };
      if (typeof d.endpointId !== 'string') continue;
      if (e.type === 'endpoint.named' && typeof d.containerId === 'string' && typeof d.name === 'string') this.named(d.endpointId, d.containerId, d.name);
      if (e.type === 'endpoint.created' || e.type === 'endpoint.addressed' || e.type === 'peer.endpoint.added') this.addressed(d.endpointId, [d.address, d.addressV6]);
    }
    return this;
  }

  /** Endpoint `id` was named for container `containerId`, called `name`. */
  named(id: string, containerId: string, name: string): void {
    const of = this.containers.get(id) ?? new Map<string, Set<string>>();
    of.set(containerId, (of.get(containerId) ?? new Set()).add(name));
    this.containers.set(id, of);
  }

  /** Endpoint `id` had these addresses (any form; a `/len` is ignored; what is not an address is skipped). */
  addressed(id: string, addresses: readonly unknown[]): void {
    for (const a of addresses) {
      const ip = typeof a === 'string' ? canonicalIp(a.split('/')[0] ?? '') : null;
      if (ip !== null) this.addresses.set(id, (this.addresses.get(id) ?? new Set()).add(ip));
    }
  }

  /** Was endpoint `id` named for container `c` (an id, a 12+ hex prefix, or a name)? */
  heldBy(id: string, c: string, prefix: string | null): boolean {
    for (const [containerId, names] of this.containers.get(id) ?? []) {
      if ((prefix !== null && containerId.startsWith(prefix)) || names.has(c)) return true;
    }
    return false;
  }

  /** Did endpoint `id` have address `ip` (canonical)? */
  had(id: string, ip: string): boolean {
    return this.addresses.get(id)?.has(ip) === true;
  }
}

/** `s` when it is a 12 to 64 hex id or id prefix, else null (a name). */
export const hexPrefix = (s: string): string | null => (/^[0-9a-f]{12,64}$/.test(s) ? s : null);

/**
 * The test each event must pass for `q`, given the network names and endpoint facts recorded so
 * far; throws naming a value that cannot match anything (empty, or not an address).
 */
export function eventFilter(q: EventQuery): (e: StoredEvent, names: ReadonlyMap<string, string>, facts: EndpointFacts) => boolean {
  if (q.network === '') throw new DriverError('LN_ERR_BAD_REQUEST', '--network needs a network id, a 12+ hex prefix or a name');
  if (q.container === '') throw new DriverError('LN_ERR_BAD_REQUEST', '--container needs a container id, a 12+ hex prefix or a name');
  const ip = q.address === undefined ? null : canonicalIp(q.address.split('/')[0] ?? '');
  if (q.address !== undefined && ip === null) throw new DriverError('LN_ERR_BAD_REQUEST', `--address ${JSON.stringify(q.address)} is not an IPv4 or IPv6 address`);
  const tests: ((e: StoredEvent, names: ReadonlyMap<string, string>, facts: EndpointFacts) => boolean)[] = [];
  const { network, container } = q;
  if (network !== undefined) {
    const prefix = hexPrefix(network);
    tests.push((e, names) => {
      const id = (e.data as { networkId?: unknown }).networkId;
      return typeof id === 'string' && ((prefix !== null && id.startsWith(prefix)) || names.get(id) === network);
    });
  }
  if (container !== undefined) {
    const prefix = hexPrefix(container);
    tests.push((e, _names, facts) => {
      const id = (e.data as { endpointId?: unknown }).endpointId;
      return typeof id === 'string' && facts.heldBy(id, container, prefix);
    });
  }
  if (ip !== null) {
    tests.push((e, _names, facts) => {
      const d = e.data as { endpointId?: unknown; address?: unknown };
      if (typeof d.endpointId === 'string' && facts.had(d.endpointId, ip)) return true;
      // IPAM's own events of the address (no endpoint).
      return (e.type === 'address.requested' || e.type === 'address.released') && typeof d.address === 'string' && canonicalIp(d.address.split('/')[0] ?? '') === ip;
    });
  }
  return (e, names, facts) => tests.every((t) => t(e, names, facts));
}

/** How long, by the events' own time, `--follow` keeps a line that did not match in case a later one (its endpoint's naming, its network's name) makes it match: the naming follows a Join within seconds. */
export const FOLLOW_HOLD_MS = 60_000;
/** At most this many lines are kept (the oldest go first). */
export const FOLLOW_HOLD_MAX = 10_000;

type Filter = ReturnType<typeof eventFilter>;

/** Is a line recent enough to keep, by the events' time, when the newest read is `newest` (NaN: every line is)? */
const recentBy = (newest: number) => (e: StoredEvent) => !Number.isFinite(newest) || !(Date.parse(e.at) < newest - FOLLOW_HOLD_MS);

/**
 * `--follow` with filters: the lines that concern the query as they come, and the earlier lines
 * a new event makes concern it (an endpoint's created and joined lines once its container is
 * named; a network's lines once it has the name asked for), shown then, before the new ones.
 * Lines of endpoints or networks that do not match yet are kept for FOLLOW_HOLD_MS by their own
 * time (at most FOLLOW_HOLD_MAX); nothing is shown twice. `T` is what the caller prints (the
 * event, or its message as the stream gave it). Pure.
 */
export class FollowFilter<T> {
  /** Lines that did not match, by endpoint id (a network's own lines: by network id), each with its place in the reading. */
  private readonly held = new Map<string, { readonly e: StoredEvent; readonly item: T; readonly n: number }[]>();
  private count = 0;
  private read = 0;
  private sweptAt = -Infinity;
  private readonly about: Filter;
  readonly names: Map<string, string>;
  readonly facts: EndpointFacts;
  constructor(about: Filter, names: Map<string, string>, facts: EndpointFacts) {
    this.about = about;
    this.names = names;
    this.facts = facts;
  }

  /** Takes the next events (in seq order) and returns what to show now, in the order they were read. */
  take(batch: readonly { readonly e: StoredEvent; readonly item: T }[]): T[] {
    const events = batch.map((b) => b.e);
    namesFrom(events, this.names);
    this.facts.add(events);
    const newest = Date.parse(events.at(-1)?.at ?? '');
    const recent = recentBy(newest);
    // Expired lines go in a sweep at most every tenth of the hold (by the events' time), or when too many are kept.
    if (this.count > FOLLOW_HOLD_MAX || (Number.isFinite(newest) && newest - this.sweptAt > FOLLOW_HOLD_MS / 10)) this.sweep(recent, newest);
    const now: { readonly item: T; readonly n: number }[] = [];
    // Only what tells something of an endpoint (or names a network) looks at the kept lines again, and only at its own.
    for (const e of events) {
      if (!TELLING.has(e.type)) continue;
      const id = (e.data as { endpointId?: unknown }).endpointId;
      for (const key of e.type === 'network.named' ? [...this.held.keys()] : typeof id === 'string' ? [id] : []) {
        const kept = this.held.get(key);
        if (!kept) continue;
        // A line older than the hold is dropped here too (the sweep comes only now and then).
        const still = kept.filter((h) => recent(h.e) && !(this.about(h.e, this.names, this.facts) && now.push(h)));
        this.count -= kept.length - still.length;
        if (still.length > 0) this.held.set(key, still);
        else this.held.delete(key);
      }
    }
    now.sort((a, b) => a.n - b.n);
    return [...now.map((h) => h.item), ...this.place(batch, recent)];
  }

  /**
   * The first reading, read in parts with `names` and `facts` already holding what all of it
   * says (not added again: a later rename must still label the earlier lines): what take would
   * show of this part with the whole reading as one batch, keeping what it would keep; `newest`
   * is the time of the reading's last event. Then take with what comes after it.
   */
  first(part: readonly { readonly e: StoredEvent; readonly item: T }[], newest: number): T[] {
    // take's first sweep, of nothing: from then on, sweeps go by the reading's newest time.
    if (Number.isFinite(newest)) this.sweptAt = newest;
    const recent = recentBy(newest);
    const shown = this.place(part, recent);
    // Not all of a long reading's last minute held until the first take sweeps it (as one take
    // of the whole would): no more than FOLLOW_HOLD_MAX after each part.
    if (this.count > FOLLOW_HOLD_MAX) this.sweep(recent, newest);
    return shown;
  }

  /** How many lines are kept for a later line to select. */
  get holding(): number {
    return this.count;
  }

  /** Each of `batch` that concerns the query, in order; the others are kept (when recent) for a later line to select. */
  private place(batch: readonly { readonly e: StoredEvent; readonly item: T }[], recent: (e: StoredEvent) => boolean): T[] {
    const shown: T[] = [];
    for (const b of batch) {
      const n = this.read++;
      if (this.about(b.e, this.names, this.facts)) {
        shown.push(b.item);
        continue;
      }
      const d = b.e.data as { endpointId?: unknown; networkId?: unknown };
      const key = typeof d.endpointId === 'string' ? d.endpointId : typeof d.networkId === 'string' ? d.networkId : null;
      if (key === null || !recent(b.e)) continue;
      const kept = this.held.get(key);
      if (kept) kept.push({ ...b, n });
      else this.held.set(key, [{ ...b, n }]);
      this.count++;
    }
    return shown;
  }

  private sweep(recent: (e: StoredEvent) => boolean, newest: number): void {
    this.sweptAt = newest;
    this.count = 0;
    for (const [key, kept] of this.held) {
      const still = kept.filter((h) => recent(h.e));
      if (still.length === 0) this.held.delete(key);
      else {
        this.held.set(key, still);
        this.count += still.length;
      }
    }
    // Too many still: the oldest endpoints' lines go first (the map keeps the order they came in).
    for (const [key, kept] of this.held) {
      if (this.count <= FOLLOW_HOLD_MAX) break;
      this.held.delete(key);
      this.count -= kept.length;
    }
  }
}

/** The events that tell something of an endpoint or a network another line may be selected by. */
const TELLING = new Set(['network.named', 'endpoint.named', 'endpoint.created', 'endpoint.addressed', 'peer.endpoint.added']);

/** `--since`: a ledgernet seq (`120`: from that event on) or a time (`2026-11-23T13:00:00Z`: events from then on, by their own time; UTC unless it names a zone). */
export type Since = { readonly seq: number } | { readonly time: string } | null;

/** Parses `--since` (undefined: none); refuses what is neither a seq nor a time, naming it. Pure. */
export function parseSince(v: string | undefined): Since {
  if (v === undefined) return null;
  if (/^\d+$/.test(v)) return { seq: Number(v) };
  // A time starts with its date: Date.parse took `10.5`, ` 12` or `-5` as days of 2001 (the whole log).
  // One without a zone is UTC, as a date alone is and every time printed is (Date.parse: local).
  const zoneless = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?$/i.test(v);
  const t = /^\d{4}-\d{2}-\d{2}/.test(v) ? Date.parse(zoneless ? `${v}Z` : v) : NaN;
  if (Number.isNaN(t)) throw new DriverError('LN_ERR_BAD_REQUEST', `--since must be a seq (e.g. 120) or a time (e.g. 2026-11-23T13:00:00Z), got ${v}`);
  return { time: new Date(t).toISOString() };
}

/** Is event `e` at or after `since`? Pure. */
export function fromSince(e: Pick<StoredEvent, 'seq' | 'at'>, since: Since): boolean {
  if (since === null) return true;
  return 'seq' in since ? e.seq >= since.seq : Date.parse(e.at) >= Date.parse(since.time);
}

/** What `q` asked for, for the message when no event matched. */
export function describeQuery(q: EventQuery): string {
  return [
    q.network === undefined ? null : `a network with the id, id prefix or Docker name ${JSON.stringify(q.network)}`,
    q.container === undefined ? null : `a container with the id, id prefix or Docker name ${JSON.stringify(q.container)}`,
    q.address === undefined ? null : `the address ${q.address}`,
  ]
    .filter((s) => s !== null)
    .join(' and ');
}
