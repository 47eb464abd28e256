// `ledgernet audit`: the reference observer. An ordered (ephemeral) JetStream consumer over the
// audit stream that prints each event, or checks hash chains and seq continuity per host.
// --since TIME is the events' own time (their CloudEvent `time`), not when the stream stored them:
// an event published late (after an outage, or again into a stream made anew) is found by when it
// happened. A read that ends before it delivered what the stream said it holds exits 1; --follow
// rides out a NATS restart (the connection reconnects, the ordered consumer resumes after the
// last message it delivered: nothing twice, nothing skipped).
import { JetStreamApiCodes, JetStreamApiError, jetstream, type JsMsg, type OrderedConsumerOptions } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { DriverError } from '../../errors.ts';
import { describeReceived, hostFilter, hostToken, isSubjectOf, legacyHostToken, receivedEvent } from './cloudevents.ts';
import { ChainVerifier } from './verify-chain.ts';
import { namesFrom } from '../domain/names.ts';
import { describeQuery, EndpointFacts, eventFilter, FollowFilter, parseSince, type EventQuery, type Since } from '../domain/event-filters.ts';
import type { StoredEvent } from '../domain/types.ts';

export interface AuditOptions {
  readonly connect: () => Promise<NatsConnection>;
  readonly stream: string;
  readonly host: string | undefined;
  /** A ledgernet seq (`120`) or a time (`2026-11-23T13:00:00Z`). */
  readonly since: string | undefined;
  readonly follow: boolean;
  readonly json: boolean;
  readonly verify: boolean;
  readonly out?: (s: string) => void;
  readonly err?: (s: string) => void;
  /** Without --follow: how long a read waits for the next message the stream said it holds (default 15 s). */
  readonly stallMs?: number;
  /**
   * --network, --container, --address (as `ledgernet events`): only the events that concern them.
   * Without --follow the stream is read twice (the first read learns which endpoints they concern),
   * so an endpoint's lines before the one naming its container are found too; with --follow, such
   * lines are shown when the line naming it comes (if within a minute of theirs).
   */
  readonly query?: EventQuery;
}

function parsePayload(m: JsMsg): unknown {
  try {
    return m.json<unknown>();
  } catch {
    return m.string();
  }
}

/** Before --since TIME: a ledgernet event by its own time; anything else by when the stream stored it. */
function beforeTime(raw: unknown, m: JsMsg, since: Since): boolean {
  if (!since || !('time' in since)) return false;
  const ev = receivedEvent(raw);
  const t = typeof ev === 'string' ? m.info.timestampNanos / 1e6 : Date.parse(ev.at);
  return t < Date.parse(since.time);
}

/** How one read of the stream went. */
interface Pass {
  readonly said: number;
  readonly delivered: number;
  readonly lastStreamSeq: number;
  /** Why the read ended before it got what the stream said it holds (or, with --follow, why it stopped), or null. */
  readonly short: string | null;
}

export async function runAudit(o: AuditOptions): Promise<number> {
  const out = o.out ?? ((s: string) => void process.stdout.write(s));
  const err = o.err ?? ((s: string) => void process.stderr.write(s));
  const since = parseSince(o.since);
  const minSeq = since && 'seq' in since ? since.seq : 1;
  const stallMs = o.stallMs ?? 15_000;
  const verifier = o.verify ? new ChainVerifier({ firstSeq: since && 'time' in since ? null : minSeq }) : null;
  const query = o.query ?? {};
  const asked = (['network', 'container', 'address'] as const).filter((k) => query[k] !== undefined);
  if (o.verify && asked.length > 0) throw new DriverError('LN_ERR_BAD_REQUEST', `audit --verify checks every event: it takes no ${asked.map((k) => `--${k}`).join(' or ')}`);
  const about = asked.length > 0 ? eventFilter(query) : null;
  const facts = new EndpointFacts();
  /** Docker's names seen so far (network.named, endpoint.named): later lines of those ids carry them. */
  const names = new Map<string, string>();
  let shown = 0;
  const nc = await o.connect();
  try {
    // A host whose subject token changed with the escape may have events under the old one too
    // (which other hosts may share): read every host's then, and skip the others' below. (Two
    // filter subjects would need nats-server 2.10.)
    const narrow = o.host === undefined || legacyHostToken(o.host) === hostToken(o.host);
    // Every message is read: --since TIME compares each event's own time (the stream's time of a
    // late-published event is later than the event's).
    const copts: Partial<OrderedConsumerOptions> = { filter_subjects: hostFilter(narrow ? o.host : undefined) };
    /** Reads the stream once (to stream seq `upTo` when given), handing `each` this host's events (`early`: before --since). */
    const pass = async (upTo: number | null, each: (raw: unknown, m: JsMsg, early: boolean) => boolean | void): Promise<Pass> => {
      // A fresh options object each read: nats.js writes the consumer's name prefix into it, and a
      // second read with the same name would get the first one's consumer (nothing pending).
      const consumer = await jetstream(nc)
        .consumers.get(o.stream, { ...copts })
        .catch((e: unknown) => {
          if (e instanceof JetStreamApiError && e.code === JetStreamApiCodes.StreamNotFound) {
            throw new DriverError('LN_ERR_BAD_REQUEST', `the stream ${o.stream} does not exist on this NATS server: no ledgernet daemon has published to it`);
          }
          throw e;
        });
      const said = (await consumer.info(true)).num_pending;
      let pending = said;
      let delivered = 0;
      let lastStreamSeq = 0;
      if (!o.follow && pending === 0) return { said, delivered, lastStreamSeq, short: null };
      const msgs = await consumer.consume();
      // Without --follow, a read that gets nothing for stallMs while messages are due ends (exit 1 below).
      let stalled = false;
      let watchdog: NodeJS.Timeout | null = null;
      const arm = () => {
        if (o.follow) return;
        if (watchdog) clearTimeout(watchdog);
        watchdog = setTimeout(() => {
          stalled = true;
          msgs.stop();
        }, stallMs);
      };
      arm();
      try {
        for await (const m of msgs) {
          arm();
          pending = m.info.pending;
          delivered += 1;
          lastStreamSeq = m.seq;
          const raw = parsePayload(m);
          const seq = (raw as { seq?: unknown } | null)?.seq;
          const early = (typeof seq === 'number' && seq < minSeq) || beforeTime(raw, m, since);
          if (!anotherHostsEvent(raw, m.subject, o.host) && each(raw, m, early) === false) return { said, delivered, lastStreamSeq, short: null };
          if ((!o.follow && pending === 0) || (upTo !== null && m.seq >= upTo)) break;
        }
      } finally {
        if (watchdog) clearTimeout(watchdog);
      }
      if (!o.follow && (pending === 0 || (upTo !== null && lastStreamSeq >= upTo)) && delivered > 0) return { said, delivered, lastStreamSeq, short: null };
      const closed = await Promise.race([msgs.closed(), new Promise<void>((r) => setTimeout(r, 100).unref())]).catch((e: unknown) => e);
      const why = closed instanceof Error ? closed.message : stalled ? `nothing arrived for ${stallMs / 1000} s` : nc.isClosed() ? 'the connection to NATS closed' : 'the stream stopped delivering';
      return { said, delivered, lastStreamSeq, short: why };
    };
    let read: Pass;
    let failed = false;
    if (about && !o.follow) {
      // Two reads, so nothing is held in memory but what the log says of endpoints and names:
      // the first learns which endpoints the query concerns (an endpoint's lines before the one
      // naming its container are found too), the second prints them, up to where the first ended.
      read = await pass(null, (raw) => learn(receivedEvent(raw), names, facts));
      if (read.short === null && read.delivered > 0) {
        const upTo = read.lastStreamSeq;
        read = await pass(upTo, (raw, m, early) => {
          if (early) return;
          const ev = receivedEvent(raw);
          if (typeof ev === 'string' || !about(ev, names, facts)) return;
          shown++;
          out(o.json ? `${m.string()}\n` : `${describeReceived(ev, names)}\n`);
        });
      }
    } else {
      // Following: an endpoint's earlier lines are shown once a later one makes them concern the query.
      const follow = about ? new FollowFilter<{ ev: StoredEvent; text: string }>(about, names, facts) : null;
      read = await pass(null, (raw, m, early) => {
        if (early) {
          // Before --since: not shown, but its names label later lines and its endpoints' facts select them.
          const ev = receivedEvent(raw);
          if (typeof ev !== 'string') {
            learn(ev, names, facts);
          }
          return;
        }
        const problem = verifier?.push(raw, `stream seq ${m.seq}`, m.subject);
        if (problem) {
          err(`ledgernet audit: verification FAILED (${problem.kind}): ${problem.message}\n`);
          failed = true;
          return false;
        }
        if (follow) {
          const ev = receivedEvent(raw);
          if (typeof ev === 'string') return;
          for (const h of follow.take([{ e: ev, item: { ev, text: m.string() } }])) {
            shown++;
            out(o.json ? `${h.text}\n` : `${describeReceived(h.ev, names)}\n`);
          }
        } else if (!verifier || o.json) out(o.json ? `${m.string()}\n` : `${line(raw, m.seq, names)}\n`);
      });
      if (failed) return 1;
    }
    if (read.short !== null) {
      const at = `after ${read.delivered} of ${o.follow ? 'the' : read.said} message(s)${read.lastStreamSeq ? `, the last at stream seq ${read.lastStreamSeq}` : ''}`;
      err(
        o.follow
          ? `ledgernet audit: stopped following stream ${o.stream} ${at}: ${read.short}\n`
          : `ledgernet audit: the read of stream ${o.stream} ended short ${at}: ${read.short}; the output is incomplete\n`,
      );
      return 1;
    }
    if (verifier) out(`ok: ${verifier.events} event(s) from ${verifier.hosts} host(s): seqs continuous, hash chains intact${elidedNote(verifier.elided)}\n`);
    if (about && shown === 0) {
      err(`ledgernet audit: no event in stream ${o.stream} concerns ${describeQuery(query)}\n`);
      return 1;
    }
    // Not all checked: a message without its data could be another event's envelope (exit 2, as a dry run with changes).
    return verifier && verifier.elided.length > 0 ? 2 : 0;
  } finally {
    await nc.close();
  }
}

/** What an event says of Docker's names and of endpoints (an event without its data says nothing). */
function learn(ev: ReturnType<typeof receivedEvent>, names: Map<string, string>, facts: EndpointFacts | null): void {
  if (typeof ev === 'string' || 'elided' in ev) return;
  namesFrom([ev], names);
  facts?.add([ev]);
}

/** What --verify could not check: the events published without their data (their content is in their host's log). */
function elidedNote(ids: readonly string[]): string {
  if (ids.length === 0) return '';
  const named = ids.length > 10 ? `${ids.slice(0, 10).join(', ')} and ${ids.length - 10} more` : ids.join(', ');
  return (
    `; but ${ids.length} of them were NOT checked: published without their data (over the stream's message limit: ${named}); ` +
    'their hashes link the chain, but nothing ties their type, time, cause or subject to them: check them in their host\'s log (`ledgernet events verify` there)'
  );
}

/** Another host's event on its own subject (an event on `host`'s subject is the verifier's to judge). */
function anotherHostsEvent(raw: unknown, subject: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  const ev = receivedEvent(raw);
  return typeof ev !== 'string' && ev.host !== host && isSubjectOf(subject, ev.host, ev.type);
}

/** One event's line, its ids labelled with Docker's names seen so far in the read (`names`, updated). */
function line(raw: unknown, streamSeq: number, names: Map<string, string>): string {
  const ev = receivedEvent(raw);
  if (typeof ev === 'string') return `stream seq ${streamSeq}: not a ledgernet event (${ev})`;
  const text = describeReceived(ev, names);
  learn(ev, names, null);
  return text;
}
