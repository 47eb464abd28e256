// A full disk under the event store (a real tmpfs, mounted here): commands that take something
// are refused while room is short of the reserve, releases still go through, a write that does
// not fit is refused and never acknowledged, and the same store records again once space is back.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import type { DriverError } from '../../../src/errors.ts';
import { LOG_FILE, readLog } from '../../../src/events/log/read.ts';
import { openStore } from '../../../src/events/log/open.ts';
import { networkSpec } from '../../helpers/events.ts';
import { byLedgernet } from '../../../src/events/domain/cause.ts';

let root: string;
let mnt: string;
let mounted = false;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ln-full-'));
  mnt = join(root, 'mnt');
  await mkdir(mnt);
  await execa('mount', ['-t', 'tmpfs', '-o', 'size=512k,mode=0700', 'ln-test-full', mnt]);
  mounted = true;
});
after(async () => {
  if (mounted) await execa('umount', [mnt], { reject: false });
  await rm(root, { recursive: true, force: true });
});

/** Writes a filler file until the file system refuses (ENOSPC); returns its path. */
async function fill(path: string): Promise<void> {
  const fh = await open(path, 'a');
  const chunk = Buffer.alloc(4096, 0x41);
  try {
    for (;;) await fh.write(chunk);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    await fh.close();
  }
}

const net = (i: number) => networkSpec(`${i}`.padEnd(64, 'f'), `10.${i}.0.0/24`, `10.${i}.0.1/24`);

describe('event store on a full disk', () => {
  it('refuses, leaves nothing half-written, and recovers by itself once space is freed', async () => {
    const dir = join(mnt, 'state');
    const { store } = await openStore(dir, { host: 'h', reserveBytes: 64 * 1024 });
    for (let i = 0; i < 5; i++) await store.execute({ type: 'CreateNetwork', spec: net(i) }, byLedgernet('test'));
    const filler = join(mnt, 'filler');
    await fill(filler);
    // 32 KiB free: below the reserve (taking is refused), enough for releases.
    await truncate(filler, (await stat(filler)).size - 32 * 1024);
    const logSize = (await stat(join(dir, LOG_FILE))).size;
    await assert.rejects(
      store.execute({ type: 'CreateNetwork', spec: net(10) }, byLedgernet('test')),
      (e: DriverError) => e.code === 'LN_ERR_LOG_IO' && e.message.includes(`file system of ${dir} has`) && /free space there/.test(e.message),
    );
    assert.equal((await stat(join(dir, LOG_FILE))).size, logSize, 'nothing appended');
    assert.equal(store.state.networks[net(10).networkId], undefined);
    await store.execute({ type: 'DeleteNetwork', networkId: net(0).networkId }, byLedgernet('test'));
    assert.equal(store.state.networks[net(0).networkId], undefined, 'a release is recorded from the reserve');

    // Now really full: even a release's write does not fit. Several at once: all refused.
    await fill(filler);
    let refused: DriverError | null = null;
    const acked: number[] = [];
    for (let i = 1; i < 5 && !refused; i++) {
      const batch = await Promise.allSettled([1, 2, 3].map(() => store.execute({ type: 'DeleteNetwork', networkId: net(i).networkId }, byLedgernet('test'))));
      for (const r of batch) {
        if (r.status === 'rejected') refused = r.reason as DriverError;
        else acked.push(...r.value.map((e) => e.seq));
      }
    }
    assert.ok(refused, 'the disk filled up');
    assert.match(refused.message, new RegExp(`writing the event log ${join(dir, LOG_FILE)} failed: ENOSPC.*nothing was recorded`));
    const mid = await readLog(dir);
    assert.equal(mid.end.kind, 'clean', 'no partial record');
    assert.equal(mid.events.at(-1)?.seq, store.lastSeq, 'the log holds exactly what was acknowledged');
    for (const seq of acked) assert.ok(seq <= store.lastSeq);

    // Space is back: the next command records, continuing the chain; no restart.
    await rm(filler);
    const before = store.lastSeq;
    const [ev] = await store.execute({ type: 'CreateNetwork', spec: net(20) }, byLedgernet('test'));
    assert.equal(ev?.seq, before + 1);
    await store.close();
    const { events, end } = await readLog(dir);
    assert.equal(end.kind, 'clean');
    assert.equal(events.at(-1)?.seq, before + 1);
    assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1), 'seqs run 1, 2, 3… (the chain was checked by readLog)');
  });

  it('an archive that does not fit moves nothing and leaves nothing behind; once space is back it goes through', async () => {
    const dir = join(mnt, 'state-archive');
    const { store } = await openStore(dir, { host: 'h', reserveBytes: 0 });
    for (let i = 30; i < 50; i++) await store.execute({ type: 'CreateNetwork', spec: net(i) }, byLedgernet('test'));
    const before = await readFile(join(dir, LOG_FILE));
    const filler = join(mnt, 'filler-archive');
    await fill(filler);
    await assert.rejects(store.archive(byLedgernet('test')), (e: DriverError) => e.code === 'LN_ERR_LOG_IO' && /archiving the event log failed: .*ENOSPC.*; nothing was moved/.test(e.message));
    assert.deepEqual(await readFile(join(dir, LOG_FILE)), before, 'events.log as it was');
    assert.deepEqual(await readdir(join(dir, 'archive')).catch(() => []), [], 'no archive left');
    assert.ok(!(await readdir(dir)).includes(`${LOG_FILE}.next`));
    await rm(filler);
    const done = await store.archive(byLedgernet('test'));
    assert.deepEqual([done?.first, done?.last, done?.unrecorded], [1, 20, undefined]);
    await store.execute({ type: 'CreateNetwork', spec: net(50) }, byLedgernet('test'));
    await store.close();
    assert.deepEqual((await readLog(dir)).events.map((e) => e.seq), Array.from({ length: 22 }, (_, i) => i + 1));
  });
});
