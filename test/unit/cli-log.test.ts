// The CLI over a damaged log, as an operator meets it: `events verify` names the bad offset and
// exits 1; `serve` refuses to start on it (nothing is truncated or rewritten); a torn tail is
// reported as repairable and the daemon would cut it.
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { frame } from '../../src/events/log/framing.ts';
import { EventLog } from '../../src/events/log/log.ts';
import { LOG_FILE } from '../../src/events/log/read.ts';
import { ledgernetCli } from '../helpers/daemon.ts';
import { networkSpec } from '../helpers/events.ts';
import { byLedgernet } from '../../src/events/domain/cause.ts';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ln-cli-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function logWith(dir: string, n: number): Promise<string> {
  const { log } = await EventLog.open(dir, { host: 'h' });
  for (let i = 0; i < n; i++) await log.append([{ type: 'network.created', data: networkSpec(`${i}`.padEnd(64, 'd'), `10.${i}.0.0/24`, `10.${i}.0.1/24`) }]).durable;
  await log.close();
  return join(dir, LOG_FILE);
}

describe('CLI over the event log', () => {
  it('events verify: ok on a good log', async () => {
    const dir = join(root, 'good');
    await logWith(dir, 3);
    const r = await ledgernetCli(['events', 'verify', '--state-dir', dir]);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /ok: 3 events, hash chain intact/);
  });

  it('events verify names the offset of a damaged record; serve refuses to start and changes nothing', async () => {
    const dir = join(root, 'bad');
    const path = await logWith(dir, 3);
    const buf = await readFile(path);
    const second = 8 + buf.readUInt32BE(0);
    buf[second + 20] = (buf[second + 20] ?? 0) ^ 0x01;
    await writeFile(path, buf);
    const r = await ledgernetCli(['events', 'verify', '--state-dir', dir]);
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, new RegExp(`damaged at byte offset ${second}\\b.*LN_ERR_LOG_CORRUPT`));
    const s = await ledgernetCli(['serve', '--state-dir', dir, '--socket', join(dir, 'p.sock')]);
    assert.equal(s.exitCode, 1);
    assert.match(s.stderr, new RegExp(`damaged at byte offset ${second}`));
    assert.deepEqual(await readFile(path), buf, 'the damaged log is left exactly as it was');
  });

  it('a torn tail is reported by verify and cut back by the next writer', async () => {
    const dir = join(root, 'torn');
    const path = await logWith(dir, 2);
    await appendFile(path, frame('{"x":1}').subarray(0, 6));
    const r = await ledgernetCli(['events', 'verify', '--state-dir', dir]);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /ok: 2 events.*torn tail of 6 bytes/);
    const rc = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', dir]);
    assert.notEqual(rc.exitCode, 1, `a reader copes with a torn tail: ${rc.stderr}`);
  });

  it('events verify exits 1 when the snapshot covers events the log does not hold, naming both', async () => {
    const dir = join(root, 'ahead');
    const { openStore } = await import('../../src/events/log/open.ts');
    const { store } = await openStore(dir, { host: 'h' });
    for (let i = 0; i < 4; i++) await store.execute({ type: 'CreateNetwork', spec: networkSpec(`${i}`.padEnd(64, 'e'), `10.${i}.0.0/24`, `10.${i}.0.1/24`) }, byLedgernet('test'));
    await store.close();
    const path = join(dir, LOG_FILE);
    const buf = await readFile(path);
    await writeFile(path, buf.subarray(0, buf.length - 5)); // the last record's end is gone
    const r = await ledgernetCli(['events', 'verify', '--state-dir', dir]);
    assert.equal(r.exitCode, 1, r.stdout);
    assert.match(r.stderr, /snapshot covers events up to seq 4 .* holds only 3/);
  });
});
