// `ledgernet events | head -1`: the reader goes away while the CLI still writes. Unix tools stop
// quietly; so must ledgernet (no EPIPE stack trace, no error exit).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { EventLog } from '../../src/events/log/log.ts';
import { CLI_PATH } from '../helpers/daemon.ts';
import { networkSpec } from '../helpers/events.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ln-epipe-'));
  const { log } = await EventLog.open(dir, { host: 'h' });
  // ~200 KiB of output: far more than a pipe holds, so the writer meets the closed pipe.
  for (let i = 0; i < 400; i++) {
    const net = `10.${i % 250}.${Math.floor(i / 250)}`;
    await log.append([{ type: 'network.created', data: networkSpec(`${i}`.padEnd(64, 'd'), `${net}.0/24`, `${net}.1/24`) }]).durable;
  }
  await log.close();
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('CLI output into a closed pipe', () => {
  for (const args of [['events', '--json'], ['events'], ['status']]) {
    it(`ledgernet ${args.join(' ')} | head -1: one line, no stack trace, its usual exit`, async () => {
      const cmd = `set -o pipefail; node ${CLI_PATH} ${args.join(' ')} --state-dir ${dir} | head -1`;
      const r = await execa('bash', ['-c', cmd], { reject: false, timeout: 60_000 });
      assert.equal(r.stderr, '');
      assert.equal(r.stdout.split('\n').length, 1);
      // status exits 1 without a daemon (as it does unpiped); events exits 0.
      assert.equal(r.exitCode, args[0] === 'status' ? 1 : 0, r.stderr);
    });
  }
});
