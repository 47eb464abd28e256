import assert from 'node:assert/strict';
import { constants } from 'node:fs';
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { link, mkdtemp, readdir, readFile, readlink, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fold } from '../../../src/events/domain/evolve.ts';
import { LOG_FILE, LOG_START, readLog, readLogPart } from '../../../src/events/log/read.ts';
import { loadState, openStore } from '../../../src/events/log/open.ts';
import { SNAPSHOT_FILE, readSnapshot } from '../../../src/events/log/snapshot.ts';
import { ARCHIVE_DIR, archiveFiles, listArchives } from '../../../src/events/log/archive.ts';
import { emptyState } from '../../../src/events/domain/types.ts';
import { LogParts } from '../../../src/events/audit/log-parts.ts';
import { networkSpec } from '../../helpers/events.ts';
import { byLedgernet } from '../../../src/events/domain/cause.ts';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ln-archive-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const id = (i: number) => `${i}`.padEnd(64, 'a');

/** Creates networks from..to-1 (one event each) through a store on `dir`; archives after them when asked. */
async function write(dir: string, from: number, to: number, archive = false) {
  const { store } = await openStore(dir, { host: 'h' }, { snapshotEvery: 0 });
  for (let i = from; i < to; i++) await store.execute({ type: 'CreateNetwork', spec: networkSpec(id(i), `10.${i}.0.0/24`, `10.${i}.0.1/24`) }, byLedgernet('test'));
  const archived = archive ? await store.archive(byLedgernet('test')) : null;
  await store.close();
  return archived;
}

/** The state a replay of every event from the first (archives included) gives. */
async function fullFold(dir: string) {
  return fold(emptyState, (await readLog(dir)).events);
}

describe('archiving the event log', () => {
  it('moves the events into archive/ whole, and the log goes on from the next seq with the chain unbroken', async () => {
    const dir = join(root, 'basic');
    await write(dir, 0, 30);
    const before = await readFile(join(dir, LOG_FILE));
    const archived = await write(dir, 30, 40, true);
    assert.deepEqual({ ...archived, file: archived?.file.replace(dir, '') }, { file: `/${ARCHIVE_DIR}/events-000000000001-000000000040.log`, first: 1, last: 40, bytes: archived?.bytes });
    // The archive is the old file, byte for byte: nothing is rewritten.
    assert.deepEqual((await readFile(archived?.file ?? '')).subarray(0, before.length), before);
    assert.ok((await stat(join(dir, LOG_FILE))).size < 1000, 'events.log holds only its start record and the archive\'s record');
    await write(dir, 40, 45);
    const all = (await readLog(dir)).events;
    assert.deepEqual(all.map((e) => e.seq), Array.from({ length: 46 }, (_, i) => i + 1));
    // The new file's first event records the archive, who made it, and links to the last archived event.
    assert.deepEqual([all[40]?.type, all[40]?.data, all[40]?.cause], ['log.archived', { first: 1, last: 40, archive: `${ARCHIVE_DIR}/events-000000000001-000000000040.log`, bytes: archived?.bytes }, { by: 'ledgernet', what: 'test' }]);
    assert.equal(all[40]?.prevhash, all[39]?.hash, 'event 41 links to the last archived event');
    // A start uses the snapshot the archive wrote (and the one close wrote since): it reads no archive.
    const { state, store, fromSnapshotSeq } = await openStore(dir, { host: 'h' });
    await store.close();
    assert.equal(fromSnapshotSeq, 46);
    assert.equal(Object.keys(state.networks).length, 45);
    assert.deepEqual(state, await fullFold(dir));
  });

  it('without a snapshot, a start replays the archives and then the log; with an archive gone it refuses and names what is missing', async () => {
    const dir = join(root, 'replay');
    await write(dir, 0, 10, true);
    await write(dir, 10, 20, true);
    await write(dir, 20, 25);
    assert.equal((await listArchives(dir)).length, 2);
    const want = await fullFold(dir);
    await unlink(join(dir, SNAPSHOT_FILE));
    const { state, store, replayed } = await openStore(dir, { host: 'h' });
    await store.close();
    assert.equal(replayed, 27, '25 networks and 2 log.archived');
    assert.deepEqual(state, want);
    // Take the oldest archive away: with a snapshot a start still works (it needs no archive) …
    const [oldest] = await listArchives(dir);
    const oldPath = join(dir, ARCHIVE_DIR, oldest?.name ?? '');
    const kept = await readFile(oldPath);
    await unlink(oldPath);
    assert.equal(Object.keys((await loadState(dir)).networks).length, 25);
    // … a reader that shows history reads back as far as the archives go, and says from where …
    const present = await readLog(dir, LOG_START, { archives: 'present' });
    assert.equal(present.base.seq, 10);
    assert.deepEqual(present.events.map((e) => e.seq), Array.from({ length: 17 }, (_, i) => i + 11));
    // … and without a snapshot the state cannot be rebuilt: refused, naming the events and the folder.
    await unlink(join(dir, SNAPSHOT_FILE));
    await assert.rejects(openStore(dir, { host: 'h' }), (e: Error) => {
      assert.match(e.message, /continues after event 21 .*events 1 to 10 are not in .*archive: put the archive files back/);
      return true;
    });
    await writeFile(oldPath, kept);
    const again = await openStore(dir, { host: 'h' });
    await again.store.close();
    assert.deepEqual(again.state, want);
  });

  it('a damaged archive is damage, named by file and offset, not a torn tail', async () => {
    const dir = join(root, 'damaged');
    await write(dir, 0, 8, true);
    await write(dir, 8, 10);
    const [a] = await listArchives(dir);
    const path = join(dir, ARCHIVE_DIR, a?.name ?? '');
    const buf = await readFile(path);
    buf.writeUInt8(buf.readUInt8(buf.length - 5) ^ 0x20, buf.length - 5); // a byte inside the last archived event
    await writeFile(path, buf);
    await assert.rejects(readLog(dir), /archived events .*events-000000000001-000000000008\.log are damaged .*byte offset \d+/);
    // Cut short, it is damage too (it was complete when archived).
    buf.writeUInt8(buf.readUInt8(buf.length - 5) ^ 0x20, buf.length - 5);
    await writeFile(path, buf.subarray(0, buf.length - 3));
    await assert.rejects(readLog(dir), /are damaged .*cut short/);
  });

  it('a damaged start record is damage, never a torn tail that would leave an empty log', async () => {
    const dir = join(root, 'start');
    await write(dir, 0, 5, true);
    const path = join(dir, LOG_FILE);
    const good = await readFile(path);
    for (const [what, at, bit] of [['length', 1, 0x40], ['payload', 20, 0x02]] as const) {
      const bad = Buffer.from(good);
      bad.writeUInt8(bad.readUInt8(at) ^ bit, at);
      await writeFile(path, bad);
      for (const snapshot of [true, false]) {
        if (!snapshot) await rename(join(dir, SNAPSHOT_FILE), join(dir, 'snap.kept'));
        await assert.rejects(openStore(dir, { host: 'h' }), /damaged at byte offset 0 .*holds archived events .*does not continue them/, `${what}, snapshot ${snapshot}`);
        if (!snapshot) await rename(join(dir, 'snap.kept'), join(dir, SNAPSHOT_FILE));
      }
      assert.deepEqual(await readFile(path), bad, `${what}: nothing was cut`);
    }
    await writeFile(path, good);
    const { store } = await openStore(dir, { host: 'h' });
    await store.close();
  });

  it('a single-byte change of an archived log (every byte of events.log, every 4th of its archive) is refused or opens every event', async () => {
    const dir = join(root, 'every-byte');
    await write(dir, 0, 12, true);
    await write(dir, 12, 15);
    const want = (await readLog(dir)).events.map((e) => `${e.seq}:${e.hash}`);
    assert.equal(want.length, 16, '15 networks and the archive\'s record');
    const [a] = await listArchives(dir);
    let refused = 0;
    for (const [path, step] of [[join(dir, LOG_FILE), 1], [join(dir, ARCHIVE_DIR, a?.name ?? ''), 4]] as const) {
      const good = await readFile(path);
      for (let pos = 0; pos < good.length; pos += step) {
        const bad = Buffer.from(good);
        bad.writeUInt8(bad.readUInt8(pos) ^ 0x01, pos);
        await writeFile(path, bad);
        const r = await readLog(dir).then(
          (x) => x,
          (e: Error) => e,
        );
        if (r instanceof Error) {
          assert.match(r.message, /damaged/, `${path} byte ${pos}`);
          refused++;
        } else {
          assert.deepEqual(r.events.map((e) => `${e.seq}:${e.hash}`), want, `${path} byte ${pos}: opened, but not every event`);
        }
      }
      await writeFile(path, good);
    }
    assert.ok(refused > 0);
  });

  it('an archive that does not link to the log is refused', async () => {
    const dir = join(root, 'foreign');
    const other = join(root, 'foreign-other');
    await write(dir, 0, 6, true);
    await write(other, 0, 6, true);
    const [a] = await listArchives(dir);
    // Another log's archive of the same seqs under the same name: its last hash is not the one the log continues from.
    await writeFile(join(dir, ARCHIVE_DIR, a?.name ?? ''), await readFile(join(other, ARCHIVE_DIR, a?.name ?? '')).then((b) => Buffer.from(b.toString().replaceAll('10.0.0', '10.9.0'))));
    await assert.rejects(readLog(dir), /damaged|does not link/);
  });

  it('a crash at any step leaves a log that opens to the same state, and the next start removes the leftovers', async () => {
    const dir = join(root, 'crash');
    await write(dir, 0, 12);
    const want = await fullFold(dir);
    const { store } = await openStore(dir, { host: 'h' });
    const head = { seq: want.seq, hash: want.hash };
    // Cut right before the swap: the archive link, events.log.next and the new snapshot are there, the old log too.
    await assert.rejects(
      archiveFiles(dir, join(dir, LOG_FILE), 0, head, async (startBytes) => {
        const { writeSnapshot } = await import('../../../src/events/log/snapshot.ts');
        await writeSnapshot(dir, { seq: head.seq, hash: head.hash, offset: startBytes, recordOffset: 0, state: want });
        await link(join(dir, LOG_FILE), join(dir, 'keep-as-if-crashed'));
        throw new Error('killed');
      }),
      /archiving the event log failed: killed; nothing was moved/,
    );
    await store.close();
    // What a crash (not an error) would have left: the archive link too.
    await link(join(dir, LOG_FILE), join(dir, ARCHIVE_DIR, 'events-000000000001-000000000012.log'));
    await writeFile(join(dir, `${LOG_FILE}.next`), 'partial');
    await writeFile(join(dir, SNAPSHOT_FILE), JSON.stringify({ ...(await readSnapshot(dir)), offset: 50, recordOffset: 0 }));
    const { state, store: s2 } = await openStore(dir, { host: 'h' });
    await s2.close();
    assert.deepEqual(state, want);
    assert.deepEqual(await readdir(join(dir, ARCHIVE_DIR)), [], 'the link that was still events.log is gone');
    assert.ok(!(await readdir(dir)).includes(`${LOG_FILE}.next`));
    await unlink(join(dir, 'keep-as-if-crashed'));
  });

  /** Runs `body` with one of node:fs/promises' functions wrapped (the modules that imported it see the wrapper). */
  async function withFs<K extends 'rename' | 'open'>(name: K, wrap: (orig: (typeof fsp)[K]) => (typeof fsp)[K], body: () => Promise<void>): Promise<void> {
    const orig = fsp[name];
    fsp[name] = wrap(orig);
    syncBuiltinESMExports();
    try {
      await body();
    } finally {
      fsp[name] = orig;
      syncBuiltinESMExports();
    }
  }

  it('cut off between its snapshot and the swap, with the older archives deleted: the start uses the snapshot in the old file', async () => {
    const dir = join(root, 'cut-retained');
    await write(dir, 0, 10, true);
    for (const f of await readdir(join(dir, ARCHIVE_DIR))) await unlink(join(dir, ARCHIVE_DIR, f)); // retention, as the README allows
    await write(dir, 10, 20);
    const want = await loadState(dir);
    const { store } = await openStore(dir, { host: 'h' }, { snapshotEvery: 0 });
    // The rename that would make the new log events.log never happens (a crash there).
    await withFs('rename', (orig) => async (a, b) => (String(a).endsWith('.next') ? Promise.reject(new Error('killed')) : orig(a, b)), async () => {
      await assert.rejects(store.archive(byLedgernet('test')), /archiving the event log failed: killed; nothing was moved/);
    });
    await store.close();
    const snap = await readSnapshot(dir);
    assert.equal(snap?.seq, want.seq);
    const { state, fromSnapshotSeq, replayed, store: s2 } = await openStore(dir, { host: 'h' }, { snapshotEvery: 0 });
    await s2.close();
    assert.equal(fromSnapshotSeq, want.seq, 'the snapshot lines up with the old file');
    assert.equal(replayed, 0);
    assert.deepEqual(state, want);
  });

  it("a failed fsync of the state dir after the swap refuses every later append (they could be lost); the restart has every acknowledged event", async () => {
    const dir = join(root, 'unsynced');
    await write(dir, 0, 10);
    const { store } = await openStore(dir, { host: 'h' }, { snapshotEvery: 0 });
    let swapped = false;
    await withFs('rename', (orig) => async (a, b) => {
      await orig(a, b);
      if (String(a).endsWith(`${LOG_FILE}.next`)) swapped = true;
    }, () =>
      withFs('open', (orig) => async (p, flags, mode) => {
        if (swapped && p === dir) {
          swapped = false;
          throw Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' });
        }
        return orig(p, flags, mode);
      }, async () => {
        await assert.rejects(store.archive(byLedgernet('test')), new RegExp(`the event log was archived but ${dir} cannot be synced: EIO: i/o error, fsync; restart ledgernet`));
      }),
    );
    await assert.rejects(store.execute({ type: 'CreateNetwork', spec: networkSpec(id(10), '10.10.0.0/24', '10.10.0.1/24') }, byLedgernet('test')), /cannot be synced/);
    await store.close().catch(() => undefined);
    const { state, store: s2 } = await openStore(dir, { host: 'h' }, { snapshotEvery: 0 });
    assert.equal(state.seq, 10);
    assert.equal(Object.keys(state.networks).length, 10);
    // Appends go on in the new log, after the archived events.
    await s2.execute({ type: 'CreateNetwork', spec: networkSpec(id(10), '10.10.0.0/24', '10.10.0.1/24') }, byLedgernet('test'));
    await s2.close();
    assert.deepEqual((await readLog(dir)).events.map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert.equal((await openStore(dir, { host: 'h' }).then(async (o) => (await o.store.close(), o.state))).seq, 11);
  });

  it('appends made while an archive runs wait and land in the new log; nothing new: nothing archived', async () => {
    const dir = join(root, 'busy');
    const { store } = await openStore(dir, { host: 'h' }, { snapshotEvery: 0 });
    for (let i = 0; i < 5; i++) await store.execute({ type: 'CreateNetwork', spec: networkSpec(id(i), `10.${i}.0.0/24`, `10.${i}.0.1/24`) }, byLedgernet('test'));
    const archiving = store.archive(byLedgernet('test'));
    const during = Promise.all([5, 6, 7].map((i) => store.execute({ type: 'CreateNetwork', spec: networkSpec(id(i), `10.${i}.0.0/24`, `10.${i}.0.1/24`) }, byLedgernet('test'))));
    const [archived] = await Promise.all([archiving, during]);
    assert.equal(archived?.last, 5);
    assert.equal(store.lastSeq, 9, 'the three calls made meanwhile, then the archive\'s record');
    assert.equal(await store.archive(byLedgernet('test')).then((a) => a?.first), 6);
    assert.equal(await store.archive(byLedgernet('test')), null, 'nothing since the last archive but its record');
    await store.close();
    const events = (await readLog(dir)).events;
    assert.deepEqual(events.map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.deepEqual(events.filter((e) => e.type === 'log.archived').map((e) => [e.seq, e.data]), [
      [9, { first: 1, last: 5, archive: `${ARCHIVE_DIR}/events-000000000001-000000000005.log`, bytes: archived?.bytes }],
      [10, { first: 6, last: 9, archive: `${ARCHIVE_DIR}/events-000000000006-000000000009.log`, bytes: events.at(-1)?.type === 'log.archived' ? (events.at(-1)?.data as { bytes: number }).bytes : -1 }],
    ]);
  });

  it("the outbox's reader goes on after an archive, from the new log when the cursor is past the archive", async () => {
    const dir = join(root, 'outbox');
    await write(dir, 0, 6, true);
    await write(dir, 6, 9);
    const parts = new LogParts(dir, 2);
    assert.deepEqual((await parts.after(6, 10)).map((e) => e.seq), [7, 8]);
    assert.deepEqual((await parts.after(8, 10)).map((e) => e.seq), [9, 10]);
    // Behind the archive: read from the archive, in order.
    assert.deepEqual((await new LogParts(dir, 100).after(3, 10)).map((e) => e.seq), [4, 5, 6, 7, 8, 9, 10]);
    const part = await readLogPart(dir, LOG_START, 2);
    assert.equal(part.events[0]?.seq, 1);
  });

  it("the outbox's reader of a backlog that reaches into the archives: at most max events a part, each file read on from where the last part stopped, no archive before the cursor's", async () => {
    const dir = join(root, 'outbox-backlog');
    await write(dir, 0, 100, true); // archive 1-100, event 101 records it
    await write(dir, 100, 199, true); // archive 101-200, event 201 records it
    await write(dir, 199, 209); // 202-211 in events.log
    const head = 211;
    const parts = new LogParts(dir, 4);
    const seen: number[] = [];
    for (let cursor = 0; cursor < head; ) {
      const got = (await parts.after(cursor, head)).map((e) => e.seq);
      assert.ok(got.length > 0 && got.length <= 4, `${got.length} events after ${cursor}`);
      assert.equal(got[0], cursor + 1);
      seen.push(...got);
      cursor = got.at(-1)!;
    }
    assert.deepEqual(seen, Array.from({ length: head }, (_, i) => i + 1));
    // Published up to 150, the operator deletes the first archive: the rest is still read.
    const first = (await listArchives(dir))[0]!;
    await rm(join(dir, ARCHIVE_DIR, first.name));
    const after150 = new LogParts(dir, 4);
    assert.deepEqual((await after150.after(150, head)).map((e) => e.seq), [151, 152, 153, 154]);
    assert.deepEqual((await after150.after(154, head)).map((e) => e.seq), [155, 156, 157, 158]);
    assert.deepEqual((await after150.after(198, head)).map((e) => e.seq), [199, 200, 201, 202], 'across the archive into events.log');
    // Events not published whose archive is gone are named.
    await assert.rejects(new LogParts(dir, 4).after(50, head), /events 51 to 100 of the log were archived and no file of .*archive holds them \(deleted or moved before they were published\?\)/);
  });
});

/** The open flags (octal, from /proc/self/fdinfo) of this process's descriptors of `path`. */
async function openFlags(path: string): Promise<number[]> {
  const out: number[] = [];
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target !== path) continue;
    const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8').catch(() => '');
    const m = /^flags:\s*([0-7]+)/m.exec(info);
    if (m?.[1]) out.push(parseInt(m[1], 8));
  }
  return out;
}

describe('durable appends', () => {
  it('the log is written through a descriptor opened O_DSYNC (an answer waits for its batch on disk), also after an archive', async () => {
    const dir = join(root, 'dsync');
    const { store } = await openStore(dir, { host: 'h' }, { snapshotEvery: 0 });
    try {
      const path = join(dir, LOG_FILE);
      for (const when of ['after open', 'after an archive']) {
        await store.execute({ type: 'CreateNetwork', spec: networkSpec(id(when.length), `10.${when.length}.0.0/24`, `10.${when.length}.0.1/24`) }, byLedgernet('test'));
        const flags = await openFlags(path);
        assert.equal(flags.length, 1, `${when}: one descriptor of ${LOG_FILE} (${flags.length})`);
        assert.ok(((flags[0] ?? 0) & constants.O_DSYNC) !== 0, `${when}: ${LOG_FILE} open without O_DSYNC (flags 0${(flags[0] ?? 0).toString(8)})`);
        assert.ok(((flags[0] ?? 0) & constants.O_APPEND) !== 0, `${when}: ${LOG_FILE} open without O_APPEND`);
        if (when === 'after open') assert.ok(await store.archive(byLedgernet('test')));
      }
    } finally {
      await store.close();
    }
  });
});
