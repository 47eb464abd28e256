// What `ledgernet status --json` says of a running daemon (dist/, supervisor and worker, in a
// network namespace this test makes, with its own host guard dir and no Docker): its start time
// is the worker's, not that of the first CLI call. Needs root and `npm run build`.
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { CLI_PATH, startDaemon, stopAllDaemons } from '../helpers/daemon.ts';
import { throwawayNetns } from '../helpers/netns.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

describe('status of a running daemon', { skip }, () => {
  const netns = throwawayNetns('lnstatus');
  let root: string;
  let runDir: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'ln-status-'));
    runDir = await mkdtemp(join(tmpdir(), 'ln-status-run-'));
  });
  after(async () => {
    await stopAllDaemons();
    await rm(root, { recursive: true, force: true });
    await rm(runDir, { recursive: true, force: true });
  });

  it("status --json: daemon.startedAt is when the worker started, not the first status call's time", async () => {
    const stateDir = join(root, 'state');
    const t0 = Date.now();
    await startDaemon({
      stateDir,
      socket: join(root, 'plugin.sock'),
      launcher: ['ip', 'netns', 'exec', netns],
      extraArgs: ['--reconcile-interval', '0', '--docker-socket', ''],
      env: { LEDGERNET_RUN_DIR: runDir },
    });
    for (let i = 0; i < 100 && !(await stat(join(stateDir, 'control.sock')).catch(() => null)); i++) await sleep(100);
    const ready = Date.now();
    await sleep(2000);
    const r = await execa(process.execPath, [CLI_PATH, 'status', '--json', '--state-dir', stateDir], { reject: false, cwd: '/', timeout: 30_000 });
    assert.equal(r.exitCode, 0, r.stderr);
    const started = Date.parse((JSON.parse(r.stdout) as { daemon: { startedAt: string } }).daemon.startedAt);
    // Second precision at worst is fine either way: the call came 2 s after the daemon was ready.
    assert.ok(started >= t0 - 1000 && started <= ready, `startedAt ${new Date(started).toISOString()} is not between ${new Date(t0).toISOString()} and ${new Date(ready).toISOString()}`);
  });
});
