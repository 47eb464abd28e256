// A state dir written by a newer ledgernet, read by this one (a downgrade): an event type or
// version, or a snapshot format, this version does not know is never called damage (an operator
// told to restore a backup would lose real events): the start, loadState and `events verify`
// refuse it as LN_ERR_LOG_NEWER, naming what and where (the offset in the file, also when the
// start reads from a snapshot), and change nothing.
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DriverError } from '../../../src/errors.ts';
import { frame, unframe } from '../../../src/events/log/framing.ts';
import { sealEvent } from '../../../src/events/log/hash.ts';
import { loadState, openStore } from '../../../src/events/log/open.ts';
import { LOG_FILE, readLog } from '../../../src/events/log/read.ts';
import { SNAPSHOT_FILE } from '../../../src/events/log/snapshot.ts';
import { byLedgernet } from '../../../src/events/domain/cause.ts';
import type { StoredEvent } from '../../../src/events/domain/types.ts';
import { runCli } from '../../helpers/cli.ts';
import { networkSpec } from '../../helpers/events.ts';

let root: string;
let runDir: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ln-upgrades-'));
  runDir = await mkdtemp(join(tmpdir(), 'ln-upgrades-run-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(runDir, { recursive: true, force: true });
});

let n = 0;
const net = (i: number) => `${i}`.padStart(2, '0').padEnd(64, 'c');

/** A state dir with `count` networks and a snapshot (written at close). */
async function stateDir(count: number): Promise<string> {
  const dir = join(root, `s${n++}`);
  const { store } = await openStore(dir, { host: 'h' });
  for (let i = 0; i < count; i++) await store.execute({ type: 'CreateNetwork', spec: networkSpec(net(i), `10.66.${i}.0/24`, `10.66.${i}.1/24`) }, byLedgernet('test'));
  await store.close();
  return dir;
}

async function records(dir: string): Promise<{ events: StoredEvent[]; offsets: number[]; size: number }> {
  const buf = await readFile(join(dir, LOG_FILE));
  const { frames } = unframe(buf);
  return { events: frames.map((f) => JSON.parse(f.payload) as StoredEvent), offsets: frames.map((f) => f.offset), size: buf.length };
}

/** Appends an intact, chained record as a newer ledgernet would write it; returns its offset. */
async function appendFuture(dir: string, type: string, v: number, data: unknown = { something: 'new' }): Promise<number> {
  const { events, size } = await records(dir);
  const last = events.at(-1)!;
  const base = { type, v, seq: last.seq + 1, id: `h:${last.seq + 1}`, host: 'h', at: new Date().toISOString(), prevhash: last.hash, cause: { by: 'ledgernet', what: 'future' }, data };
  await appendFile(join(dir, LOG_FILE), frame(sealEvent(base as unknown as Omit<StoredEvent, 'hash'>).payload));
  return size;
}

const newer = (what: RegExp, offset: number) => (e: DriverError) =>
  e.code === 'LN_ERR_LOG_NEWER' &&
  /written by a newer ledgernet/.test(e.message) &&
  what.test(e.message) &&
  e.message.includes(`at byte offset ${offset})`) &&
  /run that version or a newer one; nothing was changed$/.test(e.message) &&
  !/backup|damaged/.test(e.message);

describe('a log written by a newer ledgernet', () => {
  for (const [name, type, v, what] of [
    ['an event type this version does not know', 'network.rebalanced', 1, /event type network\.rebalanced version 1, a type this ledgernet does not know/],
    ['a known type at a version above the one this version reads', 'network.created', 2, /event type network\.created version 2; this ledgernet reads it up to version 1/],
  ] as const) {
    it(`${name}: start, loadState and events verify refuse it as newer, at its offset in the file, and change nothing`, async () => {
      const dir = await stateDir(3);
      const offset = await appendFuture(dir, type, v);
      const log = await readFile(join(dir, LOG_FILE));
      const snap = await readFile(join(dir, SNAPSHOT_FILE));
      // The start reads from the snapshot (the record of event 3 on): the offset is still the file's.
      await assert.rejects(openStore(dir, { host: 'h' }), newer(what, offset));
      await assert.rejects(loadState(dir), newer(what, offset));
      await assert.rejects(readLog(dir), newer(what, offset));
      const verify = await runCli(['events', 'verify', '--state-dir', dir], { isolated: true, env: { LEDGERNET_RUN_DIR: runDir } });
      assert.equal(verify.exitCode, 1);
      assert.match(verify.stderr, /written by a newer ledgernet .*run that version or a newer one; nothing was changed \(LN_ERR_LOG_NEWER\)/);
      assert.doesNotMatch(verify.stderr, /backup|damaged/);
      assert.ok(verify.stderr.includes(`at byte offset ${offset})`), verify.stderr);
      assert.deepEqual(await readFile(join(dir, LOG_FILE)), log);
      assert.deepEqual(await readFile(join(dir, SNAPSHOT_FILE)), snap);
    });
  }

  it('the same record with a changed byte (its hash no longer matches) is damage, as before', async () => {
    const dir = await stateDir(2);
    const { events, size } = await records(dir);
    const last = events.at(-1)!;
    const base = { type: 'network.rebalanced', v: 1, seq: last.seq + 1, id: `h:${last.seq + 1}`, host: 'h', at: new Date().toISOString(), prevhash: last.hash, data: {} };
    const { payload } = sealEvent(base as unknown as Omit<StoredEvent, 'hash'>);
    await appendFile(join(dir, LOG_FILE), frame(payload.replace('"data":{}', '"data":{"x":1}')));
    await assert.rejects(openStore(dir, { host: 'h' }), (e: DriverError) => e.code === 'LN_ERR_LOG_CORRUPT' && e.message.includes(`damaged at byte offset ${size} `));
  });

  it('a damage message from a start that reads from a snapshot names the offset in the file', async () => {
    const dir = await stateDir(3);
    // Event 4 claims a type no version knows and a version below 1: damage, not a newer ledgernet.
    const { events, size } = await records(dir);
    const last = events.at(-1)!;
    const base = { type: 'network.created', v: 0, seq: last.seq + 1, id: `h:${last.seq + 1}`, host: 'h', at: new Date().toISOString(), prevhash: last.hash, data: {} };
    await appendFile(join(dir, LOG_FILE), frame(sealEvent(base as unknown as Omit<StoredEvent, 'hash'>).payload));
    await assert.rejects(openStore(dir, { host: 'h' }), (e: DriverError) => e.code === 'LN_ERR_LOG_CORRUPT' && e.message.includes(`record at offset ${size} (network.created) has version 0`));
  });

  it('a snapshot of a newer format: start and loadState refuse as newer, events verify says the same, nothing is changed', async () => {
    const dir = await stateDir(2);
    const path = join(dir, SNAPSHOT_FILE);
    const text = await readFile(path, 'utf8');
    const json = text.slice(0, text.indexOf('\nsha256:'));
    const { hash } = await import('node:crypto');
    const future = json.replace('"format":1,', '"format":2,');
    assert.notEqual(future, json);
    await writeFile(path, `${future}\nsha256:${hash('sha256', future)}\n`);
    const before = await readFile(path);
    const what = (e: DriverError) => e.code === 'LN_ERR_LOG_NEWER' && e.message.includes(`${path} was written by a newer ledgernet (snapshot format 2; this ledgernet reads format 1)`) && !/backup/.test(e.message);
    await assert.rejects(openStore(dir, { host: 'h' }), what);
    await assert.rejects(loadState(dir), what);
    const verify = await runCli(['events', 'verify', '--state-dir', dir], { isolated: true, env: { LEDGERNET_RUN_DIR: runDir } });
    assert.equal(verify.exitCode, 1);
    assert.match(verify.stderr, /snapshot\.json was written by a newer ledgernet \(snapshot format 2.*nothing was changed \(LN_ERR_LOG_NEWER\)/);
    assert.doesNotMatch(verify.stderr, /backup|damaged/);
    assert.deepEqual(await readFile(path), before);
  });
});
