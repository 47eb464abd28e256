// Forwarding a call across worker crashes: the same request is sent again to the next worker;
// an answer (even an Err) is final; a deadline and a poison-call limit bound it.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { forwardWithRetry, postToWorker, type ForwardDeps, type Reply } from '../../../src/supervisor/forward.ts';

/** A fake worker pool: `gen` is the ready worker (null: none), `now` a manual clock. */
function fakeWorkers(attempts: ((n: number) => Reply | Error)[], o: { restartMs?: number } = {}) {
  let gen: number | null = 1;
  let now = 0;
  let restartLeft = o.restartMs ?? 800;
  const sent: number[] = [];
  const deps: ForwardDeps = {
    async send() {
      const n = sent.length;
      sent.push(gen ?? -1);
      const r = (attempts[n] ?? attempts[attempts.length - 1] ?? (() => new Error('no script')))(n);
      if (r instanceof Error) {
        gen = null; // the worker died with the call
        throw r;
      }
      return r;
    },
    async nextWorker(_g, ms) {
      // A dead worker is replaced `restartMs` after it died.
      if (gen === null) {
        const wait = Math.min(ms, restartLeft);
        now += wait;
        restartLeft -= wait;
        if (restartLeft === 0) {
          gen = Math.max(...sent) + 1;
          restartLeft = o.restartMs ?? 800;
        }
      } else now += ms;
    },
    generation: () => gen,
    now: () => now,
  };
  return { deps, sent, clock: () => now };
}

const ok: Reply = { status: 200, body: '{}' };
const died = () => new Error('socket hang up');

describe('forwardWithRetry', () => {
  it('a call whose worker dies mid-call is sent again to the next worker, and its answer is returned', async () => {
    const w = fakeWorkers([died, () => ok]);
    const r = await forwardWithRetry(w.deps, 25_000);
    assert.deepEqual(r, { kind: 'reply', reply: ok, attempts: 2 });
    assert.deepEqual(w.sent, [1, 2], 'the second attempt went to a new worker');
  });

  it('an Err answer is final (never re-sent)', async () => {
    const errReply: Reply = { status: 500, body: '{"Err":"no"}' };
    const w = fakeWorkers([() => errReply, () => ok]);
    assert.deepEqual(await forwardWithRetry(w.deps, 25_000), { kind: 'reply', reply: errReply, attempts: 1 });
  });

  it('waits for a worker while none is ready, up to the deadline, then says so', async () => {
    const w = fakeWorkers([died], { restartMs: 60_000 });
    const r = await forwardWithRetry(w.deps, 25_000);
    assert.equal(r.kind, 'timeout');
    assert.ok(w.clock() >= 25_000 && w.clock() < 26_000, `gave up at the deadline (${w.clock()} ms)`);
  });

  it('a call that kills every worker it meets is not sent a fifth time (poison)', async () => {
    const w = fakeWorkers([died]);
    const r = await forwardWithRetry(w.deps, 600_000, 4);
    assert.equal(r.kind, 'poison');
    assert.equal(w.sent.length, 4);
  });
});

describe('postToWorker', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ledgernet-fwd-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('sends the body unchanged and returns status and body; a dropped connection is a transport error', async () => {
    const path = join(dir, 'w.sock');
    const seen: string[] = [];
    const server = createServer((req, res) => {
      let b = '';
      req.on('data', (c: Buffer) => (b += c.toString()));
      req.on('end', () => {
        seen.push(`${req.url} ${b}`);
        if (req.url === '/Crash') return req.socket.destroy();
        res.writeHead(500).end('{"Err":"x"}');
      });
    });
    await new Promise<void>((r) => server.listen(path, r));
    try {
      assert.deepEqual(await postToWorker(path, 'NetworkDriver.Join', '{"a":1}\n', 5000), { status: 500, body: '{"Err":"x"}' });
      await assert.rejects(postToWorker(path, 'Crash', '{}', 5000));
      await assert.rejects(postToWorker(join(dir, 'missing.sock'), 'X', '', 5000), /ENOENT/);
      assert.deepEqual(seen, ['/NetworkDriver.Join {"a":1}\n', '/Crash {}']);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
