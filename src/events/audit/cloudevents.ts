// The NATS shape of an event: CloudEvents 1.0, structured JSON mode. The mapping is lossless, so
// an observer can rebuild the stored event from the CloudEvent and recompute its hash
// (`fromCloudEvent` + `eventHash`). docs/events.md documents it for people.
import { short as shortId } from '../domain/naming.ts';
import { describeCause } from '../domain/cause.ts';
import { EventVersions, type Cause, type EventType, type PortRun, type StoredEvent } from '../domain/types.ts';
import { portRuns } from '../domain/port-runs.ts';
import { PROTO_NAME } from '../domain/ports.ts';
import { withPort } from '../domain/cidr.ts';
import { countNamed } from '../domain/named.ts';

export interface LedgernetCloudEvent {
  readonly specversion: '1.0';
  /** `<host>:<seq>`, also the `Nats-Msg-Id`. */
  readonly id: string;
  /** `ledgernet://<host>` */
  readonly source: string;
  /** `io.ledgernet.<noun>.<verb>.v<N>` */
  readonly type: string;
  readonly time: string;
  /** The object the event is about: `network/<id>`, `network/<id>/endpoint/<id>` or `reconciler`. */
  readonly subject: string;
  /** Absent, as `data`, on an event published without its data (`dataelided`). */
  readonly datacontenttype?: 'application/json';
  readonly data?: unknown;
  /**
   * Extension, only on an event whose message would not fit the stream's message limit: its
   * data is left out, and this is the size (bytes of its JSON) of what was left out. The event's
   * hash still links the chain; its data is in the host's log (`ledgernet events`).
   */
  readonly dataelided?: number;
  /** Extensions: the event's seq in its host's log, the previous event's hash, its own hash. */
  readonly seq: number;
  readonly prevhash: string;
  readonly hash: string;
  /**
   * Extensions: who made the event happen, one attribute per field of its `cause` (`causeby`,
   * `causecall`, `causecommand`, `causeuid`, `causepid`, `causeuser`, `causereason`,
   * `causewhat`); none for an event recorded before causes were.
   */
  readonly [cause: `cause${string}`]: string | number;
}

const CAUSE_PREFIX = 'cause';

/** The cause's fields as extension attributes (CloudEvents names: lower-case letters and digits, as Cause's fields are). */
function causeAttributes(cause: Cause | undefined): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  if (cause) for (const [k, v] of Object.entries(cause)) out[`${CAUSE_PREFIX}${k}`] = v as string | number;
  return out;
}

/** The cause back from the extension attributes (every `cause…` one, so a newer ledgernet's fields survive), or why not. */
function causeFrom(ce: Record<string, unknown>): Cause | undefined | string {
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(ce)) {
    if (!k.startsWith(CAUSE_PREFIX) || k.length === CAUSE_PREFIX.length) continue;
    if (typeof v !== 'string' && typeof v !== 'number') return `${k} is not a string or a number`;
    fields[k.slice(CAUSE_PREFIX.length)] = v;
  }
  if (Object.keys(fields).length === 0) return undefined;
  if (typeof fields['by'] !== 'string') return 'causeby is missing or not a string';
  return fields as unknown as Cause;
}

const TYPE_PREFIX = 'io.ledgernet.';
const SOURCE_PREFIX = 'ledgernet://';

const encoder = new TextEncoder();

/**
 * A host name as one NATS subject token, one-to-one: `A-Z a-z 0-9 -` stay, every other byte of
 * the UTF-8 name (`_` and `.` included) becomes `_` and two lower-case hex digits, so `web.1` is
 * `web_2e1` and `web_1` is `web_5f1`. The empty name is `_` (no escape is a lone `_`). A name
 * that is not well-formed UTF-16 (a lone surrogate) has no UTF-8 bytes and is refused.
 */
export function hostToken(host: string): string {
  if (/\p{Cs}/u.test(host)) throw new Error(`the host name ${JSON.stringify(host)} is not valid Unicode (a lone surrogate)`);
  if (host === '') return '_';
  let out = '';
  for (const ch of host) {
    if (/^[A-Za-z0-9-]$/.test(ch)) out += ch;
    else for (const b of encoder.encode(ch)) out += `_${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The token before the escape (every character outside `A-Za-z0-9_-` became `_`; lossy): only to read old streams. */
export function legacyHostToken(host: string): string {
  return host.replace(/[^A-Za-z0-9_-]/g, '_') || '_';
}

/**
 * The subject filter of `host`'s events as a ledgernet before the escape published them, when it
 * is not hostFilter(host) (null otherwise): only to read old streams. Other hosts' events may be
 * under it too (web.1 and web_1 were both web_1): tell them apart by their source.
 */
export function legacyHostFilter(host: string): string | null {
  const token = legacyHostToken(host);
  return token === hostToken(host) ? null : `ledgernet.${token}.events.>`;
}

/** `ledgernet.<host>.events.<type>` */
export function subjectFor(host: string, type: EventType): string {
  return `ledgernet.${hostToken(host)}.events.${type}`;
}

/** The subject filter of one host's events, or of every host's with `host` undefined. */
export function hostFilter(host?: string): string {
  return `ledgernet.${host === undefined ? '*' : hostToken(host)}.events.>`;
}

/** Whether a message of `host` belongs on `subject`: its subject, or the one before the escape. */
export function isSubjectOf(subject: string, host: string, type: EventType): boolean {
  return subject === subjectFor(host, type) || subject === `ledgernet.${legacyHostToken(host)}.events.${type}`;
}

/** `ledgernet://<host>`: the CloudEvent source of `host`'s events. */
export function sourceFor(host: string): string {
  return `${SOURCE_PREFIX}${host}`;
}

export function cloudEventType(type: EventType, v: number): string {
  return `${TYPE_PREFIX}${type}.v${v}`;
}

/** `io.ledgernet.endpoint.joined.v1` → `{ type: 'endpoint.joined', v: 1 }`, or null. */
export function parseCloudEventType(ceType: string): { type: EventType; v: number } | null {
  const m = /^io\.ledgernet\.([a-z.]+)\.v(\d+)$/.exec(ceType);
  if (!m || !m[1] || !(m[1] in EventVersions)) return null;
  return { type: m[1] as EventType, v: Number(m[2]) };
}

function subjectOf(ev: StoredEvent): string {
  const d = ev.data as { networkId?: unknown; endpointId?: unknown; poolId?: unknown; address?: unknown; cluster?: unknown; host?: unknown };
  if (typeof d.cluster === 'string') return `cluster/${d.cluster}/host/${String(d.host)}${typeof d.endpointId === 'string' ? `/endpoint/${d.endpointId}` : ''}`;
  if (typeof d.poolId === 'string') return typeof d.address === 'string' ? `pool/${d.poolId}/address/${d.address}` : `pool/${d.poolId}`;
  if (ev.type === 'endpoint.deferred') return 'endpoint';
  if (ev.type === 'network.deferred') return 'network';
  if (ev.type === 'log.archived') return 'log';
  if (ev.type === 'cluster.host.forgotten') return `host/${String(d.host)}`;
  if (typeof d.networkId !== 'string') return 'reconciler';
  return typeof d.endpointId === 'string' ? `network/${d.networkId}/endpoint/${d.endpointId}` : `network/${d.networkId}`;
}

export function toCloudEvent(ev: StoredEvent): LedgernetCloudEvent {
  return {
    specversion: '1.0',
    id: ev.id,
    source: sourceFor(ev.host),
    type: cloudEventType(ev.type, ev.v),
    time: ev.at,
    subject: subjectOf(ev),
    datacontenttype: 'application/json',
    data: ev.data,
    seq: ev.seq,
    prevhash: ev.prevhash,
    hash: ev.hash,
    ...causeAttributes(ev.cause),
  };
}

/** A received CloudEvent's envelope: the stored event without its data, or why it is not one. */
function envelopeOf(raw: unknown): Omit<StoredEvent, 'data'> | string {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return 'not a JSON object';
  const ce = raw as Record<string, unknown>;
  if (ce['specversion'] !== '1.0') return 'specversion is not 1.0';
  for (const k of ['id', 'source', 'type', 'time', 'prevhash', 'hash'] as const) {
    if (typeof ce[k] !== 'string') return `${k} is missing or not a string`;
  }
  const source = ce['source'] as string;
  if (!source.startsWith(SOURCE_PREFIX)) return `source ${source} is not ledgernet://<host>`;
  const parsed = parseCloudEventType(ce['type'] as string);
  if (!parsed) return `type ${String(ce['type'])} is not a ledgernet event type`;
  const seq = ce['seq'];
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return 'seq is missing or not a positive integer';
  const cause = causeFrom(ce);
  if (typeof cause === 'string') return cause;
  return {
    seq,
    id: ce['id'] as string,
    host: source.slice(SOURCE_PREFIX.length),
    type: parsed.type,
    v: parsed.v,
    at: ce['time'] as string,
    prevhash: ce['prevhash'] as string,
    hash: ce['hash'] as string,
    ...(cause ? { cause } : {}),
  } as Omit<StoredEvent, 'data'>;
}

/**
 * Rebuilds the stored event from a received CloudEvent (any JSON value), or says why it cannot.
 * The result's `hash` is the one the message claims; compare it with `eventHash(result)`.
 */
export function fromCloudEvent(raw: unknown): StoredEvent | string {
  const env = envelopeOf(raw);
  if (typeof env === 'string') return env;
  const data = (raw as Record<string, unknown>)['data'];
  if (data === null || typeof data !== 'object') return ELIDED in (raw as object) ? `its data was left out (${ELIDED}: over the stream's message limit)` : 'data is missing';
  return { ...env, data } as StoredEvent;
}

/** The extension naming the size of the data left out of an event's message (`LedgernetCloudEvent.dataelided`). */
const ELIDED = 'dataelided';

/** A received event published without its data: its envelope and the size of the data left out. */
export type ElidedEvent = Omit<StoredEvent, 'data'> & { readonly elided: number };

/** The event of a message published without its data; null when the message is not one, or why it is not an event. */
export function elidedFromCloudEvent(raw: unknown): ElidedEvent | string | null {
  if (raw === null || typeof raw !== 'object' || !(ELIDED in raw) || 'data' in raw) return null;
  const bytes = (raw as Record<string, unknown>)[ELIDED];
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0) return `${ELIDED} is not a byte count`;
  const env = envelopeOf(raw);
  return typeof env === 'string' ? env : { ...env, elided: bytes };
}

/**
 * The ids a CloudEvent's `subject` names, as an event's data has them (subjectOf's forms:
 * `network/<id>[/endpoint/<id>]`, `pool/<pool id>[/address/<address>]` (a pool id has slashes:
 * `ledgernet/10.99.0.0/24`), `cluster/<name>/host/<host>[/endpoint/<id>]`).
 */
function idsOfSubject(subject: unknown): Record<string, string> {
  if (typeof subject !== 'string') return {};
  const net = /^network\/([0-9a-f]+)(?:\/endpoint\/([0-9a-f]+))?$/.exec(subject);
  if (net?.[1] !== undefined) return { networkId: net[1], ...(net[2] === undefined ? {} : { endpointId: net[2] }) };
  if (subject.startsWith('pool/')) {
    const rest = subject.slice('pool/'.length);
    const at = rest.lastIndexOf('/address/');
    return at < 0 ? { poolId: rest } : { poolId: rest.slice(0, at), address: rest.slice(at + '/address/'.length) };
  }
  const cluster = /^cluster\/(.+?)\/host\/(.+?)(?:\/endpoint\/([0-9a-f]+))?$/.exec(subject);
  if (cluster?.[1] !== undefined && cluster[2] !== undefined) return { cluster: cluster[1], host: cluster[2], ...(cluster[3] === undefined ? {} : { endpointId: cluster[3] }) };
  return {};
}

/**
 * An event as an observer reads it: the stored event, or for one published without its data its
 * envelope with `elided` and, as `data`, only the ids its subject names (so that a query by
 * network, container or address finds it too); or why the message is not an event.
 */
export function receivedEvent(raw: unknown): StoredEvent | (StoredEvent & ElidedEvent) | string {
  const slim = elidedFromCloudEvent(raw);
  if (slim === null) return fromCloudEvent(raw);
  if (typeof slim === 'string') return slim;
  return { ...slim, data: idsOfSubject((raw as Record<string, unknown>)['subject']) } as StoredEvent & ElidedEvent;
}

/** The line of an event as receivedEvent gives it (describeEvent, or describeElided for one without its data). */
export function describeReceived(ev: StoredEvent | (StoredEvent & ElidedEvent), names: ReadonlyMap<string, string>): string {
  return 'elided' in ev ? describeElided(ev) : describeEvent(ev, names);
}

/**
 * Room left in a message of event `id` for what NATS adds to it: the headers (`NATS/1.0`,
 * Content-Type, Nats-Msg-Id: the id, Nats-Expected-Stream: the stream's name), which the server's
 * max_payload and the stream's max_msg_size count too: ~100 bytes, the id and a stream name of up
 * to ~400 bytes.
 */
export const headerRoom = (id: string): number => 512 + Buffer.byteLength(id);

/** What to publish for one event. */
export interface CloudEventMessage {
  readonly event: LedgernetCloudEvent;
  /** The message's payload: `event` as JSON. */
  readonly body: string;
  /** Set when the data was left out (`dataelided`): the bytes it had. */
  readonly elided: number | null;
}

/**
 * The message of `ev` for a stream that takes messages of up to `maxBytes` (NATS's max_payload,
 * the stream's max_msg_size): its CloudEvent, or, when that would not fit, the CloudEvent without
 * its data (`dataelided`: the data's size). A message that does not fit is refused for good, and
 * the events after it would never be published.
 */
export function cloudEventMessage(ev: StoredEvent, maxBytes: number): CloudEventMessage {
  const event = toCloudEvent(ev);
  const body = JSON.stringify(event);
  // A UTF-16 unit is at most 3 UTF-8 bytes: the bytes are counted only for a body near the limit.
  const room = headerRoom(ev.id);
  if (body.length * 3 + room <= maxBytes || Buffer.byteLength(body) + room <= maxBytes) return { event, body, elided: null };
  const { data: _data, datacontenttype: _type, ...rest } = event;
  const elided = Buffer.byteLength(JSON.stringify(ev.data));
  const slim: LedgernetCloudEvent = { ...rest, [ELIDED]: elided };
  return { event: slim, body: JSON.stringify(slim), elided };
}

/** The line of an event received without its data (elidedFromCloudEvent). */
export function describeElided(ev: ElidedEvent): string {
  return lineOf(ev, `${ev.type} ${ev.id}: published without its data (${ev.elided} bytes, over the stream's message limit); \`ledgernet events --since ${ev.seq}\` on ${ev.host} shows it`);
}

/** `a` or `a-b` (a run of n ports from `a`). */
const span = (a: number, n: number): string => (n > 1 ? `${a}-${a + n - 1}` : String(a));

/** `127.0.0.1:8080->80/tcp,5353->53/udp,10000-10999->1000-1999/tcp`: published ports as `docker ps` writes them, runs as ranges. */
export const portsText = (pm: readonly PortRun[]) =>
  portRuns(pm)
    .map((p) => {
      const n = p.count ?? 1;
      return `${p.hostIp ? withPort(p.hostIp, span(p.hostPort, n)) : span(p.hostPort, n)}->${span(p.port, n)}/${PROTO_NAME[p.proto] ?? p.proto}`;
    })
    .join(',');

function describeData(ev: StoredEvent, names: ReadonlyMap<string, string>): string {
  // A network's or an endpoint's short id, with Docker's name for it when one was seen.
  const short = (id: string) => labelled(id, names);
  switch (ev.type) {
    case 'network.created':
      return `network ${short(ev.data.networkId)} created ${[...ev.data.ipv4Data, ...ev.data.ipv6Data].map((d) => d.pool).join(',')}${ev.data.adopted ? " (taken from Docker's API: its CreateNetwork was cut off by a crash)" : ''}`;
    case 'network.deleted':
      return `network ${short(ev.data.networkId)} deleted`;
    case 'network.rolledback':
      return `network ${short(ev.data.networkId)} rolled back: ${ev.data.reason}`;
    case 'network.collected':
      return `network ${short(ev.data.networkId)} collected: ${ev.data.reason}`;
    case 'endpoint.created':
      return `endpoint ${short(ev.data.endpointId)} created on network ${short(ev.data.networkId)} ${ev.data.address ?? ''}`.trimEnd();
    case 'endpoint.joined':
      return `endpoint ${short(ev.data.endpointId)} joined network ${short(ev.data.networkId)}`;
    case 'endpoint.left':
      return `endpoint ${short(ev.data.endpointId)} left network ${short(ev.data.networkId)}`;
    case 'endpoint.deleted':
      return `endpoint ${short(ev.data.endpointId)} deleted from network ${short(ev.data.networkId)}${ev.data.reason === undefined ? '' : `: ${ev.data.reason}`}`;
    case 'endpoint.rolledback':
      return `endpoint ${short(ev.data.endpointId)} rolled back: ${ev.data.reason}`;
    case 'endpoint.lost':
      return `endpoint ${short(ev.data.endpointId)} lost (${ev.data.veth}): ${ev.data.reason}`;
    case 'endpoint.deferred':
      return `a CreateEndpoint deferred to its Join: ${ev.data.reason}`;
    case 'network.deferred':
      return `a CreateNetwork deferred until Docker stores the network: ${ev.data.reason}`;
    case 'endpoint.addressed':
      return `endpoint ${short(ev.data.endpointId)} addressed ${[ev.data.address, ev.data.addressV6].filter((a) => a !== null).join(' ') || '(none)'}`;
    case 'network.named':
      return `network ${short(ev.data.networkId)} is named ${ev.data.name} in Docker`;
    case 'endpoint.named':
      return `endpoint ${short(ev.data.endpointId)} on network ${short(ev.data.networkId)} belongs to container ${ev.data.name} (${short(ev.data.containerId)})`;
    case 'log.archived':
      return `events ${ev.data.first} to ${ev.data.last} archived in ${ev.data.archive} (${ev.data.bytes} bytes)`;
    case 'cluster.host.forgotten':
      return `cluster host ${ev.data.host} forgotten: taken out of ${ev.data.networks.join(', ') || 'no network'}${ev.data.retired.length > 0 ? ` (${ev.data.retired.join(', ')} removed: no host has it)` : ''}, ${ev.data.blocks} address block(s) given back`;
    case 'endpoint.external.programmed':
      return `endpoint ${short(ev.data.endpointId)} ports programmed ${portsText(ev.data.portmap) || '(none)'}${ev.data.family === undefined ? '' : ` (IPv${ev.data.family} only)`}`;
    case 'endpoint.external.revoked':
      return `endpoint ${short(ev.data.endpointId)} ports revoked`;
    case 'pool.requested':
      return `pool ${ev.data.pool}${ev.data.subPool ? ` (range ${ev.data.subPool})` : ''} allocated${ev.data.auto ? ' automatically' : ''}`;
    case 'pool.released':
      return `pool ${ev.data.poolId} released`;
    case 'address.requested':
      return `address ${ev.data.address} allocated in ${ev.data.poolId} (${ev.data.kind})`;
    case 'address.released':
      return `address ${ev.data.address} released in ${ev.data.poolId}${ev.data.reason === undefined ? '' : `: ${ev.data.reason}`}`;
    case 'block.claimed':
      return `block ${ev.data.block} claimed in ${ev.data.poolId}`;
    case 'peer.member.joined':
      return `cluster ${ev.data.cluster}: host ${ev.data.host} joined (vtep ${ev.data.vtep})`;
    case 'peer.member.left':
      return `cluster ${ev.data.cluster}: host ${ev.data.host} left`;
    case 'peer.endpoint.added':
      return `cluster ${ev.data.cluster}: endpoint ${short(ev.data.endpointId)} ${ev.data.address} ${ev.data.mac} on host ${ev.data.host}`;
    case 'peer.endpoint.removed':
      return `cluster ${ev.data.cluster}: endpoint ${short(ev.data.endpointId)} on host ${ev.data.host} removed`;
    case 'reconcile.applied':
      return `reconcile (${ev.data.trigger}) applied ${countNamed(ev.data.actions)} action(s), ${countNamed(ev.data.failures)} failure(s)`;
    default: {
      const never: never = ev;
      return String((never as { type: string }).type);
    }
  }
}

/** `0123456789ab`, or `0123456789ab(web)` when `names` knows Docker's name for the id. */
export function labelled(id: string, names: ReadonlyMap<string, string>): string {
  const name = names.get(id);
  return name === undefined ? shortId(id) : `${shortId(id)}(${name})`;
}

/**
 * One readable line: `2026-11-23T13:02:11Z host1 network 0123456789ab created 10.231.7.0/24`;
 * with `names` (Docker's names by id: `namesFrom`), `network 0123456789ab(web) deleted`.
 */
export function describeEvent(ev: StoredEvent, names: ReadonlyMap<string, string> = new Map()): string {
  return lineOf(ev, describeData(ev, names));
}

/** `<time> <host> <what> (by <cause>)`: one event's line. */
function lineOf(ev: Pick<StoredEvent, 'at' | 'host' | 'cause'>, what: string): string {
  return `${ev.at.replace(/\.\d+Z$/, 'Z')} ${ev.host} ${what}${ev.cause ? ` (by ${describeCause(ev.cause)})` : ''}`;
}
