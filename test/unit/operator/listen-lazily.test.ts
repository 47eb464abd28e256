// listenLazily (src/operator/socket.ts): the control socket's app is built at the first
// connection, not before; every connection that waited for it is served; a failed build is
// reported and tried again; closing ends idle keep-alive connections and removes the socket.
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { listenLazily } from '../../../src/operator/socket.ts';

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ledgernet-lazy-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function get(path: string, agent?: Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: path, path: '/status', method: 'GET', ...(agent ? { agent } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function app(delayMs = 0): FastifyInstance {
  const a = Fastify({ logger: false });
  a.get('/status', async () => {
    await new Promise((r) => setTimeout(r, delayMs));
    return { ok: true };
  });
  return a;
}

describe('listenLazily', () => {
  it('builds the app only at the first connection, once, and serves every connection that waited for it', async () => {
    const path = join(dir, 'control.sock');
    let builds = 0;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const close = await listenLazily(path, 0o600, async () => {
      builds += 1;
      await gate; // the first connections arrive while the app is being built
      return app();
    }, (e) => assert.fail(String(e)));
    try {
      assert.equal(statSync(path).mode & 0o777, 0o600, 'the socket has its mode from the start');
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(builds, 0, 'nothing is built before someone connects');
      const waiting = Array.from({ length: 5 }, () => get(path));
      await new Promise((r) => setTimeout(r, 50));
      release();
      for (const r of await Promise.all(waiting)) assert.deepEqual(r, { status: 200, body: '{"ok":true}' });
      assert.deepEqual(await get(path), { status: 200, body: '{"ok":true}' });
      assert.equal(builds, 1);
    } finally {
      await close();
    }
    assert.equal(existsSync(path), false, 'closing removes the socket file');
  });

  it('a build that fails is reported, its connections are closed, and the next connection builds again', async () => {
    const path = join(dir, 'control.sock');
    const errors: string[] = [];
    let builds = 0;
    const close = await listenLazily(path, 0o600, async () => {
      builds += 1;
      if (builds === 1) throw new Error('cannot load the control module');
      return app();
    }, (e) => errors.push((e as Error).message));
    try {
      await assert.rejects(get(path), /socket hang up|ECONNRESET|EPIPE/);
      assert.deepEqual(errors, ['cannot load the control module']);
      assert.deepEqual(await get(path), { status: 200, body: '{"ok":true}' });
      assert.equal(builds, 2);
    } finally {
      await close();
    }
  });

  it('closing ends an idle keep-alive connection at once, and a socket nobody connected to', async () => {
    const path = join(dir, 'control.sock');
    const close = await listenLazily(path, 0o600, async () => app(), (e) => assert.fail(String(e)));
    const agent = new Agent({ keepAlive: true });
    try {
      assert.equal((await get(path, agent)).status, 200);
      const t0 = performance.now();
      await close();
      assert.ok(performance.now() - t0 < 2_000, `closed in ${Math.round(performance.now() - t0)} ms`);
      assert.equal(existsSync(path), false);
    } finally {
      agent.destroy();
    }
    const idle = await listenLazily(join(dir, 'other.sock'), 0o600, async () => assert.fail('never built'), () => undefined);
    await idle();
    assert.equal(existsSync(join(dir, 'other.sock')), false);
  });

  it('closing lets a request in flight finish and answer', async () => {
    const path = join(dir, 'control.sock');
    const close = await listenLazily(path, 0o600, async () => app(300), (e) => assert.fail(String(e)));
    const inFlight = get(path);
    await new Promise((r) => setTimeout(r, 100));
    const t0 = performance.now();
    await close();
    assert.ok(performance.now() - t0 >= 100, 'close waited for the request');
    assert.deepEqual(await inFlight, { status: 200, body: '{"ok":true}' });
  });
});
