// An empty LEDGERNET_* setting (`LEDGERNET_RECONCILE_INTERVAL=` in a unit file or the plugin's
// settings) means "not set": the default, as for the NATS credentials. It turned background
// repair off (''→0), released endpoints at once (abandoned grace 0) or moved the state dir to the
// working directory. LEDGERNET_DOCKER_SOCKET keeps its documented '' (never ask Docker).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { DEFAULTS } from '../../../src/config.ts';
import { REPO_ROOT } from '../../helpers/daemon.ts';
import { runCli } from '../../helpers/cli.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ln-cli-env-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const EMPTY = Object.fromEntries(
  ['STATE_DIR', 'SOCKET', 'RECONCILE_INTERVAL', 'ABANDONED_GRACE', 'LOG_LEVEL', 'METRICS', 'DEFAULT_POOL', 'DEFAULT_POOL_SIZE', 'DEFAULT_POOL6', 'DEFAULT_POOL6_SIZE', 'FIREWALL', 'ALLOW_DIRECT_ROUTING', 'IPV6_FORWARDING', 'CONTROL_GROUP', 'HOST', 'VTEP', 'CLUSTER_HOST_TIMEOUT', 'NATS_URL', 'NATS_STREAM', 'WORKER_WATCHDOG'].map((k) => [`LEDGERNET_${k}`, '']),
);

describe('empty LEDGERNET_* settings are unset', () => {
  it('LEDGERNET_STATE_DIR= is the default state dir, not the working directory', async () => {
    const r = await runCli(['events'], { isolated: true, env: { LEDGERNET_STATE_DIR: '', LEDGERNET_RUN_DIR: dir } });
    if (r.exitCode === 0) return; // a default state dir exists on this machine: it was read
    assert.match(r.stderr, new RegExp(`no event log at ${DEFAULTS.stateDir}/events\\.log`), r.stderr);
  });

  it('serve with every setting empty runs with the defaults (repair every 10 s, abandoned grace 60 s)', async () => {
    const state = join(dir, 'state');
    const sock = join(dir, 'p.sock');
    const child = execa('unshare', ['-n', process.execPath, '--import', 'tsx', join(REPO_ROOT, 'src/cli.ts'), 'serve', '--in-process', '--socket', sock, '--state-dir', state, '--docker-socket', ''], {
      cwd: REPO_ROOT,
      env: { ...EMPTY, LEDGERNET_RUN_DIR: dir },
      reject: false,
      stdin: 'ignore',
      all: true,
    });
    let text = '';
    const serving = new Promise<Record<string, unknown> | null>((resolve) => {
      child.all!.on('data', (c: Buffer) => {
        text += c.toString();
        const line = text.split('\n').find((l) => l.includes('ledgernet is serving'));
        if (line) resolve(JSON.parse(line) as Record<string, unknown>);
      });
      void child.then(() => resolve(null));
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    try {
      const line = await serving;
      assert.ok(line, `serve did not start:\n${text}`);
      assert.equal(line['intervalS'], DEFAULTS.reconcileIntervalS);
      assert.equal(line['stateDir'], state);
      assert.equal(line['level'], 30, 'log level info');
    } finally {
      child.kill('SIGTERM');
      await child;
      clearTimeout(timer);
    }
    assert.doesNotMatch(text, /abandonedGraceS":0|must be/);
  });
});
