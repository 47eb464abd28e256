// loadState (status, reconcile, release, repair without the daemon) folds a log no snapshot lines
// up with in parts (replayLog) instead of reading it and its archives whole: the state must be the
// one the whole-log reading folded (readLog, then fold), in parts of any size, and every refusal
// the same: damage in the middle of the log or of an archive (naming its offset), archives
// missing; a torn tail is folded up to it and left as it is (a reader repairs nothing).
import assert from 'node:assert/strict';
import { appendFile, cp, mkdtemp, open, readdir, readFile, rm, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { byLedgernet, emptyState, fold, loadState, LOG_START, openStore, readLog, readSnapshot } from '../../../src/events/index.ts';
import { ARCHIVE_DIR } from '../../../src/events/log/archive.ts';
import { replayScan } from '../../../src/events/log/read-parts.ts';
import { upcastState } from '../../../src/events/log/upcast.ts';
import { generateLog } from '../../../bench/offline/gen-log.ts';

const POOL = 'ledgernet/10.99.0.0/24';
const PARTS = [4096, 4099, 65_536, undefined];

/** What loadState folded before it read in parts: the whole log and its archives in one reading, then the fold. */
async function wholeFold(dir: string) {
  const r = await readLog(dir, LOG_START, { rehash: 'stored' });
  return { state: upcastState(fold(emptyState, r.events)).state, base: r.base, count: r.count, end: r.end.kind };
}

/** The message the whole-log reading refuses `dir` with. */
const wholeRefusal = (dir: string) =>
  readLog(dir, LOG_START, { rehash: 'stored' }).then(
    () => assert.fail('the whole-log reading took it'),
    (e: Error) => e.message,
  );

/** Addresses requested and released through the store (the events after an archive). */
async function churn(dir: string, n: number): Promise<void> {
  const { store } = await openStore(dir, { host: 'bench' });
  try {
    for (let i = 0; i < n; i++) {
      const [ev] = await store.execute({ type: 'RequestAddress', poolId: POOL, address: null, gateway: false, name: `x${i}` }, byLedgernet('test'));
      if (i % 50 !== 0 && ev?.type === 'address.requested') await store.execute({ type: 'ReleaseAddress', poolId: POOL, address: ev.data.address }, byLedgernet('test'));
    }
  } finally {
    await store.close();
  }
}

async function archive(dir: string): Promise<void> {
  const { store } = await openStore(dir, { host: 'bench' });
  await store.archive(byLedgernet('test'));
  await store.close();
}

let root: string;
let archived: string; // two archives and events.log, every archive here, no snapshot
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ln-load-parts-'));
  archived = join(root, 'archived');
  await generateLog(archived, 6000, { endpoints: 40 });
  await archive(archived);
  await churn(archived, 600);
  await archive(archived);
  await churn(archived, 600);
  await unlink(join(archived, 'snapshot.json')).catch(() => undefined);
});
after(() => rm(root, { recursive: true, force: true }));

describe('loadState folds in parts', () => {
  it('gives the state the whole-log fold gave, from a log with archives and no snapshot, in parts of any size', async () => {
    assert.equal((await readdir(join(archived, ARCHIVE_DIR))).length, 2);
    const want = await wholeFold(archived);
    assert.equal(want.base.seq, 0);
    assert.ok(want.count > 7000, String(want.count));
    for (const partBytes of PARTS) assert.deepEqual(await loadState(archived, partBytes), want.state, `parts of ${partBytes}`);
  });

  it('refuses a damaged record in the middle of the log or of an archive with the same message, naming its offset', async () => {
    const dir = join(root, 'damaged');
    const oldest = (await readdir(join(archived, ARCHIVE_DIR))).sort()[0] ?? '';
    for (const file of ['events.log', join(ARCHIVE_DIR, oldest)]) {
      await rm(dir, { recursive: true, force: true });
      await cp(archived, dir, { recursive: true });
      const path = join(dir, file);
      const bad = await readFile(path);
      const at = Math.floor(bad.length / 2);
      bad.writeUInt8(bad.readUInt8(at) ^ 0x01, at);
      await writeFile(path, bad);
      const want = await wholeRefusal(dir);
      assert.match(want, /damaged at byte offset \d+/);
      for (const partBytes of PARTS) await assert.rejects(loadState(dir, partBytes), { message: want }, `${file}, parts of ${partBytes}`);
    }
  });

  it('refuses archives missing with the same message', async () => {
    const dir = join(root, 'missing');
    await cp(archived, dir, { recursive: true });
    const oldest = (await readdir(join(dir, ARCHIVE_DIR))).sort()[0] ?? '';
    await unlink(join(dir, ARCHIVE_DIR, oldest));
    const want = await wholeRefusal(dir);
    assert.match(want, /are not in .*put the archive files back/);
    await assert.rejects(loadState(dir, 4096), { message: want });
  });

  it('folds up to a torn tail as before and leaves the file as it is', async () => {
    const dir = join(root, 'torn');
    await cp(archived, dir, { recursive: true });
    const path = join(dir, 'events.log');
    // Half a record at the end (a crash mid-write: the first 60 bytes of a record).
    await appendFile(path, (await readFile(path)).subarray(0, 60));
    const size = (await stat(path)).size;
    const want = await wholeFold(dir);
    assert.equal(want.end, 'torn');
    for (const partBytes of PARTS) assert.deepEqual(await loadState(dir, partBytes), want.state, `parts of ${partBytes}`);
    assert.equal((await stat(path)).size, size);
    assert.deepEqual((await readdir(dir)).filter((f) => f.includes('torn')), []);
  });

  it('a log cut short after its size was read (a writer recovering from a failed write) ends where the file ends, as a whole reading does', async () => {
    const path = join(archived, 'events.log');
    const real = await open(path, 'r');
    try {
      const size = (await real.stat()).size;
      // As if the writer cut 5,000 bytes of a failed write after this reader stat'ed the file.
      const stale = { stat: async () => ({ size: size + 5000 }), read: real.read.bind(real), close: async () => undefined } as unknown as FileHandle;
      const want = await wholeFold(archived);
      for (const partBytes of [4096, 65_536]) {
        let state = emptyState;
        const res = await Promise.race([
          replayScan(stale, LOG_START, { rehash: 'stored', keep: 1, partBytes, consume: () => (ev) => void (state = fold(state, [ev])) }, archived),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the reading did not end')), 20_000).unref()),
        ]);
        assert.equal(res.end.kind, 'clean');
        assert.equal(res.count, want.count);
        assert.deepEqual(upcastState(state).state, want.state);
      }
    } finally {
      await real.close();
    }
  });

  it('openStore in parts (a command alone): the state, position and repaired tail of the whole reading; damage refused the same', async () => {
    const opened = async (dir: string, partBytes?: number) => {
      const r = await openStore(dir, { host: 'bench' }, {}, 1, partBytes);
      await r.store.close(); // writes a snapshot at the position it would append after
      const snap = await readSnapshot(dir);
      await unlink(join(dir, 'snapshot.json'));
      const log = await readFile(join(dir, 'events.log'));
      const kept = (await readdir(dir)).filter((f) => f.includes('torn'));
      return { state: r.state, replayed: r.replayed, repaired: r.repaired && { ...r.repaired, keptAs: r.repaired.keptAs.slice(dir.length) }, snap, log, kept };
    };
    for (const torn of [false, true]) {
      const src = join(root, `store-${torn}`);
      await cp(archived, src, { recursive: true });
      if (torn) await appendFile(join(src, 'events.log'), (await readFile(join(src, 'events.log'))).subarray(0, 60));
      const whole = join(root, `store-${torn}-whole`);
      await cp(src, whole, { recursive: true });
      const want = await opened(whole);
      assert.equal(want.repaired !== null, torn);
      assert.ok(want.snap && want.snap.seq > 7000);
      for (const partBytes of [4096, 65_536]) {
        const dir = join(root, `store-${torn}-${partBytes}`);
        await cp(src, dir, { recursive: true });
        assert.deepEqual(await opened(dir, partBytes), want, `torn ${torn}, parts of ${partBytes}`);
      }
    }
    const dir = join(root, 'store-damaged');
    await cp(archived, dir, { recursive: true });
    const bad = await readFile(join(dir, 'events.log'));
    bad.writeUInt8(bad.readUInt8(Math.floor(bad.length / 2)) ^ 0x01, Math.floor(bad.length / 2));
    await writeFile(join(dir, 'events.log'), bad);
    const want = await openStore(dir, { host: 'bench' }).then(
      () => assert.fail('the whole reading took it'),
      (e: Error) => e.message,
    );
    await assert.rejects(openStore(dir, { host: 'bench' }, {}, 1, 4096), { message: want });
  });
});
