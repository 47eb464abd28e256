// `ledgernet events archive` with no daemon running (it takes the writer's lock itself), and what
// `events` and `events verify` then show: the whole history across archive files, how far back
// it goes once an operator removed an old archive, and damage in an archive named by file. The
// CLI runs for real (src/cli.ts through tsx) on a state dir this test makes.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { byLedgernet, EventLog, openStore } from '../../../src/events/index.ts';
import { runCli } from '../../helpers/cli.ts';
import { REPO_ROOT } from '../../helpers/daemon.ts';
import { execa } from 'execa';
import { ADDRESS_HISTORY, networkSpec } from '../../helpers/events.ts';

let dir: string;
let runDir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ln-cli-archive-'));
  runDir = await mkdtemp(join(tmpdir(), 'ln-cli-archive-run-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
  await rm(runDir, { recursive: true, force: true });
});

const cli = (args: readonly string[]) => runCli([...args, '--state-dir', dir], { isolated: true, env: { LEDGERNET_RUN_DIR: runDir } });
const net = (i: number) => `${i}`.padStart(2, '0').padEnd(64, 'e');

async function networks(from: number, to: number): Promise<void> {
  const { store } = await openStore(dir, { host: 'h' });
  for (let i = from; i < to; i++) await store.execute({ type: 'CreateNetwork', spec: networkSpec(net(i), `10.88.${i}.0/24`, `10.88.${i}.1/24`) }, byLedgernet('test'));
  await store.close();
}

describe('ledgernet events archive', () => {
  it('moves the events into archive/, and events and events verify still show and check all of them', async () => {
    await networks(0, 4);
    const a = await cli(['events', 'archive']);
    assert.equal(a.exitCode, 0, a.stderr);
    assert.match(a.stdout, /^archived events 1 to 4 \(\d+ bytes\) in .*\/archive\/events-000000000001-000000000004\.log; events\.log goes on from event 5$/);
    // Its record (event 5) is all the new log holds: nothing to archive.
    const again = await cli(['events', 'archive']);
    assert.match(again.stdout, /^nothing to archive: .*events\.log holds no event since its last archive$/);
    await networks(4, 6);
    assert.match((await cli(['events', 'archive'])).stdout, /archived events 5 to 7 .*events-000000000005-000000000007\.log/);
    await networks(6, 7);
    const shown = await cli(['events']);
    assert.equal(shown.exitCode, 0, shown.stderr);
    assert.deepEqual(shown.stdout.trim().split('\n').map((l) => Number(l.trim().split(' ')[0])), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(shown.stderr, '');
    // Who archived what, in the log itself.
    const record = shown.stdout.split('\n').find((l) => / 5 /.test(l.slice(0, 8))) ?? '';
    assert.match(record, /log\.archived\s+1-4 in archive\/events-000000000001-000000000004\.log  by operator \S+ \(uid 0, pid \d+\) events archive$/);
    const v = await cli(['events', 'verify']);
    assert.equal(v.exitCode, 0, v.stderr);
    assert.match(v.stdout, /^ok: 9 events, hash chain intact \(2 archive files in .*archive and events\.log\), snapshot at seq 9 matches$/);
    // --network finds a network whose events are all archived.
    const one = await cli(['events', '--network', net(1)]);
    assert.equal(one.exitCode, 0, one.stderr);
    assert.match(one.stdout, /^\s+2 .*network\.created/);
  });

  it('after an operator removed the oldest archive: shown and checked from where the archives go, and said so', async () => {
    const [oldest] = (await readdir(join(dir, 'archive'))).sort();
    const path = join(dir, 'archive', oldest ?? '');
    const kept = await readFile(path);
    await unlink(path);
    try {
      const shown = await cli(['events']);
      assert.equal(shown.exitCode, 0, shown.stderr);
      assert.match(shown.stderr, /events 1 to 4 were archived and are no longer in .*archive; from event 5 on/);
      assert.deepEqual(shown.stdout.trim().split('\n').map((l) => Number(l.trim().split(' ')[0])), [5, 6, 7, 8, 9]);
      const v = await cli(['events', 'verify']);
      assert.equal(v.exitCode, 0, v.stderr);
      assert.match(v.stdout, /^ok: 5 events, hash chain intact \(1 archive file in .*; events 1 to 4 were archived and are no longer in .*: the chain is checked from event 4's hash on/);
    } finally {
      await writeFile(path, kept);
    }
  });

  it('events --follow goes on across an archive: every event once, in order', async () => {
    const seqs = (text: string) => text.trim().split('\n').filter(Boolean).map((l) => Number(l.trim().split(' ')[0]));
    const follow = execa(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src', 'cli.ts'), 'events', '--follow', '--state-dir', dir], { cwd: REPO_ROOT, reject: false, env: {}, stdin: 'ignore' });
    let text = '';
    follow.stdout?.on('data', (c: Buffer) => (text += c.toString()));
    const until = async (n: number) => {
      for (let i = 0; i < 200 && seqs(text).length < n; i++) await new Promise((r) => setTimeout(r, 50));
    };
    try {
      await until(9);
      const { store } = await openStore(dir, { host: 'h' });
      for (let i = 7; i < 9; i++) await store.execute({ type: 'CreateNetwork', spec: networkSpec(net(i), `10.88.${i}.0/24`, `10.88.${i}.1/24`) }, byLedgernet('test'));
      await until(11);
      await store.archive(byLedgernet('test'));
      for (let i = 9; i < 11; i++) await store.execute({ type: 'CreateNetwork', spec: networkSpec(net(i), `10.88.${i}.0/24`, `10.88.${i}.1/24`) }, byLedgernet('test'));
      await store.close();
      await until(14);
      assert.deepEqual(seqs(text), Array.from({ length: 14 }, (_, i) => i + 1));
    } finally {
      follow.kill();
      await follow;
    }
  });

  it('events verify fails naming the archive when one is damaged', async () => {
    const [oldest] = (await readdir(join(dir, 'archive'))).sort();
    const path = join(dir, 'archive', oldest ?? '');
    const kept = await readFile(path);
    const bad = Buffer.from(kept);
    bad.writeUInt8(bad.readUInt8(bad.length - 10) ^ 0x01, bad.length - 10);
    await writeFile(path, bad);
    try {
      const v = await cli(['events', 'verify']);
      assert.equal(v.exitCode, 1);
      assert.match(v.stderr, /the archived events .*events-000000000001-000000000004\.log are damaged .*byte offset \d+/);
      assert.equal(v.stdout, '');
    } finally {
      await writeFile(path, kept);
    }
    assert.equal((await cli(['events', 'verify'])).exitCode, 0);
  });

  it('events verify fails naming the snapshot when one byte of it changed, with and without the oldest archive', async () => {
    const path = join(dir, 'snapshot.json');
    const kept = await readFile(path, 'utf8');
    const at = kept.indexOf(`"${net(3)}"`) + 2;
    await writeFile(path, `${kept.slice(0, at)}9${kept.slice(at + 1)}`);
    const [oldest] = (await readdir(join(dir, 'archive'))).sort();
    const archive = join(dir, 'archive', oldest ?? '');
    const archived = await readFile(archive);
    try {
      const v = await cli(['events', 'verify']);
      assert.equal(v.exitCode, 1, v.stdout);
      assert.match(v.stderr, /the snapshot .*snapshot\.json is damaged \(its checksum does not match its contents\); the log and its archives verified\. A start ignores it and rebuilds the state from every event/);
      await unlink(archive);
      const w = await cli(['events', 'verify']);
      assert.equal(w.exitCode, 1, w.stdout);
      assert.match(w.stderr, /is damaged .*A start cannot use it, and events 1 to 4 are no longer archived here .*restore snapshot\.json or the archives from a backup/);
    } finally {
      await writeFile(path, kept);
      await writeFile(archive, archived);
    }
    assert.equal((await cli(['events', 'verify'])).exitCode, 0);
  });
});

describe('events filters once the archive an endpoint began in is gone', () => {
  let gone: string;
  const run = (args: readonly string[]) => runCli([...args, '--state-dir', gone], { isolated: true, env: { LEDGERNET_RUN_DIR: runDir } });
  const { network, endpoints } = ADDRESS_HISTORY;
  before(async () => {
    gone = await mkdtemp(join(tmpdir(), 'ln-cli-archive-gone-'));
    const { log } = await EventLog.open(gone, { host: 'h' });
    await log.append(ADDRESS_HISTORY.events()).durable; // 1-8: job-7's endpoint created (7) and named (8)
    await log.close();
    assert.equal((await run(['events', 'archive'])).exitCode, 0);
    const again = await EventLog.open(gone, { host: 'h' });
    await again.log.append([{ type: 'endpoint.deleted', data: { networkId: network, endpointId: endpoints[1] } }]).durable; // 10
    await again.log.close();
    for (const f of await readdir(join(gone, 'archive'))) await unlink(join(gone, 'archive', f));
  });
  after(() => rm(gone, { recursive: true, force: true }));

  it('--address, --container and --network NAME find the later lines from the snapshot, and say what cannot be known', async () => {
    for (const q of [['--address', '10.231.79.2'], ['--container', 'job-7'], ['--network', 'web']]) {
      const r = await run(['events', ...q]);
      assert.equal(r.exitCode, 0, `${q.join(' ')}: ${r.stderr}`);
      assert.match(r.stdout, /^\s*10 .*endpoint\.deleted/m, q.join(' '));
      assert.match(r.stderr, /^ledgernet: events 1 to 8 were archived and are no longer in .*; from event 9 on:$/, q.join(' '));
    }
    // Without the snapshot too, nothing tells of the endpoint: said, not silently missed.
    const snap = join(gone, 'snapshot.json');
    const kept = await readFile(snap);
    await unlink(snap);
    try {
      const r = await run(['events', '--container', 'job-7']);
      assert.equal(r.exitCode, 1, r.stdout);
      assert.match(r.stderr, /ledgernet: 1 endpoint \(2b2b2b2b2b2b\) began in archived events that are no longer here and there is no snapshot at or after them to tell of them: their containers and addresses are unknown, so lines of them may be missing below$/m);
    } finally {
      await writeFile(snap, kept);
    }
  });
});
