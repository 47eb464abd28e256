// The outbox against a real nats-server (JetStream): what the stream holds after a restart, an
// upgrade or a stream made again, read back message by message. No dockerd.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager, RetentionPolicy, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import { headerRoom, subjectFor, toCloudEvent, type LedgernetCloudEvent } from '../../src/events/audit/cloudevents.ts';
import { writeCursor } from '../../src/events/audit/cursor.ts';
import { Outbox, type OutboxLog } from '../../src/events/audit/outbox.ts';
import { runAudit } from '../../src/events/audit/reader.ts';
import { NatsPublisher } from '../../src/events/audit/publisher-nats.ts';
import type { StoredEvent } from '../../src/events/domain/types.ts';
import { stamp } from '../helpers/chain.ts';
import { EP_1, NET_A } from '../helpers/events.ts';
import { createNatsServer, type NatsServer } from '../helpers/nats.ts';

const STREAM = { name: 'LEDGERNET', retention: 'limits', maxAgeMs: 0, duplicateWindowMs: 120_000 } as const;

const history = (host: string, count: number, from?: StoredEvent) =>
  stamp(host, Array.from({ length: count }, () => ({ type: 'network.deleted' as const, data: { networkId: NET_A } })), from ? { seq: from.seq, hash: from.hash } : undefined);

function memLog(): OutboxLog & { lines: string[] } {
  const lines: string[] = [];
  const put = (_obj: object, msg: string) => void lines.push(msg);
  return { lines, info: put, warn: put, error: put, debug: () => undefined };
}

async function waitUntil(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('the outbox on a real JetStream stream', () => {
  let server: NatsServer;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let root: string;
  let n = 0;
  before(async () => {
    server = await createNatsServer();
    nc = await connect({ servers: server.url });
    jsm = await jetstreamManager(nc);
    root = await mkdtemp(join(tmpdir(), 'ln-audit-outbox-'));
  });
  afterEach(async () => {
    await jsm.streams.delete(STREAM.name).catch(() => undefined);
  });
  after(async () => {
    await nc?.close();
    await server?.stop();
    await rm(root, { recursive: true, force: true });
  });

  const publisher = () => new NatsPublisher({ connect: () => connect({ servers: server.url }), stream: STREAM, describe: server.url, ackTimeoutMs: 2_000 });

  /** A daemon's outbox over `all` (the whole log in memory), with its own state dir unless given. */
  async function outbox(host: string, all: () => StoredEvent[], stateDir?: string) {
    const dir = stateDir ?? join(root, `d${n++}`);
    const log = memLog();
    const ob = await Outbox.create({ publisher: publisher(), host, stateDir: dir, log, initial: all(), readAll: async () => all(), retryMinMs: 20, retryMaxMs: 200 });
    ob.start();
    return { ob, log, dir };
  }

  /** Every message of the stream, in stream order: its subject and event. */
  async function stored(): Promise<{ subject: string; event: LedgernetCloudEvent }[]> {
    const info = await jsm.streams.info(STREAM.name);
    const out: { subject: string; event: LedgernetCloudEvent }[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(STREAM.name, { seq });
      if (m) out.push({ subject: m.subject, event: m.json<LedgernetCloudEvent>() });
    }
    return out;
  }
  const seqsOf = async (host: string) => (await stored()).filter((m) => m.event.source === `ledgernet://${host}`).map((m) => m.event.seq);

  it('a restart with the cursor before a gap (h1:6 lost across a reconnect, h1:7 stored): 6 is published, 7 not again', async () => {
    const all = history('h1', 8);
    const p = publisher();
    await p.resume('h1');
    for (const ev of all.filter((e) => e.seq <= 7 && e.seq !== 6)) await p.publish(subjectFor('h1', ev.type), toCloudEvent(ev));
    await p.close();
    const dir = join(root, `d${n++}`);
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir, { recursive: true });
    await writeCursor(dir, { seq: 5, hash: all[4]!.hash });
    const b = await outbox('h1', () => all, dir);
    await waitUntil(() => b.ob.stats().cursor === 8, 'the log to be published');
    await b.ob.stop();
    assert.deepEqual(await seqsOf('h1'), [1, 2, 3, 4, 5, 7, 6, 8]);
  });

  it('an upgrade from before the escape (web.1 and web_1 both published as web_1): each goes on after its events there; audit --verify passes', async () => {
    const logs = { 'web.1': history('web.1', 7), web_1: history('web_1', 4) };
    const p = publisher();
    await p.resume('web.1');
    // As the older ledgernet stored them: web.1:1-5 and web_1:1-2 under ledgernet.web_1.events.*, web_1's last.
    const old = (e: StoredEvent) => p.publish(`ledgernet.web_1.events.${e.type}`, toCloudEvent(e));
    for (const e of logs['web.1'].slice(0, 3)) await old(e);
    await old(logs.web_1[0]!);
    for (const e of logs['web.1'].slice(3, 5)) await old(e);
    await old(logs.web_1[1]!);
    await p.close();
    for (const [host, all] of Object.entries(logs)) {
      const o = await outbox(host, () => all);
      await waitUntil(() => o.ob.stats().cursor === all.length, `${host} to be published`);
      await o.ob.stop();
      assert.ok(o.log.lines.some((l) => l.includes('the subjects of an older ledgernet')), o.log.lines.join('\n'));
    }
    const msgs = await stored();
    const on = (h: string, token: string) => msgs.filter((m) => m.event.source === `ledgernet://${h}` && m.subject.startsWith(`ledgernet.${token}.`)).map((m) => m.event.seq);
    assert.deepEqual(on('web.1', 'web_2e1'), [6, 7]);
    assert.deepEqual(on('web_1', 'web_5f1'), [3, 4]);
    for (const host of ['web.1', 'web_1']) {
      let out = '';
      let err = '';
      const code = await runAudit({ connect: () => connect({ servers: server.url }), stream: STREAM.name, host, since: undefined, follow: false, json: false, verify: true, out: (t) => void (out += t), err: (t) => void (err += t) });
      assert.equal(code, 0, err);
      assert.match(out, new RegExp(`^ok: ${logs[host as keyof typeof logs].length} event\\(s\\) from 1 host\\(s\\)`, 'm'));
    }
  });

  it("a stream deleted while both hosts are idle: the first to publish makes it again, and the other's next event finds it out; both logs are whole in the new stream", async () => {
    const hosts = { hosta: history('hosta', 10), hostb: history('hostb', 3) };
    const b = await outbox('hostb', () => hosts.hostb);
    await waitUntil(() => b.ob.stats().cursor === 3, 'hostb');
    const a = await outbox('hosta', () => hosts.hosta);
    await waitUntil(() => a.ob.stats().cursor === 10, 'hosta');
    await jsm.streams.delete(STREAM.name);
    try {
      for (const [host, o] of [['hosta', a], ['hostb', b]] as const) {
        const more = history(host, 1, hosts[host].at(-1));
        hosts[host] = [...hosts[host], ...more];
        o.ob.notify(more);
        await waitUntil(() => o.ob.stats().cursor === hosts[host].length && o.ob.stats().backlog === 0, `${host}'s next event`);
      }
    } finally {
      await a.ob.stop();
      await b.ob.stop();
    }
    assert.deepEqual(await seqsOf('hosta'), Array.from({ length: 11 }, (_, i) => i + 1));
    assert.deepEqual(await seqsOf('hostb'), [1, 2, 3, 4]);
    assert.ok(b.log.lines.some((l) => /^the stream LEDGERNET was deleted and made again \(its created time changed/.test(l)), b.log.lines.join('\n'));
  });

  /** h1's log: two small events, one whose data holds `ports` published ports, two small ones. */
  const withBigEvent = (ports: number) => {
    const small = history('h1', 2);
    const portmap = Array.from({ length: ports }, (_, i) => ({ proto: 6, port: 1000 + i, hostIp: '', hostPort: 10000 + i, hostPortEnd: 10000 + i }));
    const big = stamp('h1', [{ type: 'endpoint.external.programmed', data: { networkId: NET_A, endpointId: EP_1, portmap } }], small.at(-1));
    return [...small, ...big, ...history('h1', 2, big.at(-1))];
  };

  /** `audit` over the stream (h1's events), verified or printed: exit code and output. */
  async function audit(verify: boolean, query?: { network: string }): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const code = await runAudit({ connect: () => connect({ servers: server.url }), stream: STREAM.name, host: 'h1', since: undefined, follow: false, json: false, verify, out: (t) => void (out += t), err: (t) => void (err += t), ...(query ? { query } : {}) });
    return { code, out, err };
  }

  it("an event whose message fits the stream's max_msg_size with the headers' room to spare is published whole (the server counts the headers too)", async () => {
    const all = withBigEvent(200);
    const big = all[2]!;
    const limit = Buffer.byteLength(JSON.stringify(toCloudEvent(big))) + headerRoom(big.id);
    await jsm.streams.add({ name: STREAM.name, subjects: ['ledgernet.>'], retention: RetentionPolicy.Limits, storage: StorageType.File, max_msg_size: limit, duplicate_window: 120_000_000_000 });
    const o = await outbox('h1', () => all);
    await waitUntil(() => o.ob.stats().cursor === 5, 'the log to be published');
    const stats = o.ob.stats();
    await o.ob.stop();
    assert.equal(stats.elided, 0);
    const msgs = await stored();
    assert.deepEqual(msgs[2]?.event.data, big.data);
  });

  for (const [what, ports, maxMsgSize] of [
    ["over the server's max_payload (1 MiB, a range of 16,000 ports)", 16_000, 0],
    ["over the stream's max_msg_size (8 KiB, set by its operator)", 200, 8192],
  ] as const) {
    it(`an event ${what} is published without its data, the events after it whole; audit --verify passes and names it`, async () => {
      if (maxMsgSize > 0) {
        await jsm.streams.add({ name: STREAM.name, subjects: ['ledgernet.>'], retention: RetentionPolicy.Limits, storage: StorageType.File, max_msg_size: maxMsgSize, duplicate_window: 120_000_000_000 });
      }
      const all = withBigEvent(ports);
      const dataBytes = Buffer.byteLength(JSON.stringify(all[2]!.data));
      assert.ok(dataBytes > (maxMsgSize || 1024 * 1024), `the event's data is ${dataBytes} bytes`);
      const o = await outbox('h1', () => all);
      await waitUntil(() => o.ob.stats().cursor === 5, 'the log to be published');
      const stats = o.ob.stats();
      await o.ob.stop();
      assert.equal(stats.elided, 1);
      assert.equal(stats.lastElided, 'h1:3');
      assert.ok(o.log.lines.some((l) => l.includes('event h1:3 (endpoint.external.programmed) does not fit') && l.includes('published without its data')), o.log.lines.join('\n'));
      const msgs = await stored();
      assert.deepEqual(msgs.map((m) => m.event.seq), [1, 2, 3, 4, 5]);
      const slim = msgs[2]!.event;
      assert.equal('data' in slim, false);
      assert.equal(slim.dataelided, dataBytes);
      assert.equal(slim.hash, all[2]!.hash);
      assert.deepEqual(msgs[3]!.event.data, all[3]!.data, 'the event after it is whole');
      const verified = await audit(true);
      assert.equal(verified.code, 2, `not all checked: ${verified.err}`);
      assert.match(verified.out, /^ok: 5 event\(s\) from 1 host\(s\): seqs continuous, hash chains intact; but 1 of them were NOT checked: published without their data \(over the stream's message limit: h1:3\)/m);
      const shown = await audit(false);
      assert.equal(shown.code, 0, shown.err);
      assert.match(shown.out, new RegExp(`h1 endpoint\\.external\\.programmed h1:3: published without its data \\(${dataBytes} bytes`));
      // Asked by network, it is found by the ids its subject names.
      const byNetwork = await audit(false, { network: NET_A.slice(0, 12) });
      assert.equal(byNetwork.code, 0, byNetwork.err);
      assert.match(byNetwork.out, /h1:3: published without its data/);
    });
  }
});
