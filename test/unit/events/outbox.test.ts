import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readCursor, writeCursor } from '../../../src/events/audit/cursor.ts';
import { Outbox, type OutboxLog } from '../../../src/events/audit/outbox.ts';
import { subjectFor, toCloudEvent } from '../../../src/events/audit/cloudevents.ts';
import { MemoryPublisher } from '../../../src/events/audit/publisher.ts';
import { ChainVerifier } from '../../../src/events/audit/verify-chain.ts';
import type { StoredEvent } from '../../../src/events/domain/types.ts';
import { byLedgernet } from '../../../src/events/domain/cause.ts';
import { ARCHIVE_DIR } from '../../../src/events/log/archive.ts';
import { openStore } from '../../../src/events/log/open.ts';
import type { EventStore } from '../../../src/events/log/store.ts';
import { stamp } from '../../helpers/chain.ts';
import { NET_A, NET_B, networkSpec } from '../../helpers/events.ts';

let root: string;
let n = 0;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ln-outbox-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

function history(count: number, from?: StoredEvent, o: { host?: string; net?: string } = {}): StoredEvent[] {
  const evs = Array.from({ length: count }, () => ({ type: 'network.deleted' as const, data: { networkId: o.net ?? NET_A } }));
  return stamp(o.host ?? 'h1', evs, from ? { seq: from.seq, hash: from.hash } : undefined);
}

function memLog(): OutboxLog & { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  const put = (obj: object, msg: string) => lines.push(`${msg} ${JSON.stringify(obj)}`);
  return { lines, errors, info: put, warn: put, error: (_obj, msg) => errors.push(msg), debug: () => undefined };
}

async function waitUntil(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function outbox(
  pub: MemoryPublisher,
  initial: StoredEvent[],
  all: () => StoredEvent[] = () => initial,
  o: { host?: string; stateDir?: string; recheckMs?: number } = {},
) {
  const stateDir = o.stateDir ?? join(root, `d${n++}`);
  const { mkdir } = await import('node:fs/promises');
  await mkdir(stateDir, { recursive: true });
  const log = memLog();
  const ob = await Outbox.create({
    publisher: pub,
    host: o.host ?? 'h1',
    stateDir,
    recheckMs: o.recheckMs ?? 30,
    log,
    initial,
    readAll: async () => all(),
    retryMinMs: 5,
    retryMaxMs: 20,
    reportEveryMs: 20,
    maxTail: 4,
  });
  return { ob, log, stateDir };
}

const seqs = (pub: MemoryPublisher) => pub.messages.map((m) => m.event.seq);

describe('Outbox', () => {
  it('publishes the replayed log and new events in order, msg id = event id, cursor after acks', async () => {
    const pub = new MemoryPublisher();
    const first = history(3);
    const more = history(3, first.at(-1));
    const { ob, stateDir } = await outbox(pub, first, () => [...first, ...more]);
    ob.start();
    await waitUntil(() => ob.stats().cursor === 3, 'the replay to be published');
    ob.notify(more);
    await waitUntil(() => ob.stats().backlog === 0 && ob.stats().cursor === 6, 'new events');
    await ob.stop();
    assert.deepEqual(seqs(pub), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(pub.messages.map((m) => m.msgId), ['h1:1', 'h1:2', 'h1:3', 'h1:4', 'h1:5', 'h1:6']);
    assert.equal(pub.messages[0]?.subject, 'ledgernet.h1.events.network.deleted');
    assert.deepEqual(await readCursor(stateDir), { seq: 6, hash: more.at(-1)!.hash });
  });

  it('while the far end is down: notify returns at once, backlog grows, a log line says so; then it drains in order', async () => {
    const pub = new MemoryPublisher();
    pub.down = true;
    const all = history(12);
    const { ob, log } = await outbox(pub, all.slice(0, 2), () => all);
    ob.start();
    for (let i = 2; i < all.length; i++) {
      const t0 = performance.now();
      ob.notify([all[i]!]);
      assert.ok(performance.now() - t0 < 50, 'notify does not wait for NATS (a GC pause aside)');
    }
    assert.equal(ob.stats().backlog, 12);
    await waitUntil(() => log.lines.some((l) => l.startsWith('the audit stream is 12 event(s) behind')), 'the backlog line');
    assert.ok(log.lines.some((l) => l.startsWith('cannot publish to NATS')));
    assert.equal(ob.stats().connected, false);
    pub.down = false;
    await waitUntil(() => ob.stats().backlog === 0, 'the backlog to drain');
    await ob.stop();
    // maxTail is 4: the events past it were read back from the log
    assert.deepEqual(seqs(pub), all.map((e) => e.seq));
    assert.ok(log.lines.some((l) => l.startsWith('NATS is reachable again')));
  });

  it('a lost ack beyond the duplicate window does not store the event twice', async () => {
    const pub = new MemoryPublisher({ dedupWindow: 0 }); // no msg-id dedup at all
    const all = history(4);
    const { ob } = await outbox(pub, all.slice(0, 1));
    pub.loseNextAck = true;
    ob.start();
    ob.notify(all.slice(1));
    await waitUntil(() => ob.stats().cursor === 4, 'all events');
    await ob.stop();
    assert.deepEqual(seqs(pub), [1, 2, 3, 4]);
    assert.ok(pub.resumes >= 2, 'it re-read the stream head after the failure');
  });

  it('a batch sent at once whose acks are lost, one message with them: nothing skipped, nothing stored twice', async () => {
    const pub = new MemoryPublisher({ dedupWindow: 0 }); // no msg-id dedup at all
    const all = history(8);
    const { ob } = await outbox(pub, all);
    pub.lose.set('h1:3', 'message'); // lost across a reconnect while 4.. were stored
    pub.lose.set('h1:5', 'ack');
    ob.start();
    await waitUntil(() => ob.stats().cursor === 8, 'all events');
    await ob.stop();
    assert.deepEqual([...seqs(pub)].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8], 'each event once');
    assert.deepEqual(seqs(pub).slice(0, 2), [1, 2]);
  });

  it('a restart resumes from the stream head when the cursor is behind it', async () => {
    const pub = new MemoryPublisher();
    const all = history(5);
    const a = await outbox(pub, all.slice(0, 3));
    a.ob.start();
    await waitUntil(() => a.ob.stats().cursor === 3, 'first run');
    await a.ob.stop();
    // the next daemon starts with a fresh state dir cursor-less view but the same stream
    const b = await outbox(pub, all);
    b.ob.start();
    await waitUntil(() => b.ob.stats().cursor === 5, 'second run');
    await b.ob.stop();
    assert.deepEqual(seqs(pub), [1, 2, 3, 4, 5]);
  });

  it('a reset state dir (the stream holds more of this host than the log): stops, says why, publishes nothing; resumes once the stream is purged', async () => {
    const pub = new MemoryPublisher();
    const old = history(5, undefined, { net: NET_B });
    const a = await outbox(pub, old);
    a.ob.start();
    await waitUntil(() => a.ob.stats().cursor === 5, 'the first life');
    await a.ob.stop();

    let all = history(3); // the new log: another chain under the same host name
    const b = await outbox(pub, all, () => all);
    b.ob.start();
    await waitUntil(() => b.ob.stats().conflict !== null, 'the conflict');
    const c = b.ob.stats().conflict!;
    assert.equal(c.reason, 'stream_ahead');
    assert.match(c.message, /^stream MEMORY holds h1:5 \(hash [0-9a-f]{16}…\) but the log ends at h1:3: the state dir was reset or another host publishes as h1; publishing stopped$/);
    assert.deepEqual(b.log.errors, [c.message], 'one error line');
    assert.equal(b.ob.stats().cursor, 0, 'the cursor did not move to the stream');
    assert.equal(b.ob.stats().backlog, 3);

    // The log grows past the stream's head: the stream's h1:5 is not the log's h1:5.
    const more = history(4, all.at(-1));
    all = [...all, ...more];
    b.ob.notify(more);
    await waitUntil(() => b.ob.stats().conflict?.reason === 'stream_conflict', 'the hash conflict');
    assert.match(b.ob.stats().conflict!.message, new RegExp(`^stream MEMORY holds a different event h1:5 \\(hash ${old[4]!.hash.slice(0, 16)}…\\) than the log \\(hash ${all[4]!.hash.slice(0, 16)}…\\)`));
    assert.deepEqual(seqs(pub), [1, 2, 3, 4, 5], 'nothing of the new log was published, nothing skipped');

    // The operator moves the old events away: publishing resumes from h1:1 by itself.
    pub.messages.length = 0;
    await waitUntil(() => b.ob.stats().conflict === null && b.ob.stats().cursor === 7, 'publishing to resume');
    await b.ob.stop();
    assert.deepEqual(pub.messages.map((m) => m.event.hash), all.map((e) => e.hash));
    assert.ok(b.log.lines.some((l) => l.startsWith('the stream matches the log again')));
  });

  it('a restart with the cursor before a gap (a message lost across a reconnect, the daemon stopped before that ack failed): the missing event is published, nothing twice', async () => {
    const pub = new MemoryPublisher({ dedupWindow: 0 }); // no msg-id dedup at all
    const all = history(8);
    // The stream holds h1:1..5 and h1:7; the cursor file says 5.
    for (const ev of all.filter((e) => e.seq <= 7 && e.seq !== 6)) await pub.publish(subjectFor('h1', ev.type), toCloudEvent(ev));
    const stateDir = join(root, `d${n++}`);
    const { mkdir } = await import('node:fs/promises');
    await mkdir(stateDir, { recursive: true });
    await writeCursor(stateDir, { seq: 5, hash: all[4]!.hash });
    const b = await outbox(pub, all, () => all, { stateDir });
    b.ob.start();
    await waitUntil(() => b.ob.stats().cursor === 8, 'the log to be published');
    await b.ob.stop();
    assert.deepEqual(seqs(pub), [1, 2, 3, 4, 5, 7, 6, 8], '6 published, 7 not again');
    assert.ok(b.log.lines.some((l) => l.startsWith('the stream holds events after a gap')), b.log.lines.join('\n'));
    assert.deepEqual(await readCursor(stateDir), { seq: 8, hash: all[7]!.hash });
  });

  it('a restart far behind the stream (no cursor file) still finds a gap in its last window, with a few reads of the stream', async () => {
    const pub = new MemoryPublisher({ dedupWindow: 0 });
    const all = history(3001);
    for (const ev of all.filter((e) => e.seq <= 3000 && e.seq !== 2990)) await pub.publish(subjectFor('h1', ev.type), toCloudEvent(ev));
    let reads = 0;
    const heldAfter = pub.heldAfter.bind(pub);
    pub.heldAfter = async (host, streamSeq, max) => {
      reads += 1;
      return heldAfter(host, streamSeq, max);
    };
    const b = await outbox(pub, all, () => all);
    b.ob.start();
    await waitUntil(() => b.ob.stats().cursor === 3001, 'the log to be published', 10_000);
    await b.ob.stop();
    assert.deepEqual(seqs(pub).slice(-2), [2990, 3001], 'the missing event, then the next');
    assert.equal(seqs(pub).length, 3001, 'nothing twice');
    assert.ok(reads < 50, `${reads} reads of the stream`);
  });

  it('a stream whose last event of this host is the log\'s event at that seq: the cursor moves there', async () => {
    const pub = new MemoryPublisher();
    const all = history(6);
    const a = await outbox(pub, all.slice(0, 4));
    a.ob.start();
    await waitUntil(() => a.ob.stats().cursor === 4, 'first life');
    await a.ob.stop();
    const b = await outbox(pub, all);
    b.ob.start();
    await waitUntil(() => b.ob.stats().cursor === 6, 'second life');
    await b.ob.stop();
    assert.deepEqual(seqs(pub), [1, 2, 3, 4, 5, 6]);
    assert.equal(b.log.errors.length, 0);
  });

  it('a publish that meets another event under the same msg id stops for good (no retry stores it twice)', async () => {
    const pub = new MemoryPublisher({ dedupWindow: 100 });
    const theirs = history(2, undefined, { net: NET_B });
    const mine = history(3);
    // Another host publishing as h1 stored h1:2 after our h1:1, but its last message is ours.
    pub.messages.push({ streamSeq: 1, subject: 'ledgernet.h1.events.network.deleted', msgId: 'h1:2', event: toCloudEvent(theirs[1]!) });
    pub.messages.push({ streamSeq: 2, subject: 'ledgernet.h1.events.network.deleted', msgId: 'h1:1', event: toCloudEvent(mine[0]!) });
    const b = await outbox(pub, mine);
    b.ob.start();
    await waitUntil(() => b.ob.stats().conflict !== null, 'the conflict');
    assert.equal(b.ob.stats().conflict!.reason, 'stream_conflict');
    assert.match(b.ob.stats().conflict!.message, /holds a different event h1:2 /);
    await new Promise((r) => setTimeout(r, 100)); // several recheck periods
    assert.equal(b.ob.stats().cursor, 1);
    assert.equal(pub.messages.length, 2, 'nothing more was stored');
    assert.equal(b.log.errors.length, 1);
    await b.ob.stop();
  });

  it('a cursor file that is not this log\'s is ignored: the stream says where to resume', async () => {
    const pub = new MemoryPublisher();
    const other = history(9, undefined, { net: NET_B });
    const a = await outbox(pub, other);
    a.ob.start();
    await waitUntil(() => a.ob.stats().cursor === 9, 'the other log');
    await a.ob.stop();
    pub.messages.length = 0; // its events went elsewhere; only its cursor file stays
    const all = history(4);
    const b = await outbox(pub, all, () => all, { stateDir: a.stateDir });
    b.ob.start();
    await waitUntil(() => b.ob.stats().cursor === 4, 'the log to be published');
    await b.ob.stop();
    assert.deepEqual(seqs(pub), [1, 2, 3, 4]);
    assert.ok(b.log.lines.some((l) => l.startsWith('publish.cursor does not match the event log')));
  });

  it('a start after a snapshot checks a cursor at the head without reading the log', async () => {
    const pub = new MemoryPublisher();
    const all = history(4);
    const a = await outbox(pub, all);
    a.ob.start();
    await waitUntil(() => a.ob.stats().cursor === 4, 'first life');
    await a.ob.stop();
    const log = memLog();
    const b = await Outbox.create({
      publisher: pub,
      host: 'h1',
      stateDir: a.stateDir,
      log,
      initial: [], // the snapshot covered every event
      headSeq: 4,
      headHash: all[3]!.hash,
      readAll: async () => {
        throw new Error('the log was read');
      },
    });
    b.start();
    await waitUntil(() => log.lines.some((l) => l.startsWith('publishing events to NATS')), 'the resync');
    await b.stop();
    assert.equal(b.stats().cursor, 4);
    assert.equal(b.stats().lastError, null);
    assert.deepEqual(seqs(pub), [1, 2, 3, 4]);
  });

  it('a stream made again while it runs (seen at a resync): the whole log is published again, in order', async () => {
    const pub = new MemoryPublisher();
    let all = history(5);
    const { ob, log } = await outbox(pub, all, () => all);
    ob.start();
    await waitUntil(() => ob.stats().cursor === 5, 'the log to be published');
    pub.recreate();
    pub.down = true; // the next publish fails, so the outbox looks at the stream again
    const more = history(2, all.at(-1));
    all = [...all, ...more];
    ob.notify(more);
    await waitUntil(() => ob.stats().lastError !== null, 'the failure');
    pub.down = false;
    await waitUntil(() => ob.stats().cursor === 7 && ob.stats().backlog === 0, 'the log to be published again');
    await ob.stop();
    assert.deepEqual(seqs(pub), [1, 2, 3, 4, 5, 6, 7]);
    assert.ok(log.lines.some((l) => l.startsWith('the stream MEMORY was deleted and made again (its created time changed')), log.lines.join('\n'));
  });

  it('a stream made again between two publishes: the event stored behind the cursor is taken out, and the log follows in order', async () => {
    const pub = new MemoryPublisher();
    let all = history(5);
    const { ob, log } = await outbox(pub, all, () => all);
    ob.start();
    await waitUntil(() => ob.stats().cursor === 5, 'the log to be published');
    // Made again right after the outbox asked which stream it is (before its next batch): no
    // failure, the next publish is acknowledged at the new stream's start.
    const identity = pub.identity.bind(pub);
    pub.identity = async () => {
      const was = await identity();
      pub.recreate();
      pub.identity = identity;
      return was;
    };
    const more = history(3, all.at(-1));
    all = [...all, ...more];
    ob.notify(more);
    await waitUntil(() => ob.stats().cursor === 8 && seqs(pub).length === 8, 'the log to be published again');
    await ob.stop();
    assert.deepEqual(seqs(pub), [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.ok(log.lines.some((l) => l.includes('was deleted and made again (it stored h1:6 at position 1, behind 5')), log.lines.join('\n'));
  });

  it('a stream made again while this host is idle, by another host\'s publisher: the next event finds it out and the log is published again', async () => {
    const pub = new MemoryPublisher();
    const hosts = { a: history(10, undefined, { host: 'a' }), b: history(3, undefined, { host: 'b' }) };
    const b = await outbox(pub, hosts.b, () => hosts.b, { host: 'b' });
    b.ob.start();
    await waitUntil(() => b.ob.stats().cursor === 3, 'b');
    const a = await outbox(pub, hosts.a, () => hosts.a, { host: 'a' });
    a.ob.start();
    await waitUntil(() => a.ob.stats().cursor === 10, 'a');
    pub.recreate(); // deleted and made again: a publishes first, its 11 events are before anything of b's
    for (const [host, o] of [['a', a], ['b', b]] as const) {
      const more = history(1, hosts[host].at(-1), { host });
      hosts[host] = [...hosts[host], ...more];
      o.ob.notify(more);
      await waitUntil(() => o.ob.stats().backlog === 0 && pub.messages.some((m) => m.msgId === more[0]!.id), `${host}'s next event`);
    }
    await a.ob.stop();
    await b.ob.stop();
    const of = (h: string) => pub.messages.filter((m) => m.event.source === `ledgernet://${h}`).map((m) => m.event.seq);
    assert.deepEqual(of('a'), Array.from({ length: 11 }, (_, i) => i + 1));
    assert.deepEqual(of('b'), [1, 2, 3, 4], "b's log again, in order");
    assert.ok(b.log.lines.some((l) => l.startsWith('the stream MEMORY was deleted and made again (its created time changed')), b.log.lines.join('\n'));
  });

  it('a restart with a cursor past what a stream that keeps everything holds (emptied): the log is published again', async () => {
    const pub = new MemoryPublisher();
    const all = history(4);
    const a = await outbox(pub, all);
    a.ob.start();
    await waitUntil(() => a.ob.stats().cursor === 4, 'first life');
    await a.ob.stop();
    pub.recreate();
    const b = await outbox(pub, all, () => all, { stateDir: a.stateDir });
    b.ob.start();
    await waitUntil(() => seqs(pub).length === 4, 'the log again');
    await b.ob.stop();
    assert.deepEqual(seqs(pub), [1, 2, 3, 4]);
    assert.ok(b.log.lines.some((l) => l.includes('holds 0 of this host\'s events but 4 were acknowledged')), b.log.lines.join('\n'));
  });

  it('a stream that refuses events (full): one error line when it starts, one line when it takes them again; status says refused', async () => {
    const pub = new MemoryPublisher();
    const all = history(6);
    const { ob, log } = await outbox(pub, all.slice(0, 2), () => all);
    ob.start();
    await waitUntil(() => ob.stats().cursor === 2, 'the first events');
    pub.refuse = 'JetStream refused the message: maximum messages exceeded (10077)';
    ob.notify(all.slice(2));
    await waitUntil(() => ob.stats().refusals >= 10, 'many retries');
    assert.equal(ob.stats().state, 'refused');
    assert.equal(ob.stats().connected, false);
    assert.equal(ob.stats().lastError, pub.refuse);
    assert.deepEqual(log.errors, [`NATS is reachable but stream MEMORY does not take events: ${pub.refuse}; Docker calls are not affected, events wait in the log and are sent once the stream takes them`]);
    assert.equal(log.lines.filter((l) => l.startsWith('publishing events to NATS')).length, 1, 'no line per retry');
    assert.ok(!log.lines.some((l) => l.startsWith('cannot publish to NATS')), 'not said to be unreachable');
    pub.refuse = null;
    await waitUntil(() => ob.stats().cursor === 6, 'the backlog');
    await ob.stop();
    assert.equal(ob.stats().state, 'publishing');
    assert.equal(log.lines.filter((l) => l.startsWith('stream MEMORY takes events again')).length, 1);
    assert.equal(log.errors.length, 1);
    assert.deepEqual(seqs(pub), [1, 2, 3, 4, 5, 6]);
  });

  it('an upgrade from before the escape (web.1 and web_1 both published as web_1): each goes on after its events there, none published twice', async () => {
    const pub = new MemoryPublisher({ dedupWindow: 0 });
    const logs = { 'web.1': history(7, undefined, { host: 'web.1' }), web_1: history(4, undefined, { host: 'web_1' }) };
    // The older ledgernet stored web.1:1-5 and web_1:1-2 under ledgernet.web_1.events.*, web_1's last.
    const old = (e: StoredEvent) => pub.publish(`ledgernet.web_1.events.${e.type}`, toCloudEvent(e));
    for (const e of logs['web.1'].slice(0, 3)) await old(e);
    await old(logs.web_1[0]!);
    for (const e of logs['web.1'].slice(3, 5)) await old(e);
    await old(logs.web_1[1]!);
    for (const [host, all] of Object.entries(logs)) {
      const stateDir = join(root, `d${n++}`);
      const { mkdir } = await import('node:fs/promises');
      await mkdir(stateDir, { recursive: true });
      // web.1 kept its cursor file; web_1's state dir has none (the stream says where to resume).
      if (host === 'web.1') await writeCursor(stateDir, { seq: 5, hash: all[4]!.hash });
      const o = await outbox(pub, all, () => all, { host, stateDir });
      o.ob.start();
      await waitUntil(() => o.ob.stats().cursor === all.length, `${host} to be published`);
      await o.ob.stop();
      assert.equal(o.log.errors.length, 0);
      assert.ok(o.log.lines.some((l) => l.startsWith(`the stream holds ${host}'s events up to ${host}:${host === 'web.1' ? 5 : 2} under ledgernet.web_1.events.>, the subjects of an older ledgernet`)), o.log.lines.join('\n'));
    }
    const on = (h: string, token: string) => pub.messages.filter((m) => m.event.source === `ledgernet://${h}` && m.subject.startsWith(`ledgernet.${token}.`)).map((m) => m.event.seq);
    assert.deepEqual(on('web.1', 'web_2e1'), [6, 7]);
    assert.deepEqual(on('web_1', 'web_5f1'), [3, 4]);
    const v = new ChainVerifier();
    for (const m of pub.messages) assert.equal(v.push(m.event, `stream seq ${m.streamSeq}`, m.subject), null);
    assert.equal(v.events, 11);
  });

  it('hosts web.1 and web_1 publishing to one stream: each is published in full', async () => {
    const pub = new MemoryPublisher();
    for (const host of ['web.1', 'web_1']) {
      const all = history(25, undefined, { host });
      const o = await outbox(pub, all, () => all, { host });
      o.ob.start();
      await waitUntil(() => o.ob.stats().cursor === 25, `${host} to be published`);
      await o.ob.stop();
      assert.equal(o.log.errors.length, 0);
    }
    const ofHost = (h: string) => pub.messages.filter((m) => m.event.source === `ledgernet://${h}`);
    assert.equal(ofHost('web.1').length, 25);
    assert.equal(ofHost('web_1').length, 25);
    assert.equal(ofHost('web.1')[0]?.subject, 'ledgernet.web_2e1.events.network.deleted');
    assert.equal(ofHost('web_1')[0]?.subject, 'ledgernet.web_5f1.events.network.deleted');
    assert.equal(ofHost('web_1')[0]?.msgId, 'web_1:1', 'the msg id keeps the real host name');
  });
});

describe('Outbox over the log file (wired as main.ts wires it: no readAll)', () => {
  const netId = (i: number) => `${i}`.padEnd(64, 'a');
  const createNetworks = async (store: EventStore, from: number, to: number) => {
    for (let i = from; i < to; i++) await store.execute({ type: 'CreateNetwork', spec: networkSpec(netId(i), `10.${i}.0.0/24`, `10.${i}.0.1/24`) }, byLedgernet('test'));
  };
  /** A daemon's life: the store opened from `dir` (a snapshot at the head after a clean stop), its outbox started. */
  const life = async (dir: string, pub: MemoryPublisher) => {
    const { store, events, state } = await openStore(dir, { host: 'h' }, { snapshotEvery: 1000 });
    const log = memLog();
    const ob = await Outbox.create({ publisher: pub, host: 'h', stateDir: dir, log, initial: events, headSeq: store.lastSeq, headHash: state.hash, retryMinMs: 5, retryMaxMs: 20 });
    store.onEvents((s) => ob.notify(s));
    ob.start();
    return { store, ob, log, replayed: events.length };
  };

  it('a restart with a backlog after a published archive was deleted publishes the backlog from events.log, reading no archive', async () => {
    const dir = join(root, `file${n++}`);
    const pub = new MemoryPublisher();
    const a = await life(dir, pub);
    await createNetworks(a.store, 0, 10);
    await a.store.archive(byLedgernet('test')); // events 1-10 archived, event 11 records it
    await waitUntil(() => a.ob.stats().cursor === 11, 'the archived events to be published');
    pub.down = true;
    await createNetworks(a.store, 10, 13);
    await waitUntil(() => a.ob.stats().lastError !== null, 'NATS to be away');
    await a.ob.stop();
    await a.store.close();
    // Published: the operator may delete the archive (README).
    for (const f of await readdir(join(dir, ARCHIVE_DIR))) await rm(join(dir, ARCHIVE_DIR, f));
    pub.down = false;

    const b = await life(dir, pub);
    assert.equal(b.replayed, 0, 'a clean stop: the start keeps no event in memory');
    assert.equal(b.ob.stats().backlog, 3);
    await waitUntil(() => b.ob.stats().cursor === 14 || b.ob.stats().lastError !== null, 'the backlog or a failure');
    const st = b.ob.stats();
    await b.ob.stop();
    await b.store.close();
    assert.equal(st.lastError, null);
    assert.equal(st.cursor, 14);
    assert.deepEqual(seqs(pub), Array.from({ length: 14 }, (_, i) => i + 1));
    assert.ok(!b.log.lines.some((l) => l.startsWith('publish.cursor does not match')), b.log.lines.join('\n'));
  });

  it('a backlog that reaches into an archive is read from that archive on, with an older (published) archive deleted', async () => {
    const dir = join(root, `file${n++}`);
    const pub = new MemoryPublisher();
    const a = await life(dir, pub);
    await createNetworks(a.store, 0, 5);
    await a.store.archive(byLedgernet('test')); // 1-5 archived, event 6 records it
    await waitUntil(() => a.ob.stats().cursor === 6, 'the first archive to be published');
    pub.down = true;
    await createNetworks(a.store, 5, 9); // 7-10
    await a.store.archive(byLedgernet('test')); // 6-10 archived (7-10 not published), event 11 records it
    await createNetworks(a.store, 9, 11); // 12-13
    await waitUntil(() => a.ob.stats().lastError !== null, 'NATS to be away');
    await a.ob.stop();
    await a.store.close();
    const archives = (await readdir(join(dir, ARCHIVE_DIR))).sort();
    assert.equal(archives.length, 2);
    await rm(join(dir, ARCHIVE_DIR, archives[0]!)); // published: the operator may delete it
    pub.down = false;

    const b = await life(dir, pub);
    await waitUntil(() => b.ob.stats().cursor === 13 || b.ob.stats().lastError !== null, 'the backlog or a failure');
    const st = b.ob.stats();
    await b.ob.stop();
    await b.store.close();
    assert.equal(st.lastError, null);
    assert.deepEqual(seqs(pub), Array.from({ length: 13 }, (_, i) => i + 1));
  });
});

describe('Outbox: an event too large for a message', () => {
  it('is published without its data, and counted once the stream takes it (not when a send failed)', async () => {
    const pub = new MemoryPublisher();
    pub.maxMessageBytes = 1500;
    const big = stamp('h1', [{ type: 'network.named', data: { networkId: NET_A, name: 'x'.repeat(2000) } }]);
    const all = [...big, ...history(3, big[0])];
    pub.refuse = 'maximum messages exceeded (simulated)';
    const { ob, log } = await outbox(pub, all);
    ob.start();
    try {
      await waitUntil(() => ob.stats().refusals > 1, 'sends of h1:1 the stream refused');
      assert.equal(ob.stats().cursor, 0);
      assert.equal(ob.stats().elided, 0, 'nothing taken without its data yet');
      pub.refuse = null;
      await waitUntil(() => ob.stats().cursor === 4, 'the log to be published');
      assert.deepEqual(seqs(pub), [1, 2, 3, 4]);
      const msg = pub.messages[0]!.event;
      assert.equal('data' in msg, false);
      assert.equal(msg.dataelided, Buffer.byteLength(JSON.stringify(big[0]!.data)));
      assert.deepEqual(pub.messages[1]!.event.data, all[1]!.data);
      assert.equal(ob.stats().elided, 1);
      assert.equal(ob.stats().lastElided, 'h1:1');
      assert.equal(log.lines.filter((l) => l.includes('published without its data')).length, 1, log.lines.join('\n'));
      const v = new ChainVerifier();
      for (const [i, m] of pub.messages.entries()) assert.equal(v.push(JSON.parse(JSON.stringify(m.event)), `stream seq ${i + 1}`, m.subject), null);
      assert.deepEqual(v.elided, ['h1:1']);
    } finally {
      await ob.stop();
    }
  });
});
