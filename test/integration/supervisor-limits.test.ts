// The supervisor of a real daemon (dist/, in a network namespace this test makes, no Docker) under
// clients that hold requests open or send too much (review of 2026-12-06, finding 4): 256
// connections without a whole request are read, the next is refused with a clear 503 (a call
// whose bytes are not all there at its accept too: the cap is far above Docker's dozens), and a body over the worker's 1 MB limit is refused at its head
// with the worker's Err. Needs root and `npm run build`.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BODY_LIMIT } from '../../src/errors.ts';
import { pluginCall, startDaemon, stopAllDaemons } from '../helpers/daemon.ts';
import { throwawayNetns } from '../helpers/netns.ts';
import { openRaw, readToClose } from '../helpers/raw-client.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

describe("the supervisor's caps on what clients hold open", { skip }, () => {
  const netns = throwawayNetns('lnlimits');
  let root: string;
  let runDir: string;
  let socket: string;
  const clients: Socket[] = [];
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ln-limits-'));
    runDir = await mkdtemp(join(tmpdir(), 'ln-limits-run-'));
    socket = join(root, 'plugin.sock');
    await startDaemon({
      stateDir: join(root, 'state'),
      socket,
      launcher: ['ip', 'netns', 'exec', netns],
      extraArgs: ['--reconcile-interval', '0', '--docker-socket', ''],
      env: { LEDGERNET_RUN_DIR: runDir },
    });
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await stopAllDaemons();
    await rm(root, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  });

  const open = (text: string) => openRaw(socket, text, clients);
  const reply = readToClose;

  it('256 connections without a whole request: the 257th is refused with a 503 that says why; once they go, calls are answered again', async () => {
    const partial = 'POST /NetworkDriver.Join HTTP/1.1\r\nContent-Length: 100\r\n\r\n{"a"';
    const held = [];
    for (let i = 0; i < 256; i++) held.push(await open(partial));
    const refused = await open(partial);
    assert.match(await reply(refused), /^HTTP\/1\.1 503 Service Unavailable\r\n[\s\S]*"Err":"ledgernet is already reading 256 requests that have not arrived whole, its limit[\s\S]*nothing was changed, try again"\}$/);
    for (const s of held) s.destroy();
    await new Promise((r) => setTimeout(r, 300));
    const later = await open(partial);
    assert.ok(!later.destroyed);
    later.destroy();
    const b = await pluginCall('NetworkDriver.GetCapabilities', undefined, socket, { timeoutMs: 10_000 });
    assert.equal(b.status, 200, b.text);
  });

  it("a body over the worker's limit is refused at its head, with the worker's Err, not after 8 MB were read and journaled", async () => {
    const size = 2 * BODY_LIMIT;
    const big = await open(`POST /NetworkDriver.CreateNetwork HTTP/1.1\r\nContent-Length: ${size}\r\n\r\n{"pad":"`);
    assert.match(await reply(big), new RegExp(`^HTTP/1\\.1 413 [\\s\\S]*"Err":"the request body is ${size} bytes, over the limit of ${BODY_LIMIT} bytes; nothing was changed"\\}$`));
  });
});
