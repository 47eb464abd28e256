import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fold } from '../../../src/events/domain/evolve.ts';
import { frame } from '../../../src/events/log/framing.ts';
import { LOG_FILE, readLog } from '../../../src/events/log/read.ts';
import { loadState, openStore } from '../../../src/events/log/open.ts';
import { SNAPSHOT_FILE, loadSnapshot, readSnapshot, writeSnapshot } from '../../../src/events/log/snapshot.ts';
import { emptyState } from '../../../src/events/domain/types.ts';
import { networkSpec } from '../../helpers/events.ts';
import { byLedgernet } from '../../../src/events/domain/cause.ts';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ln-snap-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const id = (i: number) => `${i}`.padEnd(64, 'c');

async function writeNetworks(dir: string, from: number, to: number, snapshotEvery: number): Promise<void> {
  const { store } = await openStore(dir, { host: 'h' }, { snapshotEvery });
  for (let i = from; i < to; i++) await store.execute({ type: 'CreateNetwork', spec: networkSpec(id(i), `10.${i}.0.0/24`, `10.${i}.0.1/24`) }, byLedgernet('test'));
  await store.close();
}

async function fullFold(dir: string) {
  return fold(emptyState, (await readLog(dir)).events);
}

describe('snapshots', () => {
  it('are written every N events and at close, and replay starts from them', async () => {
    const dir = join(root, 'every');
    await writeNetworks(dir, 0, 25, 10);
    assert.equal((await readSnapshot(dir))?.seq, 25, 'close writes a final snapshot');
    const { state, replayed, fromSnapshotSeq, store } = await openStore(dir, { host: 'h' });
    await store.close();
    assert.equal(fromSnapshotSeq, 25);
    assert.equal(replayed, 0);
    assert.deepEqual(state, await fullFold(dir));
    assert.deepEqual(await loadState(dir), state);
  });

  it('replay reads only the records after the snapshot, and the result equals a full replay', async () => {
    const dir = join(root, 'tail');
    await writeNetworks(dir, 0, 5, 0);
    const snap = await readSnapshot(dir);
    await writeNetworks(dir, 5, 9, 0);
    // put the older snapshot back (with its checksum: one without is compared with a full replay): the log now has 4 records past it
    assert.ok(snap);
    const { format: _format, ...older } = snap;
    await writeSnapshot(dir, older);
    const { state, replayed, fromSnapshotSeq, store } = await openStore(dir, { host: 'h' });
    await store.close();
    assert.equal(fromSnapshotSeq, 5);
    assert.equal(replayed, 4);
    assert.equal(Object.keys(state.networks).length, 9);
    assert.deepEqual(state, await fullFold(dir));
  });

  it('a start that replayed the whole log (the snapshot was lost) writes one at once, so the next start does not', async () => {
    const dir = join(root, 'lost');
    await writeNetworks(dir, 0, 12, 0);
    await rm(join(dir, SNAPSHOT_FILE));
    const first = await openStore(dir, { host: 'h' }, { snapshotEvery: 10 });
    assert.equal(first.replayed, 12);
    // Written without waiting for 10 more events or for the close (a crash would skip that).
    const end = Date.now() + 5_000;
    while ((await readSnapshot(dir))?.seq !== 12) {
      assert.ok(Date.now() < end, 'no snapshot was written after the full replay');
      await new Promise((r) => setTimeout(r, 5));
    }
    await first.store.close();
    const { replayed, fromSnapshotSeq, store } = await openStore(dir, { host: 'h' }, { snapshotEvery: 10 });
    await store.close();
    assert.equal(fromSnapshotSeq, 12);
    assert.equal(replayed, 0);
  });

  it('a snapshot that does not line up with the log is ignored (full replay)', async () => {
    const dir = join(root, 'stale');
    await writeNetworks(dir, 0, 6, 0);
    const snap = JSON.parse((await readFile(join(dir, SNAPSHOT_FILE), 'utf8')).split('\nsha256:')[0] ?? '') as Record<string, unknown>;
    for (const broken of [
      { ...snap, offset: 10_000_000 },
      { ...snap, hash: 'f'.repeat(64), state: { ...(snap['state'] as object), hash: 'f'.repeat(64) } },
      { ...snap, recordOffset: 3 },
    ]) {
      await writeFile(join(dir, SNAPSHOT_FILE), JSON.stringify(broken));
      const { state, fromSnapshotSeq, replayed, store } = await openStore(dir, { host: 'h' }, { snapshotEvery: 0 });
      await store.close();
      assert.equal(fromSnapshotSeq, 0);
      assert.equal(replayed, 6);
      assert.deepEqual(state, await fullFold(dir));
    }
    await writeFile(join(dir, SNAPSHOT_FILE), '{not json');
    assert.equal(Object.keys((await loadState(dir)).networks).length, 6);
  });

  it('a torn tail after the snapshot is still repaired, and appends continue the chain', async () => {
    const dir = join(root, 'torn');
    await writeNetworks(dir, 0, 3, 0);
    await appendFile(join(dir, LOG_FILE), frame('{"partial":').subarray(0, 9));
    const { store, repaired, fromSnapshotSeq } = await openStore(dir, { host: 'h' });
    assert.equal(fromSnapshotSeq, 3);
    assert.ok(repaired);
    const [ev] = await store.execute({ type: 'DeleteNetwork', networkId: id(0) }, byLedgernet('test')).then((e) => e.slice(-1));
    await store.close();
    assert.equal(ev?.seq, 4);
    assert.equal((await readLog(dir)).events.length, 4);
  });

  it('a start reads only the bytes from the snapshot on; a full read (events verify) still sees older damage', async () => {
    const dir = join(root, 'bounded');
    await writeNetworks(dir, 0, 5, 0);
    const snap = await readSnapshot(dir);
    assert.ok(snap && snap.recordOffset > 20);
    // Damage a byte of the second record, well before the snapshot's: a start from the snapshot
    // never reads it (it reads the first record only, which a log must start with).
    const path = join(dir, LOG_FILE);
    const buf = await readFile(path);
    const second = 8 + buf.readUInt32BE(0);
    buf[second + 12] = (buf[second + 12] ?? 0) ^ 0xff;
    await writeFile(path, buf);
    const { state, fromSnapshotSeq, replayed, store } = await openStore(dir, { host: 'h' });
    await store.close();
    assert.equal(fromSnapshotSeq, 5);
    assert.equal(replayed, 0);
    assert.equal(Object.keys(state.networks).length, 5);
    await assert.rejects(readLog(dir), new RegExp(`damaged at byte offset ${second}`));
    // The first record is: damaged, the log is refused at start, naming it.
    buf[second + 12] = (buf[second + 12] ?? 0) ^ 0xff;
    buf[12] = (buf[12] ?? 0) ^ 0xff;
    await writeFile(path, buf);
    await assert.rejects(openStore(dir, { host: 'h' }), /damaged at byte offset 0 \(its first record is checksum mismatch\)/);
  });

  it('a damaged snapshot (one byte of its state changed) is ignored: the state is rebuilt from the log', async () => {
    const dir = join(root, 'flipped');
    await writeNetworks(dir, 0, 5, 0);
    const path = join(dir, SNAPSHOT_FILE);
    const text = await readFile(path, 'utf8');
    assert.match(text, /\nsha256:[0-9a-f]{64}\n$/);
    // The first character of a network id inside the state: still valid JSON, still a snapshot.
    const at = text.indexOf(`"${id(3)}"`) + 1;
    await writeFile(path, `${text.slice(0, at)}9${text.slice(at + 1)}`);
    assert.deepEqual(await loadSnapshot(dir), { damaged: 'its checksum does not match its contents' });
    const { state, fromSnapshotSeq, replayed, store } = await openStore(dir, { host: 'h' }, { snapshotEvery: 0 });
    await store.close();
    assert.equal(fromSnapshotSeq, 0, 'the damaged snapshot was not used');
    assert.equal(replayed, 5);
    assert.deepEqual(state, await fullFold(dir));
    assert.ok(state.networks[id(3)], 'the network of the log, not the damaged id');
    assert.deepEqual(await loadState(dir), state);
    // close() wrote a good one again.
    assert.equal((await readSnapshot(dir))?.seq, 5);
  });
});

