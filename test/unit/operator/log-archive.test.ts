// serve --archive-log-size over a real store in a temp state dir: archived once the log reaches
// the size, one archive at a time, never after stop; a failure is logged and not retried at once.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { byLedgernet, openStore, readLog } from '../../../src/events/index.ts';
import { listArchives } from '../../../src/events/log/archive.ts';
import { startAutoArchive } from '../../../src/operator/log-archive.ts';
import { networkSpec } from '../../helpers/events.ts';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ln-auto-archive-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const create = (i: number) => ({ type: 'CreateNetwork' as const, spec: networkSpec(`${i}`.padEnd(64, 'b'), `10.77.${i}.0/24`, `10.77.${i}.1/24`) });

function logger() {
  const lines: string[] = [];
  return { lines, log: { info: (_o: unknown, m?: string) => void lines.push(`info ${m}`), error: (_o: unknown, m?: string) => void lines.push(`error ${m}`) } as never };
}

describe('serve --archive-log-size', () => {
  it('archives once the log reaches the size, and goes on; stopped, it archives no more', async () => {
    const dir = join(root, 'size');
    const { store } = await openStore(dir, { host: 'h' });
    const { lines, log } = logger();
    const stop = startAutoArchive(store, 3000, log);
    for (let i = 0; i < 20; i++) await store.execute(create(i), byLedgernet('test'));
    await new Promise((r) => setTimeout(r, 50));
    const archives = await listArchives(dir);
    assert.ok(archives.length >= 2, JSON.stringify(archives));
    assert.ok(store.logBytes < 3000 + 1000, `${store.logBytes} bytes left in events.log`);
    assert.ok(lines.some((l) => l.startsWith('info event log archived: it reached')), lines.join('\n'));
    await stop();
    for (let i = 20; i < 30; i++) await store.execute(create(i), byLedgernet('test'));
    assert.equal((await listArchives(dir)).length, archives.length, 'nothing archived after stop');
    await store.close();
    const events = (await readLog(dir)).events;
    assert.deepEqual(events.map((e) => e.seq), Array.from({ length: 30 + archives.length }, (_, i) => i + 1));
    const records = events.filter((e) => e.type === 'log.archived');
    assert.deepEqual(records.map((e) => e.cause), archives.map(() => ({ by: 'ledgernet', what: 'archive-log-size' })), 'each archive recorded, by whom');
  });

  it('a failed archive is logged at error level and not tried again for a minute', async () => {
    const calls: number[] = [];
    const listeners: (() => void)[] = [];
    const store = {
      logBytes: 10_000,
      onEvents: (l: () => void) => void listeners.push(l),
      archive: async () => {
        calls.push(Date.now());
        throw new Error('disk full');
      },
    };
    const { lines, log } = logger();
    const stop = startAutoArchive(store as never, 1000, log);
    for (let i = 0; i < 5; i++) {
      listeners.forEach((l) => l());
      await new Promise((r) => setTimeout(r, 5));
    }
    await stop();
    assert.equal(calls.length, 1);
    assert.deepEqual(lines, ['error could not archive the event log; trying again in a minute, and events.log keeps growing meanwhile']);
  });
});
