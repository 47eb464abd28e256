// Forwarding a call across worker crashes: the same request is sent again to the next worker;
// an answer (even an Err) is final; a deadline and a poison-call limit bound it.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { forwardWithRetry, WorkerLink, type ForwardDeps, type Reply } from '../../../src/supervisor/forward.ts';
import { serveFrames } from '../../../src/supervisor/worker-link.ts';

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

describe('WorkerLink and serveFrames (the framed link to the worker)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ledgernet-fwd-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('carries concurrent calls on one connection, bodies unchanged, each answer to its own call', async () => {
    const path = join(dir, 'w.sock');
    const seen: string[] = [];
    // Answers in reverse order of arrival: the ids, not the order, pair calls and answers.
    const stop = await serveFrames(path, async (method, body) => {
      seen.push(`${method} ${body}`);
      await new Promise((r) => setTimeout(r, 50 - seen.length * 5));
      return { status: method === 'Bad' ? 500 : 200, body: JSON.stringify({ echo: body }) };
    });
    const link = new WorkerLink(path);
    try {
      assert.equal((statSync(path).mode & 0o777).toString(8), '600');
      const replies = await Promise.all(['{"a":1}\n', '', 'ü'.repeat(70_000)].map((b, i) => link.send(1, i === 1 ? 'Bad' : 'NetworkDriver.Join', b, 5000)));
      assert.deepEqual(replies.map((r) => r.status), [200, 500, 200]);
      assert.deepEqual(replies.map((r) => JSON.parse(r.body).echo), ['{"a":1}\n', '', 'ü'.repeat(70_000)]);
      assert.equal(seen.length, 3);
    } finally {
      link.close();
      await stop();
    }
  });

  it('fails a call in transport when the worker dies with it, is gone, or does not answer in time', async () => {
    const path = join(dir, 'x.sock');
    // A worker that dies (drops the connection) on Crash and never answers Hang.
    const server = createServer((socket) => {
      socket.on('data', (c: Buffer) => {
        if (c.includes('Crash')) socket.destroy();
      });
    });
    await new Promise<void>((r) => server.listen(path, r));
    const link = new WorkerLink(path);
    try {
      await assert.rejects(link.send(1, 'Crash', '{}', 5000), /closed the connection mid-call/);
      await assert.rejects(link.send(1, 'Hang', '{}', 150), /no answer from the worker within 150 ms/);
      await assert.rejects(new WorkerLink(join(dir, 'missing.sock')).send(1, 'X', '', 5000), /ENOENT/);
    } finally {
      link.close();
      await new Promise((r) => server.close(r));
    }
  });

  it('a worker that cannot be reached (stopping: its socket closed) is waited for, not counted as a death', async () => {
    const link = new WorkerLink(join(dir, 'stopping.sock'));
    try {
      let now = 0;
      const r = await forwardWithRetry(
        {
          send: () => link.send(1, 'NetworkDriver.GetCapabilities', '', 5000),
          // The same worker stays "ready" (it is stopping), as until the watchdog or its exit.
          nextWorker: async (_gen, ms) => {
            now += ms;
            await new Promise((res) => setImmediate(res));
          },
          generation: () => 1,
          now: () => now,
        },
        3_000,
      );
      assert.equal(r.kind, 'timeout', JSON.stringify(r));
      assert.equal(r.attempts, 0);
      assert.match(r.kind === 'timeout' ? r.lastError : '', /^could not reach the worker: connect ENOENT/);
    } finally {
      link.close();
    }
  });

  it('stopping the worker side answers the calls in flight first', async () => {
    const path = join(dir, 's.sock');
    let release: () => void = () => undefined;
    const stop = await serveFrames(path, () => new Promise((r) => (release = () => r({ status: 200, body: '{}' }))));
    const link = new WorkerLink(path);
    try {
      const call = link.send(1, 'NetworkDriver.Leave', '{}', 5000);
      await new Promise((r) => setTimeout(r, 50));
      const stopped = stop();
      release();
      assert.deepEqual(await call, { status: 200, body: '{}' });
      await stopped;
    } finally {
      link.close();
    }
  });
});
