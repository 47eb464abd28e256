// `ledgernet audit`: the reference observer. An ordered (ephemeral) JetStream consumer over the
// audit stream that prints each event, or checks hash chains and seq continuity per host.
import { DeliverPolicy, JetStreamApiCodes, JetStreamApiError, jetstream, type JsMsg, type OrderedConsumerOptions } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { DriverError } from '../../errors.ts';
import { describeEvent, fromCloudEvent, hostFilter, hostToken, isSubjectOf, legacyHostToken } from './cloudevents.ts';
import { ChainVerifier } from './verify-chain.ts';

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
}

type Since = { seq: number } | { time: string } | null;

function parseSince(v: string | undefined): Since {
  if (v === undefined) return null;
  if (/^\d+$/.test(v)) return { seq: Number(v) };
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new DriverError('LN_ERR_BAD_REQUEST', `--since must be a seq (e.g. 120) or a time (e.g. 2026-11-23T13:00:00Z), got ${v}`);
  return { time: new Date(t).toISOString() };
}

function parsePayload(m: JsMsg): unknown {
  try {
    return m.json<unknown>();
  } catch {
    return m.string();
  }
}

export async function runAudit(o: AuditOptions): Promise<number> {
  const out = o.out ?? ((s: string) => void process.stdout.write(s));
  const err = o.err ?? ((s: string) => void process.stderr.write(s));
  const since = parseSince(o.since);
  const minSeq = since && 'seq' in since ? since.seq : 1;
  const verifier = o.verify ? new ChainVerifier({ firstSeq: since && 'time' in since ? null : minSeq }) : null;
  const nc = await o.connect();
  try {
    // A host whose subject token changed with the escape may have events under the old one too
    // (which other hosts may share): read every host's then, and skip the others' below. (Two
    // filter subjects would need nats-server 2.10.)
    const narrow = o.host === undefined || legacyHostToken(o.host) === hostToken(o.host);
    const copts: Partial<OrderedConsumerOptions> = { filter_subjects: hostFilter(narrow ? o.host : undefined) };
    if (since && 'time' in since) Object.assign(copts, { deliver_policy: DeliverPolicy.StartTime, opt_start_time: since.time });
    const consumer = await jetstream(nc)
      .consumers.get(o.stream, copts)
      .catch((e: unknown) => {
        if (e instanceof JetStreamApiError && e.code === JetStreamApiCodes.StreamNotFound) {
          throw new DriverError('LN_ERR_BAD_REQUEST', `the stream ${o.stream} does not exist on this NATS server: no ledgernet daemon has published to it`);
        }
        throw e;
      });
    let pending = (await consumer.info(true)).num_pending;
    if (o.follow || pending > 0) {
      const msgs = await consumer.consume();
      for await (const m of msgs) {
        pending = m.info.pending;
        const raw = parsePayload(m);
        const seq = (raw as { seq?: unknown } | null)?.seq;
        if ((typeof seq === 'number' && seq < minSeq) || anotherHostsEvent(raw, m.subject, o.host)) {
          if (!o.follow && pending === 0) break;
          continue;
        }
        const problem = verifier?.push(raw, `stream seq ${m.seq}`, m.subject);
        if (problem) {
          err(`ledgernet audit: verification FAILED (${problem.kind}): ${problem.message}\n`);
          return 1;
        }
        if (!verifier || o.json) out(o.json ? `${m.string()}\n` : `${line(raw, m.seq)}\n`);
        if (!o.follow && pending === 0) break;
      }
    }
    if (verifier) out(`ok: ${verifier.events} event(s) from ${verifier.hosts} host(s): seqs continuous, hash chains intact\n`);
    return 0;
  } finally {
    await nc.close();
  }
}

/** Another host's event on its own subject (an event on `host`'s subject is the verifier's to judge). */
function anotherHostsEvent(raw: unknown, subject: string, host: string | undefined): boolean {
  if (host === undefined) return false;
  const ev = fromCloudEvent(raw);
  return typeof ev !== 'string' && ev.host !== host && isSubjectOf(subject, ev.host, ev.type);
}

function line(raw: unknown, streamSeq: number): string {
  const ev = fromCloudEvent(raw);
  return typeof ev === 'string' ? `stream seq ${streamSeq}: not a ledgernet event (${ev})` : describeEvent(ev);
}
