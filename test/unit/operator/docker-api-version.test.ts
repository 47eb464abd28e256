// The Engine API version ledgernet speaks: negotiated with GET /version, never pinned, against a
// server that answers about versions as Docker does (test/helpers/fake-docker.ts).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DockerApi, DockerApiError, chooseApiVersion } from '../../../src/operator/docker-api.ts';
import { fakeDocker, type DockerVersions } from '../../helpers/fake-docker.ts';

describe('chooseApiVersion', () => {
  it("Docker's newest, capped at the newest read against ledgernet's fields, never below Docker's minimum", () => {
    assert.equal(chooseApiVersion({ ApiVersion: '1.41', MinAPIVersion: '1.12' }), '1.41'); // Docker 20.10
    assert.equal(chooseApiVersion({ ApiVersion: '1.52', MinAPIVersion: '1.44' }), '1.52'); // Docker 29.0
    assert.equal(chooseApiVersion({ ApiVersion: '1.60', MinAPIVersion: '1.44' }), '1.56'); // newer than read: capped
    assert.equal(chooseApiVersion({ ApiVersion: '1.70', MinAPIVersion: '1.60' }), '1.60'); // the cap below Docker's minimum
    assert.equal(chooseApiVersion({ ApiVersion: '1.9', MinAPIVersion: '1.9' }), '1.9'); // 1.9 < 1.41, compared as numbers
    assert.equal(chooseApiVersion({}), '1.41');
    assert.equal(chooseApiVersion({ ApiVersion: 'x', MinAPIVersion: 7 }), '1.41');
  });
});

describe('DockerApi over a versioned API', () => {
  let dir: string;
  let server: Server;
  const versions: DockerVersions = { api: '1.52', min: '1.44' };
  const seen: string[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ln-docker-version-'));
    server = createServer(
      fakeDocker(versions, (req, res, path) => {
        seen.push(`${req.method} ${req.url}`);
        if (path === '/networks') return void res.end('[]');
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ message: `page not found: ${path}` }));
      }),
    );
    await new Promise<void>((r) => server.listen(join(dir, 'docker.sock'), r));
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it('speaks the negotiated version (Docker 29 refuses 1.41), asking /version once per socket', async () => {
    seen.length = 0;
    const a = new DockerApi(join(dir, 'docker.sock'), 1_000);
    assert.deepEqual(await a.listNetworks(), []);
    assert.deepEqual(await new DockerApi(join(dir, 'docker.sock'), 1_000).listNetworks(), []);
    assert.deepEqual(seen, ['GET /v1.52/networks', 'GET /v1.52/networks']);
  });

  it('Docker upgraded under it (its old version now refused): negotiates again and sends once more', async () => {
    seen.length = 0;
    const a = new DockerApi(join(dir, 'docker.sock'), 1_000);
    await a.listNetworks();
    Object.assign(versions, { api: '1.60', min: '1.53' });
    try {
      assert.deepEqual(await a.listNetworks(), []);
      assert.deepEqual(seen, ['GET /v1.52/networks', 'GET /v1.56/networks']);
    } finally {
      Object.assign(versions, { api: '1.52', min: '1.44' });
    }
  });

  it('a refusal that is not about the version is the error, not a retry', async () => {
    seen.length = 0;
    await assert.rejects(new DockerApi(join(dir, 'docker.sock'), 1_000).inspectContainer('nope'), (e: DockerApiError) => e.status === 404 && /page not found/.test(e.message));
    assert.equal(seen.length, 1);
  });
});

describe("DockerApi.events over Docker's event stream", () => {
  let dir: string;
  let server: Server;
  let lines: string[] = [];
  let refuse = false;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ln-docker-events-'));
    server = createServer(
      fakeDocker({ api: '1.41', min: '1.12' }, (_req, res, path) => {
        if (path.split('?')[0] !== '/events') return void res.writeHead(404).end();
        if (refuse) return void res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'invalid filter "bogus"' }));
        res.writeHead(200, { 'content-type': 'application/json' });
        // One line split across writes, a line that is not JSON, an empty line; the stream stays open.
        for (const l of lines) res.write(l);
      }),
    );
    await new Promise<void>((r) => server.listen(join(dir, 'docker.sock'), r));
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  const open = (onEvent: (e: { Action?: string }) => void) =>
    new Promise<{ events: string[]; ended: Error }>((resolve) => {
      const events: string[] = [];
      const stream = new DockerApi(join(dir, 'docker.sock'), 1_000).events(
        { type: ['container'] },
        null,
        (e) => {
          events.push(e.Action ?? '');
          onEvent(e);
        },
        (ended) => resolve({ events, ended }),
      );
      setTimeout(() => {
        stream.close();
        resolve({ events, ended: new Error('still open') });
      }, 500).unref();
    });

  it('reads every JSON line, whole or split across writes, and skips lines that are not events', async () => {
    refuse = false;
    lines = ['{"Type":"container","Action":"create"}\n{"Type":"cont', 'ainer","Action":"start"}\n', 'not json\n', '\n', '{"Type":"network","Action":"connect"}\n'];
    const got = await open(() => {});
    assert.deepEqual(got.events, ['create', 'start', 'connect']);
    assert.equal(got.ended.message, 'still open');
  });

  it("a handler that throws ends the stream with its error (it is not taken for a bad line and skipped)", async () => {
    refuse = false;
    lines = ['{"Type":"container","Action":"create"}\n', '{"Type":"container","Action":"rename"}\n', '{"Type":"container","Action":"start"}\n'];
    const got = await open((e) => {
      if (e.Action === 'rename') throw new Error('no room');
    });
    assert.deepEqual(got.events, ['create', 'rename']);
    assert.match(got.ended.message, /handling Docker's container rename event failed: no room/);
  });

  it("a refusal ends the stream with Docker's own message", async () => {
    refuse = true;
    const got = await open(() => {});
    assert.ok(got.ended instanceof DockerApiError);
    assert.match(got.ended.message, /Docker refused GET \/events \(HTTP 400\): invalid filter "bogus"/);
  });
});
