// The name Docker knows the driver by: the managed plugin's id read from mountinfo captures, and
// its name asked of an HTTP server on a unix socket that answers as Docker's API does (GET
// /plugins/<id>/json, /_ping), including a Docker that does not answer yet.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DockerApi } from '../../../src/operator/docker-api.ts';
import { DockerLink, managedPluginId } from '../../../src/operator/docker-name.ts';
import { fakeDocker } from '../../helpers/fake-docker.ts';
import { readFixture } from '../../helpers/fixtures.ts';

const ID = '2c3bc6d11f2a0ad3fe72bfb3b793988ffba1919b7f00547f3b9ce5cc2613622a';
const mountinfo = (name: string) => Promise.resolve(readFixture(`proc-mountinfo/${name}`));
const quiet = { info: () => undefined, warn: () => undefined };

describe('managedPluginId', () => {
  it("finds the plugin id in the mount Docker puts on the plugin socket's directory", async () => {
    assert.equal(managedPluginId(await mountinfo('managed-plugin'), '/run/docker/plugins'), ID);
  });

  it('finds none outside a plugin, or for a socket in another directory', async () => {
    assert.equal(managedPluginId(await mountinfo('host'), '/run/docker/plugins'), null);
    assert.equal(managedPluginId(await mountinfo('managed-plugin'), '/run/ledgernet'), null);
  });

  it('reads a /run on tmpfs (root /docker/plugins/<id>) and octal escapes; the last mount on the point wins', () => {
    const tmpfs = `90 70 0:25 /docker/plugins/${ID} /run/docker/plugins rw,nosuid - tmpfs tmpfs rw\n`;
    assert.equal(managedPluginId(tmpfs, '/run/docker/plugins'), ID);
    assert.equal(managedPluginId(`91 70 0:25 /docker/plugins/${ID} /run/my\\040plugins rw - tmpfs tmpfs rw\n`, '/run/my plugins'), ID);
    // Something mounted over it later (not a plugin dir) hides it.
    assert.equal(managedPluginId(`${tmpfs}95 90 0:30 / /run/docker/plugins rw - tmpfs tmpfs rw\n`, '/run/docker/plugins'), null);
    // A 64-hex directory that is not under a plugins directory is not a plugin.
    assert.equal(managedPluginId(`90 70 0:25 /srv/${ID} /run/docker/plugins rw - tmpfs tmpfs rw\n`, '/run/docker/plugins'), null);
  });
});

describe('DockerLink', () => {
  let dir: string;
  let server: Server;
  let answering = false;
  const asked: string[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ln-docker-name-'));
    const docker = fakeDocker({ api: '1.41', min: '1.12' }, (req, res, path) => {
      asked.push(`${req.method} ${path}`);
      if (path === '/_ping') return void res.end('OK');
      if (path === `/plugins/${ID}/json`) return void res.end(JSON.stringify({ Id: ID, Name: 'acme/ledgernet:v2', Enabled: true }));
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ message: `plugin ${path} not found` }));
    });
    server = createServer((req, res) => {
      if (!answering) return void asked.push(`${req.method} ${req.url} (no answer)`); // Docker enabling plugins before its API serves
      docker(req, res);
    });
    await new Promise<void>((r) => server.listen(join(dir, 'docker.sock'), r));
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  const link = (over: { driverName?: string; mountinfo?: string; timeoutMs?: number } = {}) =>
    new DockerLink({
      api: new DockerApi(join(dir, 'docker.sock'), over.timeoutMs ?? 1_000),
      socket: '/run/docker/plugins/ledgernet.sock',
      driverName: over.driverName,
      log: quiet,
      mountinfo: () => (over.mountinfo === undefined ? mountinfo('managed-plugin') : Promise.resolve(over.mountinfo)),
      retryMs: 20,
    });

  const until = async (what: string, ok: () => boolean) => {
    for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(ok(), what);
  };

  it("a managed plugin asks Docker for its name until Docker answers; meanwhile the socket's name stands in", async () => {
    answering = false;
    asked.length = 0;
    const l = link({ timeoutMs: 50 });
    await l.start();
    assert.equal(l.driverName(), 'ledgernet');
    const before = await l.status();
    assert.equal(before.answering, false);
    assert.match(before.error ?? '', /no answer within 50 ms/);
    assert.match(before.driverNameFrom, /managed plugin 2c3bc6d11f2a, whose name Docker has not given yet/);
    await until('asked more than once', () => asked.filter((a) => a.endsWith('(no answer)')).length >= 2);
    answering = true;
    await until('the name Docker gives is used', () => l.driverName() === 'acme/ledgernet:v2');
    const now = await l.status();
    assert.deepEqual(now, { socket: join(dir, 'docker.sock'), driverName: 'acme/ledgernet:v2', driverNameFrom: 'managed plugin 2c3bc6d11f2a', answering: true });
    const n = asked.length;
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(asked.filter((a) => a.includes('/plugins/')).length, asked.slice(0, n).filter((a) => a.includes('/plugins/')).length, 'no more asking once named');
    l.stop();
  });

  it('LEDGERNET_DRIVER_NAME wins and nothing is asked; outside a plugin the socket name stays', async () => {
    answering = true;
    asked.length = 0;
    const named = link({ driverName: 'mine' });
    await named.start();
    const host = link({ mountinfo: await mountinfo('host') });
    await host.start();
    await new Promise((r) => setTimeout(r, 60));
    assert.deepEqual([named.driverName(), host.driverName()], ['mine', 'ledgernet']);
    assert.deepEqual(asked, []);
    assert.equal((await host.status()).driverNameFrom, 'the plugin socket');
    named.stop();
    host.stop();
  });

  it("a plugin Docker does not know (404) keeps the socket's name and stops asking", async () => {
    answering = true;
    asked.length = 0;
    const other = '9'.repeat(64);
    const l = link({ mountinfo: `90 70 0:25 /docker/plugins/${other} /run/docker/plugins rw - tmpfs tmpfs rw\n` });
    await l.start();
    await until('asked once', () => asked.length === 1);
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(asked.length, 1);
    assert.equal(l.driverName(), 'ledgernet');
    assert.match((await l.status()).driverNameFrom, /which Docker does not know \(Docker refused GET \/plugins\/9{64}\/json \(HTTP 404\)/);
    l.stop();
  });
});
