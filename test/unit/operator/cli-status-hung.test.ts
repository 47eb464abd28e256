// `ledgernet status` when the daemon is stopped (SIGSTOP) or wedged: its control socket accepts
// connections (the kernel's backlog) but nobody answers. status must give up after a few seconds,
// say the daemon does not answer, and exit non-zero; it hung forever. What only the daemon knows
// (its NATS publisher) is unknown then, not off.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { controlSocket } from '../../../src/config.ts';
import { EventLog } from '../../../src/events/index.ts';
import { runCli } from '../../helpers/cli.ts';

let dir: string;
let server: Server;
const held: Socket[] = [];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ln-status-hung-'));
  const { log } = await EventLog.open(dir, { host: 'h' });
  await log.close();
  // Accepts and never answers, as a SIGSTOPped daemon's socket does.
  server = createServer((s) => void held.push(s));
  await new Promise<void>((r) => server.listen(controlSocket(dir), r));
});
after(async () => {
  for (const s of held) s.destroy();
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

describe('status with a daemon that does not answer', () => {
  for (const json of [false, true]) {
    it(`ledgernet status${json ? ' --json' : ''}: gives up within seconds, exit 1, says the daemon does not answer`, async () => {
      const t0 = Date.now();
      const r = await runCli(['status', ...(json ? ['--json'] : []), '--state-dir', dir], { isolated: true, timeoutMs: 40_000 });
      assert.ok(Date.now() - t0 < 30_000, 'no hang');
      assert.equal(r.exitCode, 1, `${r.stdout}\n${r.stderr}`);
      if (json) assert.match(JSON.parse(r.stdout).daemonError, /does not answer/);
      else {
        assert.match(r.stdout, /daemon: NOT ANSWERING: .*control\.sock.* does not answer within 5 s/);
        // Only the daemon knows whether it publishes: not "off".
        assert.match(r.stdout, /^log: .*; NATS publisher unknown \(daemon not answering\); /m);
      }
    });
  }
});
