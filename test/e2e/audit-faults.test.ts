// The audit stream when NATS or its stream misbehave, against a real nats-server (JetStream, temp
// store, free port) and a daemon on a socket of its own (IPAM calls make the events):
// the stream deleted (and made again by ledgernet or by an operator) while the daemon runs; a
// stream name taken by someone else's stream, or subjects another stream takes; a full stream;
// `audit --follow` across a NATS restart and a read cut short; bad creds files; --since TIME.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, test } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DiscardPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { waitFor } from '../helpers/docker.ts';
import { CLI_PATH, ledgernetCli, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { createNatsServer, freePort, type NatsServer } from '../helpers/nats.ts';
import { audit, auditStats, daemonAt, ipamEvents, scrape, waitCaughtUp } from '../helpers/audit.ts';

const servers: NatsServer[] = [];
const temps: string[] = [];

afterEach(async () => {
  await stopAllDaemons();
});

after(async () => {
  for (const s of servers) await s.stop();
  for (const t of temps) await rm(t, { recursive: true, force: true });
});

async function nats(): Promise<NatsServer> {
  const s = await createNatsServer();
  servers.push(s);
  return s;
}

async function withJsm<T>(server: NatsServer, fn: (jsm: JetStreamManager, nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: server.url });
  try {
    return await fn(await jetstreamManager(nc), nc);
  } finally {
    await nc.close();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SECOND = 1_000_000_000;

/** The log's events (id and own time), in order. */
async function logEvents(d: DaemonHandle): Promise<{ id: string; at: string }[]> {
  const r = await ledgernetCli(['events', '--json', '--state-dir', d.stateDir]);
  assert.equal(r.exitCode, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: string; at: string });
}

const jsonIds = (stdout: string) => stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { id: string }).id);

/** The daemon's log lines as objects. */
const logLines = (d: DaemonHandle) =>
  d.logs().split('\n').flatMap((l) => {
    try {
      return [JSON.parse(l) as { level: number; msg: string }];
    } catch {
      return [];
    }
  });

describe('the stream deleted while the daemon runs', () => {
  test('made again by ledgernet, then by an operator: the whole log is published again, in order, once; --since finds events by their own time', async () => {
    const server = await nats();
    const host = `e2e-remade-${process.pid}`;
    const d = await daemonAt(server.url, host, { extraArgs: ['--nats-dup-window', '1s'] });
    await ipamEvents(d, 2);
    const first = await waitCaughtUp(d, server, host);
    assert.equal(first.length, 4);
    await sleep(1_100);
    const t0 = new Date().toISOString();
    await sleep(100);
    await ipamEvents(d, 1);
    await waitCaughtUp(d, server, host);

    // Deleted: the daemon's next publish finds no stream; it makes it again and publishes all.
    await withJsm(server, (jsm) => jsm.streams.delete('LEDGERNET'));
    await ipamEvents(d, 1);
    const again = await waitCaughtUp(d, server, host, 45_000);
    assert.equal(again.length, 8);
    assert.equal((await audit(server, host, '--verify')).exitCode, 0);
    assert.ok(d.logs().includes('was deleted and made again'), d.logs().slice(-3000));

    // Deleted and made again at once by an operator: the daemon's next publish is stored at the
    // new stream's start, behind where the old one held the log; it is taken out, and all follows.
    await withJsm(server, async (jsm) => {
      await jsm.streams.delete('LEDGERNET');
      await jsm.streams.add({ name: 'LEDGERNET', subjects: ['ledgernet.>'], duplicate_window: SECOND });
    });
    await ipamEvents(d, 1);
    const third = await waitCaughtUp(d, server, host, 45_000).catch((e: unknown) => {
      throw new Error(`${String(e)}\n${d.logs().slice(-6000)}`);
    });
    assert.equal(third.length, 10);
    const v = await audit(server, host, '--verify');
    assert.equal(v.exitCode, 0, v.stderr);
    assert.match(v.stdout, /^ok: 10 event\(s\) from 1 host\(s\)/);

    // Every event was stored again after t0; --since t0 gives those that happened after it.
    const want = (await logEvents(d)).filter((e) => e.at >= t0).map((e) => e.id);
    assert.equal(want.length, 6);
    const since = await audit(server, host, '--json', '--since', t0);
    assert.equal(since.exitCode, 0, since.stderr);
    assert.deepEqual(jsonIds(since.stdout), want);
  });
});

describe('audit --since TIME', () => {
  test('is the events\' own time: events published late (after an outage) are not after it', async () => {
    const server = await nats();
    const host = `e2e-since-${process.pid}`;
    const d = await daemonAt(server.url, host);
    await ipamEvents(d, 1);
    await waitCaughtUp(d, server, host);
    await server.kill();
    await ipamEvents(d, 1); // happen now, stored in the stream later
    await sleep(1_100);
    const since = new Date().toISOString();
    await sleep(100);
    await server.start();
    await waitCaughtUp(d, server, host, 45_000);
    await ipamEvents(d, 1);
    const all = await waitCaughtUp(d, server, host);
    const r = await audit(server, host, '--json', '--since', since);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(jsonIds(r.stdout), all.slice(4), `only the two events after ${since}`);
  });
});

describe('a stream ledgernet cannot use', () => {
  test('the stream name is taken by a foreign stream: status, log (error) and metric name the stream, its subjects and what to do', async () => {
    const server = await nats();
    await withJsm(server, (jsm) => jsm.streams.add({ name: 'LEDGERNET', subjects: ['orders.>'] }));
    const host = `e2e-foreign-${process.pid}`;
    const port = await freePort();
    const d = await daemonAt(server.url, host, { extraArgs: ['--metrics', `127.0.0.1:${port}`] });
    await ipamEvents(d, 1);
    await waitFor(async () => (await auditStats(d)).lastError !== null, { what: 'an error in status', timeoutMs: 15_000 });
    const st = await auditStats(d);
    assert.match(st.lastError ?? '', /^stream LEDGERNET exists but is not ledgernet's: its subjects \(orders\.>\) do not take ledgernet\..*\.events\.>; give ledgernet a stream of its own \(--nats-stream NAME, LEDGERNET_NATS_STREAM\) or add ledgernet\.> to the subjects of LEDGERNET$/);
    assert.equal((st as { state?: string }).state, 'refused');
    const human = await ledgernetCli(['status', '--state-dir', d.stateDir]);
    assert.ok(human.stdout.includes(`reachable, but the stream REFUSES events (${st.lastError})`), human.stdout);
    const errors = logLines(d).filter((l) => l.level === 50 && l.msg.includes(st.lastError ?? '?'));
    assert.equal(errors.length, 1, d.logs().slice(-3000));
    assert.match(await scrape(port), /^ledgernet_nats_stream_refusing 1$/m);
  });

  test('ledgernet.> overlaps another stream\'s subjects: the error names that stream and its subjects', async () => {
    const server = await nats();
    await withJsm(server, (jsm) => jsm.streams.add({ name: 'OTHER', subjects: ['ledgernet.>', 'misc.>'] }));
    const host = `e2e-overlap-${process.pid}`;
    const d = await daemonAt(server.url, host);
    await ipamEvents(d, 1);
    await waitFor(async () => (await auditStats(d)).lastError !== null, { what: 'an error in status', timeoutMs: 15_000 });
    const st = await auditStats(d);
    assert.equal(
      st.lastError,
      'cannot create stream LEDGERNET over ledgernet.>: subjects overlap with an existing stream: OTHER (subjects ledgernet.>); ' +
        "remove ledgernet.> from that stream's subjects, or, if it is meant for ledgernet, name it with --nats-stream (LEDGERNET_NATS_STREAM)",
    );
    assert.ok(logLines(d).some((l) => l.level === 50 && l.msg.includes(st.lastError ?? '?')), d.logs().slice(-3000));
  });
});

describe('a full stream (max_msgs, discard new)', () => {
  test('one error line when it starts refusing, one when it takes events again; status says reachable but refusing; a metric counts', async () => {
    const server = await nats();
    await withJsm(server, (jsm) => jsm.streams.add({ name: 'LEDGERNET', subjects: ['ledgernet.>'], max_msgs: 3, discard: DiscardPolicy.New }));
    const host = `e2e-full-${process.pid}`;
    const port = await freePort();
    const d = await daemonAt(server.url, host, { extraArgs: ['--metrics', `127.0.0.1:${port}`] });
    await ipamEvents(d, 3);
    await waitFor(async () => (await auditStats(d)).lastError !== null, { what: 'the refusal in status', timeoutMs: 15_000 });
    // Several retries (250 ms doubling to 5 s).
    await sleep(9_000);
    const st = await auditStats(d);
    assert.equal(st.cursor, 3);
    assert.match(st.lastError ?? '', /^JetStream refused the message: maximum messages exceeded/);
    assert.equal((st as { state?: string }).state, 'refused');
    const human = await ledgernetCli(['status', '--state-dir', d.stateDir]);
    assert.ok(human.stdout.includes(`NATS nats://127.0.0.1:${server.port} (auth none) reachable, but the stream REFUSES events (${st.lastError}), backlog 3 event(s)`), human.stdout);
    assert.doesNotMatch(human.stdout, /NOT reachable/);
    const lines = logLines(d);
    const refusing = lines.filter((l) => l.msg.includes('maximum messages exceeded'));
    assert.equal(refusing.length, 1, `one line, not one per retry:\n${refusing.map((l) => l.msg).join('\n')}`);
    assert.equal(refusing[0]?.level, 50, 'at error level');
    assert.match(refusing[0]?.msg ?? '', /^NATS is reachable but stream LEDGERNET does not take events: JetStream refused the message: maximum messages exceeded/);
    assert.ok(lines.filter((l) => l.level === 30 && l.msg === 'publishing events to NATS').length <= 1, 'no info line per retry');
    const metrics = await scrape(port);
    assert.match(metrics, /^ledgernet_nats_stream_refusing 1$/m);
    const refused = Number(/^ledgernet_nats_publish_refused_total (\d+)$/m.exec(metrics)?.[1]);
    assert.ok(refused >= 3, `refused publishes counted: ${refused}`);

    // The operator makes room: publishing resumes, one line says so.
    await withJsm(server, async (jsm) => {
      const si = await jsm.streams.info('LEDGERNET');
      await jsm.streams.update('LEDGERNET', { ...si.config, max_msgs: -1 });
    });
    await waitCaughtUp(d, server, host, 30_000);
    await waitFor(async () => (await auditStats(d)).lastError === null, { what: 'the error to clear' });
    assert.equal((logLines(d).filter((l) => l.msg.startsWith('stream LEDGERNET takes events again'))).length, 1);
    const ok = await ledgernetCli(['status', '--state-dir', d.stateDir]);
    assert.match(ok.stdout, /connected, publishing, backlog 0 event\(s\)/);
    assert.match(await scrape(port), /^ledgernet_nats_stream_refusing 0$/m);
  });
});

/** `ledgernet audit ...` running in the background; its stdout lines collected. */
function auditProcess(args: string[]) {
  const p = spawn(process.execPath, [CLI_PATH, 'audit', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
  p.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
  const exit = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
  return { p, exit, out: () => out, err: () => err };
}

describe('audit reads that NATS interrupts', () => {
  test('--follow rides out a NATS restart: nothing twice, nothing skipped, it keeps following', async () => {
    const server = await nats();
    const host = `e2e-follow-${process.pid}`;
    const d = await daemonAt(server.url, host);
    await ipamEvents(d, 2);
    await waitCaughtUp(d, server, host);
    const f = auditProcess(['--nats', server.url, '--host', host, '--follow', '--json']);
    try {
      await waitFor(() => jsonIds(f.out()).length === 4, { what: 'the first four events followed' });
      await server.kill();
      await ipamEvents(d, 1);
      await sleep(2_000);
      await server.start();
      await ipamEvents(d, 1);
      const all = await waitCaughtUp(d, server, host, 45_000);
      await waitFor(() => jsonIds(f.out()).length >= all.length, { what: `all ${all.length} events followed (${f.out()})`, timeoutMs: 30_000 });
      await sleep(1_000);
      assert.deepEqual(jsonIds(f.out()), all);
      assert.equal(f.p.exitCode, null, `still following (stderr: ${f.err()})`);
    } finally {
      f.p.kill('SIGTERM');
      await f.exit;
    }
  });

  test('a read cut short (NATS gone mid-read) exits 1 and says so', async () => {
    const server = await nats();
    const subject = 'ledgernet.bulk.events.network.created';
    await withJsm(server, async (jsm, nc) => {
      await jsm.streams.add({ name: 'LEDGERNET', subjects: ['ledgernet.>'] });
      const js = jetstream(nc);
      const body = JSON.stringify({ filler: 'x'.repeat(200) });
      for (let i = 0; i < 60; i++) await Promise.all(Array.from({ length: 1000 }, () => js.publish(subject, body)));
    });
    const r = auditProcess(['--nats', server.url]);
    try {
      await waitFor(() => r.out().length > 0, { what: 'the first lines', timeoutMs: 20_000, intervalMs: 5 });
      await server.kill();
      const code = await r.exit;
      const lines = r.out().split('\n').filter(Boolean).length;
      assert.ok(lines < 60_000, `the read was cut short (${lines} lines)`);
      assert.equal(code, 1, `exit code (stderr: ${r.err()})`);
      assert.match(r.err(), /^ledgernet audit: the read of stream LEDGERNET ended short after \d+ of 60000 message\(s\), the last at stream seq \d+: .+; the output is incomplete$/m);
    } finally {
      r.p.kill('SIGKILL');
      await r.exit;
    }
  });
});

describe('a bad NATS creds file', () => {
  test('missing, a directory, not a creds file, a JWT without a seed: the error names the file and what is wrong', async () => {
    const server = await nats();
    const dir = await mkdtemp(join(tmpdir(), 'ln-creds-'));
    temps.push(dir);
    const cases: [string, string | null, RegExp][] = [
      ['missing.creds', null, /does not exist/],
      ['adir', 'DIR', /is a directory, not a file/],
      ['garbage.creds', 'this is not a creds file\n', /is not a creds file: it has no -----BEGIN NATS USER JWT----- block/],
      [
        'nojwt.creds',
        '-----BEGIN NATS USER JWT-----\nnot-a-jwt\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\nSUAB\n------END USER NKEY SEED------\n',
        /is malformed: its first block is not a JWT/,
      ],
      [
        'noseed.creds',
        `-----BEGIN NATS USER JWT-----\n${Buffer.from('{"typ":"JWT","alg":"ed25519-nkey"}').toString('base64url')}.e30.c2ln\n------END NATS USER JWT------\n`,
        /is malformed: it has a JWT but no -----BEGIN USER NKEY SEED----- block after it/,
      ],
    ];
    for (const [name, content, why] of cases) {
      const file = join(dir, name);
      if (content === 'DIR') await mkdir(file);
      else if (content !== null) await writeFile(file, content);
      const r = await ledgernetCli(['audit', '--nats', server.url, '--nats-creds', file]);
      assert.equal(r.exitCode, 1, `${name}: ${r.stdout}`);
      assert.ok(r.stderr.includes(`the NATS creds file ${file} (--nats-creds, LEDGERNET_NATS_CREDS)`), `${name}: ${r.stderr}`);
      assert.match(r.stderr, why, name);
      assert.doesNotMatch(r.stderr, /SUAB|not-a-jwt/, 'the file\'s content is not quoted');
    }
    // The daemon says the same in status.
    const host = `e2e-creds-${process.pid}`;
    const d = await daemonAt(server.url, host, { env: { LEDGERNET_NATS_CREDS: join(dir, 'garbage.creds') } });
    await ipamEvents(d, 1);
    await waitFor(async () => (await auditStats(d)).lastError !== null, { what: 'the error in status', timeoutMs: 15_000 });
    assert.match((await auditStats(d)).lastError ?? '', /the NATS creds file .*garbage\.creds .* is not a creds file/);
  });
});
