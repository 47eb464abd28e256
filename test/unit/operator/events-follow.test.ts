// `ledgernet events --follow` on a long log: once its first reading (in parts) has shown the log,
// it reads on from where that reading ended. Before, its first look for new events read the log
// again from its start, all of it at once (a log of 440 MB: 1.4 GB of memory held by a process
// that then only waits for new lines). The CLI runs for real (src/cli.ts through tsx).
import assert from 'node:assert/strict';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { byLedgernet, openStore } from '../../../src/events/index.ts';
import { REPO_ROOT } from '../../helpers/daemon.ts';
import { networkSpec } from '../../helpers/events.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ln-cli-follow-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const net = (i: number) => `${i}`.padStart(2, '0').padEnd(64, 'f');

type Store = Awaited<ReturnType<typeof openStore>>['store'];
async function networks(store: Store, from: number, to: number): Promise<void> {
  for (let i = from; i < to; i++) await store.execute({ type: 'CreateNetwork', spec: networkSpec(net(i), `10.89.${i}.0/24`, `10.89.${i}.1/24`) }, byLedgernet('test'));
}

describe('ledgernet events --follow', () => {
  it('reads on from where its first reading ended, not from the start of the log again', async () => {
    // One writer all along, as a daemon (it does not read back what it wrote).
    const { store } = await openStore(dir, { host: 'h' });
    await networks(store, 0, 6);
    const seqs = (text: string) => text.trim().split('\n').filter(Boolean).map((l) => Number(l.trim().split(' ')[0]));
    const follow = execa(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli.ts'), 'events', '--follow', '--state-dir', dir], { cwd: REPO_ROOT, reject: false, env: {}, stdin: 'ignore' });
    let text = '';
    follow.stdout?.on('data', (c: Buffer) => (text += c.toString()));
    const until = async (n: number) => {
      for (let i = 0; i < 200 && seqs(text).length < n && follow.exitCode === null; i++) await new Promise((r) => setTimeout(r, 25));
    };
    try {
      await until(6);
      assert.deepEqual(seqs(text), [1, 2, 3, 4, 5, 6]);
      // A byte of the second record changed after the first reading checked it (and before the
      // first look for new events, half a second later): only a reading of the log from its start
      // meets it again, and refuses the log.
      const fh = await open(join(dir, 'events.log'), 'r+');
      try {
        const b = Buffer.alloc(4);
        await fh.read(b, 0, 4, 0);
        const at = 8 + b.readUInt32BE(0) + 8 + 20;
        await fh.read(b, 0, 1, at);
        b.writeUInt8(b.readUInt8(0) ^ 0x01);
        await fh.write(b, 0, 1, at);
      } finally {
        await fh.close();
      }
      await networks(store, 6, 8);
      await until(8);
      if (follow.exitCode !== null) assert.fail(`events --follow ended (exit ${follow.exitCode}): ${(await follow).stderr}`);
      assert.deepEqual(seqs(text), [1, 2, 3, 4, 5, 6, 7, 8]);
    } finally {
      follow.kill();
      await follow;
      await store.close();
    }
  });
});
