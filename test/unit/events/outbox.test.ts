import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readCursor } from '../../../src/events/cursor.ts';
import { Outbox, type OutboxLog } from '../../../src/events/outbox.ts';
import { MemoryPublisher } from '../../../src/events/publisher.ts';
import type { StoredEvent } from '../../../src/events/types.ts';
import { stamp } from '../../helpers/chain.ts';
import { NET_A } from '../../helpers/events.ts';

let root: string;
let n = 0;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ln-outbox-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

function history(count: number, from?: StoredEvent): StoredEvent[] {
  const evs = Array.from({ length: count }, () => ({ type: 'network.deleted' as const, data: { networkId: NET_A } }));
  return stamp('h1', evs, from ? { seq: from.seq, hash: from.hash } : undefined);
}

function memLog(): OutboxLog & { lines: string[] } {
  const lines: string[] = [];
  const put = (obj: object, msg: string) => lines.push(`${msg} ${JSON.stringify(obj)}`);
  return { lines, info: put, warn: put, debug: () => undefined };
}

async function waitUntil(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function outbox(pub: MemoryPublisher, initial: StoredEvent[], all: () => StoredEvent[] = () => initial) {
  const stateDir = join(root, `d${n++}`);
  const { mkdir } = await import('node:fs/promises');
  await mkdir(stateDir);
  const log = memLog();
  const ob = await Outbox.create({
    publisher: pub,
    host: 'h1',
    stateDir,
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
      assert.ok(performance.now() - t0 < 5, 'notify does not wait for NATS');
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
});
