// `ledgernet audit --network/--container/--address` over a real nats-server: a log written as the
// daemon writes it, published by the daemon's outbox, read back by the audit reader with filters.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { Outbox } from '../../src/events/audit/outbox.ts';
import { NatsPublisher } from '../../src/events/audit/publisher-nats.ts';
import { runAudit } from '../../src/events/audit/reader.ts';
import type { EventQuery } from '../../src/events/domain/event-filters.ts';
import { EventLog } from '../../src/events/index.ts';
import { readLog } from '../../src/events/log/read.ts';
import { createNatsServer, type NatsServer } from '../helpers/nats.ts';
import { ADDRESS_HISTORY } from '../helpers/events.ts';

const quiet = { error() {}, info() {}, warn() {}, debug() {} };
const STREAM = { name: 'LEDGERNET', retention: 'limits', maxAgeMs: 0, duplicateWindowMs: 120_000 } as const;
const CID_B = ADDRESS_HISTORY.containers[1];

describe('audit with filters', () => {
  let server: NatsServer;
  let dir: string;
  before(async () => {
    server = await createNatsServer();
    dir = await mkdtemp(join(tmpdir(), 'ln-audit-filters-'));
    const { log } = await EventLog.open(dir, { host: 'h' });
    // web-1 had .2 and went; job-7 got .2 again.
    await log.append(ADDRESS_HISTORY.events()).durable;
    await log.close();
    const { events } = await readLog(dir);
    const head = events.at(-1);
    const publisher = new NatsPublisher({ connect: () => connect({ servers: server.url }), stream: STREAM, describe: server.url });
    const outbox = await Outbox.create({ publisher, host: 'h', stateDir: dir, log: quiet, initial: [], headSeq: head?.seq ?? 0, headHash: head?.hash ?? '' });
    outbox.start();
    try {
      const t0 = Date.now();
      while (outbox.stats().cursor < (head?.seq ?? 0)) {
        if (Date.now() - t0 > 20_000) throw new Error(`the outbox did not publish the log: ${outbox.stats().lastError}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      await outbox.stop();
    }
  });
  after(async () => {
    await server?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const read = async (query: EventQuery, json = true, since?: string) => {
    let out = '';
    let err = '';
    const code = await runAudit({
      connect: () => connect({ servers: server.url }),
      stream: STREAM.name,
      host: 'h',
      since,
      follow: false,
      json,
      verify: false,
      out: (s) => void (out += s),
      err: (s) => void (err += s),
      query,
    });
    return { code, out, err, seqs: json ? out.trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { seq: number }).seq) : [] };
  };

  it("--container: every event of the endpoints it had, the ones before its name was recorded included", async () => {
    assert.deepEqual((await read({ container: 'web-1' })).seqs, [3, 4, 5, 6]);
    assert.deepEqual((await read({ container: CID_B.slice(0, 12) })).seqs, [7, 8]);
    const text = await read({ container: 'job-7' }, false);
    assert.match(text.out, /job-7/, 'lines labelled with the names of the whole read');
  });

  it('--since with --container: an endpoint named before it still selects its later lines', async () => {
    assert.deepEqual((await read({ container: 'web-1' }, true, '6')).seqs, [6]);
    const text = await read({ container: 'web-1' }, false, '6');
    assert.match(text.out, /endpoint 1a1a1a1a1a1a\(web-1\) deleted from network abcdef012345\(web\)/, 'labelled with the names recorded before --since');
  });

  it('--address, combined with --network; nothing matched: exit 1 naming it; with --verify: refused', async () => {
    assert.deepEqual((await read({ address: '10.231.79.2', network: 'web' })).seqs, [3, 4, 5, 6, 7, 8]);
    const none = await read({ address: '10.231.79.9' });
    assert.equal(none.code, 1);
    assert.match(none.err, /no event in stream LEDGERNET concerns the address 10\.231\.79\.9/);
    await assert.rejects(
      runAudit({ connect: () => connect({ servers: server.url }), stream: STREAM.name, host: 'h', since: undefined, follow: false, json: false, verify: true, query: { container: 'web-1' } }),
      /audit --verify checks every event: it takes no --container/,
    );
  });

  it("--follow --container: an endpoint's lines before its naming are shown when the naming comes", async () => {
    let out = '';
    let nc: Awaited<ReturnType<typeof connect>> | null = null;
    const seqs = () => out.trim().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { seq: number }).seq);
    const following = runAudit({
      connect: async () => (nc = await connect({ servers: server.url })),
      stream: STREAM.name,
      host: 'h',
      since: undefined,
      follow: true,
      json: true,
      verify: false,
      out: (s) => void (out += s),
      err: () => {},
      query: { container: 'web-1' },
    });
    try {
      for (let i = 0; i < 200 && seqs().length < 4; i++) await new Promise((r) => setTimeout(r, 25));
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(seqs(), [3, 4, 5, 6], 'read one message at a time: 3 and 4 are shown when 5 names their container');
    } finally {
      await (nc as Awaited<ReturnType<typeof connect>> | null)?.close();
      assert.equal(await following, 1, 'a follow ends (exit 1) only when NATS goes');
    }
  });
});
