// Proves the test environment works without ledgernet (dockerd, the busybox image, loopback
// traffic) and that the test helpers behave as the other e2e tests expect.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  TEST_IMAGE,
  cleanupAll,
  containerIp,
  docker,
  ping,
  track,
  uniqueName,
  waitFor,
} from '../helpers/docker.ts';
import { pluginCall, startDaemon, stopAllDaemons } from '../helpers/daemon.ts';
import { findLeaks } from '../helpers/leaks.ts';

after(async () => {
  await stopAllDaemons();
  await cleanupAll();
});

describe('environment', () => {
  test('dockerd answers', async () => {
    const r = await docker(['version', '--format', '{{.Server.APIVersion}}']);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /^1\.\d+$/);
  });

  test('the test image exists', async () => {
    const r = await docker(['image', 'inspect', '--format', '{{.Id}}', TEST_IMAGE]);
    assert.equal(r.exitCode, 0, `${TEST_IMAGE} missing; run scripts/test-env.sh: ${r.stderr}`);
  });

  test('a container with --network none pings loopback', async () => {
    const name = track.container(uniqueName('env-ping'));
    const r = await docker(['run', '--rm', '--network', 'none', '--name', name, TEST_IMAGE, 'ping', '-c1', '127.0.0.1']);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /1 packets received/);
  });
});

describe('docker helpers', () => {
  test('ping, waitFor and containerIp on a detached container', async () => {
    const name = track.container(uniqueName('env-det'));
    await docker(['run', '-d', '--network', 'none', '--name', name, TEST_IMAGE, 'sleep', '600'], { check: true });
    await waitFor(async () => (await docker(['inspect', '-f', '{{.State.Running}}', name])).stdout === 'true', {
      what: `${name} to run`,
    });
    assert.equal(await ping(name, '127.0.0.1', 1), true);
    // TEST-NET-1 has no route in a --network none container: fails at once, sends nothing.
    assert.equal(await ping(name, '192.0.2.1', 1), false);
    await assert.rejects(containerIp(name, 'none'), /no IPv4 address on network none/);
    await assert.rejects(containerIp(name, 'nosuchnet'), /not attached to network nosuchnet/);
  });

  test('containerIp and ping between two containers on a bridge network made by the test', async () => {
    const net = track.network(uniqueName('env-net'));
    await docker(['network', 'create', '--driver', 'bridge', '--internal', net], { check: true });
    const [a, b] = [track.container(uniqueName('env-a')), track.container(uniqueName('env-b'))];
    for (const c of [a, b]) {
      await docker(['run', '-d', '--network', net, '--name', c, TEST_IMAGE, 'sleep', '600'], { check: true });
    }
    const ipB = await containerIp(b, net);
    assert.match(ipB, /^\d+\.\d+\.\d+\.\d+$/);
    assert.equal(await ping(a, ipB), true);
    assert.deepEqual(await cleanupAll(), []);
    assert.equal((await docker(['network', 'inspect', net])).exitCode, 1);
  });

  test('waitFor returns the value, and names what timed out', async () => {
    let n = 0;
    assert.equal(await waitFor(() => (++n >= 3 ? n : false), { what: 'n', intervalMs: 1 }), 3);
    await assert.rejects(
      waitFor(
        () => {
          throw new Error('not yet');
        },
        { what: 'the impossible', timeoutMs: 50, intervalMs: 10 },
      ),
      /timed out after 50 ms waiting for the impossible \(last error: not yet\)/,
    );
  });

  test('uniqueName makes valid, distinct names', () => {
    const [x, y] = [uniqueName('x'), uniqueName('x')];
    assert.notEqual(x, y);
    assert.match(x, new RegExp(`^x-${process.pid}-[0-9a-f]{6}$`));
    assert.match(uniqueName(''), /^ln-/);
  });

  test('findLeaks can read links, rules and networks', async () => {
    assert.ok(Array.isArray(await findLeaks()));
  });
});

describe('daemon helpers (with a stand-in for dist/cli.js)', () => {
  // Echoes each request back, so the test sees what pluginCall sent.
  const fakeCli = `
import { createServer } from 'node:http';
const a = process.argv.slice(2);
const socket = a[a.indexOf('--socket') + 1];
console.log('fake serve', a.join(' '));
const srv = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => res.end(JSON.stringify({ Implements: ['NetworkDriver'], url: req.url, headers: req.rawHeaders, body })));
});
srv.listen(socket);
process.on('SIGTERM', () => { console.log('bye'); srv.close(); process.exit(0); });
`;

  test('startDaemon waits for Plugin.Activate; pluginCall talks like dockerd; stop and kill9 clean up', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ln-env-'));
    try {
      const cliPath = join(dir, 'fake-cli.mjs');
      await writeFile(cliPath, fakeCli);
      const socket = join(dir, 'p.sock');
      const d = await startDaemon({ cliPath, socket, extraArgs: ['--reconcile-interval', '1'] });
      assert.ok(existsSync(d.stateDir));
      assert.match(d.logs(), /fake serve serve --socket .*p\.sock --state-dir .* --reconcile-interval 1/);

      const r = await pluginCall('NetworkDriver.CreateNetwork', { NetworkID: 'n1' }, socket);
      assert.equal(r.status, 200);
      const echo = r.json as { url: string; headers: string[]; body: string };
      assert.equal(echo.url, '/NetworkDriver.CreateNetwork');
      assert.equal(echo.body, '{"NetworkID":"n1"}\n');
      const headers = echo.headers.map((h) => h.toLowerCase());
      assert.ok(!headers.includes('content-type'), `no Content-Type expected: ${echo.headers.join('|')}`);
      assert.equal(echo.headers[headers.indexOf('host') + 1], '');
      assert.equal(((await pluginCall('X.Y', 'raw', socket)).json as { body: string }).body, 'raw');

      await d.stop();
      assert.match(d.logs(), /bye/);
      assert.ok(!existsSync(d.stateDir), 'a state dir made by startDaemon is removed on stop');

      const e = await startDaemon({ cliPath, socket, stateDir: join(dir, 'state') });
      await e.kill9();
      assert.equal((await e.exited).signal, 'SIGKILL');
      await e.stop();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('startDaemon throws with the logs when the daemon dies before it is ready', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ln-env-'));
    try {
      const cliPath = join(dir, 'dies.mjs');
      await writeFile(cliPath, "console.error('cannot open the log'); process.exit(3);\n");
      await assert.rejects(
        startDaemon({ cliPath, socket: join(dir, 'p.sock') }),
        /exited early \(\{"code":3,"signal":null\}\)[\s\S]*cannot open the log/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
