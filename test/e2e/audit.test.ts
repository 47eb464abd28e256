// The audit stream end to end: a real dockerd drives the daemon, which publishes to a real
// nats-server (JetStream, temp store, free port). NATS goes away for longer than the stream's
// (shortened) duplicate window while containers come and go, and comes back: the stream holds
// every event once, in order. `audit --verify` names a forged or removed message. A daemon
// started with NATS unreachable works, then catches up.
import assert from 'node:assert/strict';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { TEST_IMAGE, cleanupAll, containerIp, docker, track, uniqueName, waitFor } from '../helpers/docker.ts';
import { ledgernetCli, pluginCall, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { assertNoLeaks, waitNoLeaks } from '../helpers/leaks.ts';
import { createNatsServer, freePort, type NatsServer, type NatsServerOptions } from '../helpers/nats.ts';
import { audit, auditStats, daemonAt, ipamEvents, scrape, streamIds, waitCaughtUp } from '../helpers/audit.ts';

const servers: NatsServer[] = [];
const SECRET = 'tok-do-not-log-7f3a9c';

before(async () => {
  await assertNoLeaks();
});

afterEach(async () => {
  await cleanupAll();
});

after(async () => {
  await cleanupAll();
  // Deletes converge after Docker's answer: let the daemon finish before stopping it.
  await waitNoLeaks().catch((e: unknown) => console.error(String(e)));
  await stopAllDaemons();
  for (const s of servers) await s.stop();
});

async function nats(started = true, auth: NatsServerOptions = {}): Promise<NatsServer> {
  const s = await createNatsServer({ started, ...auth });
  servers.push(s);
  return s;
}

function daemonWith(server: NatsServer, host: string): Promise<DaemonHandle> {
  return startDaemon({
    extraArgs: ['--reconcile-interval', '1', '--nats', server.url, '--nats-dup-window', '1s'],
    // The test server has no auth and ignores the token; it is here to prove it is never logged.
    env: { LEDGERNET_HOST: host, LEDGERNET_NATS_TOKEN: SECRET },
  });
}

async function timed<T>(what: string, fn: () => Promise<T>, maxMs: number): Promise<T> {
  const t0 = Date.now();
  const r = await fn();
  const ms = Date.now() - t0;
  assert.ok(ms < maxMs, `${what} took ${ms} ms (limit ${maxMs} ms): NATS must not slow Docker calls`);
  return r;
}

async function createNetwork(d: DaemonHandle, subnet: string): Promise<{ name: string; id: string }> {
  const name = track.network(uniqueName('lna'));
  const r = await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', subnet, name]);
  assert.equal(r.exitCode, 0, `network create failed: ${r.stderr}\n${d.logs().slice(-2000)}`);
  const id = (await docker(['network', 'inspect', '-f', '{{.Id}}', name], { check: true })).stdout.trim();
  return { name, id };
}

async function run(d: DaemonHandle, network: string): Promise<string> {
  const name = track.container(uniqueName('c'));
  const r = await docker(['run', '-d', '--name', name, '--network', network, TEST_IMAGE, 'sleep', '600']);
  assert.equal(r.exitCode, 0, `docker run failed: ${r.stderr}\n${d.logs().slice(-2000)}`);
  return name;
}

describe('the audit stream on NATS JetStream', () => {
  const host = `e2e-audit-${process.pid}`;
  let server: NatsServer;
  let daemon: DaemonHandle;

  test('events of a docker scenario arrive in order; a NATS outage longer than the duplicate window loses and doubles nothing', async () => {
    server = await nats();
    daemon = await daemonWith(server, host);
    const net = await createNetwork(daemon, '10.231.20.0/24');
    const c1 = await run(daemon, net.name);
    const c2 = await run(daemon, net.name);
    const ids = await waitCaughtUp(daemon, server, host);
    assert.ok(ids.length >= 5, `network + 2×(endpoint created, joined): ${ids.join(' ')}`);

    const readable = await audit(server, host);
    assert.equal(readable.exitCode, 0, readable.stderr);
    assert.match(readable.stdout, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ ${host} network ${net.id.slice(0, 12)} created 10\\.231\\.20\\.0/24 \\(by docker NetworkDriver\\.CreateNetwork\\)$`, 'm'));
    const json = await audit(server, host, '--json');
    const first = JSON.parse(json.stdout.split('\n')[0] ?? '') as Record<string, unknown>;
    assert.equal(first['specversion'], '1.0');
    assert.equal(first['type'], 'io.ledgernet.network.created.v1');
    assert.equal(first['source'], `ledgernet://${host}`);
    assert.equal(first['id'], `${host}:1`);
    // Who made it happen travels with it (extension attributes, covered by its hash).
    assert.deepEqual([first['causeby'], first['causecall']], ['docker', 'NetworkDriver.CreateNetwork']);

    // NATS goes away; Docker keeps working at full speed while events queue in the log.
    await server.kill();
    const c3 = await timed('docker run with NATS down', () => run(daemon, net.name), 8_000);
    assert.ok(await containerIp(c3, net.name));
    await timed('docker rm with NATS down', () => docker(['rm', '-f', c1], { check: true }), 8_000);
    await waitFor(async () => (await auditStats(daemon)).backlog > 0, { what: 'a backlog in /status' });
    // The first publish fails once its ack times out (5 s): then the log says so.
    await waitFor(() => /cannot publish to NATS/.test(daemon.logs()), { what: 'the log line about NATS', timeoutMs: 15_000 });
    // Outlast the 1 s duplicate window, then more events.
    await new Promise((r) => setTimeout(r, 3_000));
    await timed('docker rm with NATS down', () => docker(['rm', '-f', c2], { check: true }), 8_000);
    await waitFor(async () => (await auditStats(daemon)).connected === false, { what: 'connected: false in /status', timeoutMs: 15_000 });

    await server.start();
    const after = await waitCaughtUp(daemon, server, host, 60_000);
    assert.equal(new Set(after).size, after.length, 'no event twice');
    assert.deepEqual(after.slice(0, ids.length), ids);
    await waitFor(async () => (await auditStats(daemon)).backlog === 0, { what: 'backlog 0' });
    const verify = await audit(server, host, '--verify');
    assert.equal(verify.exitCode, 0, verify.stderr);
    assert.match(verify.stdout, /^ok: \d+ event\(s\) from 1 host\(s\)/);

    await cleanupAll();
    await waitNoLeaks();
    await waitCaughtUp(daemon, server, host);
    // Docker's names were recorded and published: the reader labels later lines with them.
    const named = await audit(server, host);
    assert.match(named.stdout, new RegExp(`^\\S+ ${host} network ${net.id.slice(0, 12)} is named ${net.name} in Docker \\(by ledgernet docker-sync\\)$`, 'm'));
    assert.match(named.stdout, new RegExp(`^\\S+ ${host} network ${net.id.slice(0, 12)}\\(${net.name}\\) deleted \\(by docker NetworkDriver\\.DeleteNetwork\\)$`, 'm'));
    await daemon.stop();
    assert.doesNotMatch(daemon.logs(), new RegExp(SECRET), 'the NATS token is never logged');
  });

  test('audit --verify names a forged message and a removed one, and exits non-zero', async () => {
    const nc = await connect({ servers: server.url });
    try {
      const jsm = await jetstreamManager(nc);
      const js = jetstream(nc);
      const before = await audit(server, host, '--verify');
      assert.equal(before.exitCode, 0, before.stderr);

      // A forged copy of event 2 with other data, published later (no msg id, so no dedup).
      const orig = await jsm.streams.getMessage('LEDGERNET', { seq: 2 });
      assert.ok(orig);
      const ce = orig.json<{ id: string; data: Record<string, unknown> }>();
      const forged = { ...ce, data: { ...ce.data, address: '10.231.20.99/24' } };
      const ack = await js.publish(orig.subject, JSON.stringify(forged));
      const forgedRun = await audit(server, host, '--verify');
      assert.equal(forgedRun.exitCode, 1, forgedRun.stdout);
      assert.match(forgedRun.stderr, new RegExp(`event ${ce.id} \\(stream seq ${ack.seq}\\) was altered`));
      await jsm.streams.deleteMessage('LEDGERNET', ack.seq);
      assert.equal((await audit(server, host, '--verify')).exitCode, 0, 'clean again without the forged message');

      // A removed message: the event with seq 3.
      await jsm.streams.deleteMessage('LEDGERNET', 3);
      const removed = await audit(server, host, '--verify');
      assert.equal(removed.exitCode, 1);
      assert.match(removed.stderr, new RegExp(`gap: ${host}:3 is missing before event ${host}:4`));
    } finally {
      await nc.close();
    }
  });

  test('a daemon started with NATS unreachable serves Docker at once, then catches up', async () => {
    await stopAllDaemons(); // in case an earlier test failed half-way
    const late = await nats(false);
    const host2 = `e2e-late-${process.pid}`;
    const d = await daemonWith(late, host2);
    const net = await timed('network create with NATS unreachable', () => createNetwork(d, '10.231.21.0/24'), 8_000);
    const c = await timed('docker run with NATS unreachable', () => run(d, net.name), 8_000);
    assert.ok(await containerIp(c, net.name));
    const stats = await auditStats(d);
    assert.ok(stats.backlog >= 3, `backlog ${stats.backlog}`);
    assert.equal(stats.connected, false);

    await late.start();
    await waitCaughtUp(d, late, host2);
    const verify = await audit(late, host2, '--verify');
    assert.equal(verify.exitCode, 0, verify.stderr);
    await cleanupAll();
    await waitNoLeaks();
    await waitCaughtUp(d, late, host2);
    await d.stop();
  });
});

describe('the audit stream holds only what the log holds', () => {
  afterEach(async () => {
    await stopAllDaemons();
  });

  test('a reset state dir with its host\'s events already in the stream: publishing stops, status, metric and log say why; it resumes once the stream is purged', async () => {
    const server = await nats();
    const host = `e2e-reset-${process.pid}`;
    // A short duplicate window: the purge at the end is followed by a republish of the same ids.
    const first = await daemonAt(server.url, host, { extraArgs: ['--nats-dup-window', '1s'] });
    await ipamEvents(first, 3);
    const before = await waitCaughtUp(first, server, host);
    assert.ok(before.length >= 6, before.join(' '));
    await first.stop(); // and its state dir is gone: the reset

    const port = await freePort();
    const d = await daemonAt(server.url, host, { extraArgs: ['--metrics', `127.0.0.1:${port}`] });
    await ipamEvents(d, 1);
    await waitFor(async () => (await auditStats(d)).conflict !== null, { what: 'a conflict in status --json' });
    const st = await auditStats(d);
    assert.equal(st.conflict?.reason, 'stream_ahead');
    const msg = st.conflict?.message ?? '';
    assert.match(
      msg,
      new RegExp(`^stream LEDGERNET holds ${host}:${before.length} \\(hash [0-9a-f]{16}…\\) but the log ends at ${host}:\\d+: the state dir was reset or another host publishes as ${host}; publishing stopped$`),
    );
    assert.equal(st.cursor, 0, 'the cursor did not jump to the stream');
    assert.equal(st.backlog, st.head);
    const human = await ledgernetCli(['status', '--state-dir', d.stateDir]);
    assert.ok(human.stdout.includes(`publishing STOPPED, backlog ${st.backlog} event(s): ${msg}`), human.stdout);
    assert.match(await scrape(port), /^ledgernet_nats_publishing_stopped\{reason="stream_ahead"\} 1$/m);
    const errorLine = d.logs().split('\n').find((l) => l.includes(msg));
    assert.ok(errorLine, d.logs());
    assert.equal((JSON.parse(errorLine) as { level: number }).level, 50, 'logged at error level');
    assert.deepEqual(await streamIds(server, host), before, 'nothing of the new log was published, nothing skipped');

    // The README's fix: move the old events out of the stream; publishing resumes by itself.
    const nc = await connect({ servers: server.url });
    try {
      await (await jetstreamManager(nc)).streams.purge('LEDGERNET', { filter: `ledgernet.${host}.events.>` });
    } finally {
      await nc.close();
    }
    await waitCaughtUp(d, server, host, 45_000);
    assert.equal((await auditStats(d)).conflict, null);
    assert.match(await scrape(port), /^ledgernet_nats_publishing_stopped 0$/m);
    assert.equal((await audit(server, host, '--verify')).exitCode, 0);
  });

  test('the log archived while the daemon publishes: the stream stays whole, events archived before NATS had them are sent from the archive, a restart needs no archive', async () => {
    const server = await nats();
    const host = `e2e-archive-${process.pid}`;
    const stateDir = await mkdtemp(join(tmpdir(), 'ledgernet-archive-'));
    try {
      await archivedWhilePublishing(server, host, stateDir);
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });

  async function archivedWhilePublishing(server: NatsServer, host: string, stateDir: string): Promise<void> {
    const d = await daemonAt(server.url, host, { stateDir });
    await ipamEvents(d, 2);
    const published = await waitCaughtUp(d, server, host);
    const first = await ledgernetCli(['events', 'archive', '--state-dir', d.stateDir]);
    assert.equal(first.exitCode, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`^archived events 1 to ${published.length} \\(\\d+ bytes\\) in ${d.stateDir}/archive/events-0+1-0+${published.length}\\.log`));
    // NATS away while more events come and are archived before it had them.
    await server.kill();
    await ipamEvents(d, 2);
    const second = await ledgernetCli(['events', 'archive', '--state-dir', d.stateDir]);
    assert.equal(second.exitCode, 0, second.stderr);
    // (Event published.length + 1 is the first archive's own record, log.archived.)
    assert.match(second.stdout, new RegExp(`^archived events ${published.length + 1} to ${published.length + 5} `));
    // Restarted: the events NATS never had are in no memory now, only in the archive.
    await d.stop();
    const d2 = await daemonAt(server.url, host, { stateDir });
    await server.start();
    await ipamEvents(d2, 1);
    const all = await waitCaughtUp(d2, server, host, 45_000);
    assert.deepEqual(all, Array.from({ length: published.length + 8 }, (_, i) => `${host}:${i + 1}`), 'every event once, in order');
    const v = await audit(server, host, '--verify');
    assert.equal(v.exitCode, 0, v.stderr);
    const status = await ledgernetCli(['status', '--json', '--state-dir', d.stateDir]);
    const st = JSON.parse(status.stdout) as { lastSeq: number; archived: { files: number; events: number } };
    assert.deepEqual([st.lastSeq, st.archived.files, st.archived.events], [all.length, 2, all.length - 3]);
    // Who archived, on the stream too.
    const shownAudit = await audit(server, host);
    assert.match(shownAudit.stdout, new RegExp(`events 1 to ${published.length} archived in archive/events-0+1-0+${published.length}\\.log \\(\\d+ bytes\\)`));
    // A restart reads the snapshot the archive wrote and events.log, never the archives: gone, it still starts.
    await d2.stop();
    const moved = `${stateDir}.archive-moved`;
    await rename(join(stateDir, 'archive'), moved);
    try {
      const again = await daemonAt(server.url, host, { stateDir });
      await ipamEvents(again, 1);
      // (The log as `events` shows it now starts after the archives, so compare with the stream by count.)
      const want = Array.from({ length: all.length + 2 }, (_, i) => `${host}:${i + 1}`);
      await waitFor(async () => (assert.deepEqual(await streamIds(server, host), want), true), { what: 'the events after the restart in the stream' });
      const shown = await ledgernetCli(['events', '--state-dir', stateDir]);
      assert.match(shown.stderr, new RegExp(`events 1 to ${all.length - 3} were archived and are no longer in ${stateDir}/archive`));
      await again.stop();
    } finally {
      await rename(moved, join(stateDir, 'archive'));
    }
    const whole = await ledgernetCli(['events', 'verify', '--state-dir', stateDir]);
    assert.equal(whole.exitCode, 0, whole.stderr);
    assert.match(whole.stdout, new RegExp(`^ok: ${all.length + 2} events, hash chain intact \\(2 archive files`));
  }

  test('serve --archive-log-size: the daemon archives events.log by itself once it is that large; nothing is lost on the way', async () => {
    const server = await nats();
    const host = `e2e-autoarchive-${process.pid}`;
    const d = await daemonAt(server.url, host, { extraArgs: ['--archive-log-size', '4K'] });
    await ipamEvents(d, 12);
    // An archive the last events started may still be running (its log.archived not yet
    // appended): the stream and the archives are read again until they agree, or the wait ends.
    type Status = { logBytes: number; archived: { files: number; events: number } };
    let ids: string[] = [];
    let st: Status = { logBytes: 0, archived: { files: 0, events: 0 } };
    await waitFor(
      async () => {
        ids = await waitCaughtUp(d, server, host);
        st = JSON.parse((await ledgernetCli(['status', '--json', '--state-dir', d.stateDir])).stdout) as Status;
        return ids.length === 24 + st.archived.files;
      },
      { what: '24 IPAM events and a log.archived for each archive', timeoutMs: 20_000, intervalMs: 300 },
    ).catch(() => undefined);
    assert.equal(ids.length, 24 + st.archived.files, '24 IPAM events and a log.archived for each archive');
    assert.ok(st.archived.files >= 2, `archives: ${JSON.stringify(st.archived)}`);
    assert.ok(st.logBytes < 4096 + 1024, `events.log holds ${st.logBytes} bytes`);
    assert.ok(d.logs().split('\n').some((l) => l.includes('event log archived: it reached')), d.logs());
    const v = await ledgernetCli(['events', 'verify', '--state-dir', d.stateDir]);
    assert.equal(v.exitCode, 0, v.stderr);
    assert.match(v.stdout, new RegExp(`^ok: ${ids.length} events, hash chain intact \\(${st.archived.files} archive files`));
    assert.equal((await audit(server, host, '--verify')).exitCode, 0);
  });

  test('hosts web.1 and web_1 publish to one stream: both in full, each on its own subject', async () => {
    const server = await nats();
    const logs: Record<string, string[]> = {};
    for (const host of ['web.1', 'web_1']) {
      const d = await daemonAt(server.url, host);
      await ipamEvents(d, 13);
      logs[host] = await waitCaughtUp(d, server, host);
      assert.ok((logs[host] ?? []).length >= 26);
      assert.equal((await auditStats(d)).conflict, null);
      await d.stop();
    }
    for (const host of ['web.1', 'web_1']) {
      assert.deepEqual(await streamIds(server, host), logs[host]);
      const v = await audit(server, host, '--verify');
      assert.equal(v.exitCode, 0, v.stderr);
      assert.match(v.stdout, new RegExp(`^ok: ${logs[host]?.length} event\\(s\\) from 1 host\\(s\\)`));
    }
    const all = await ledgernetCli(['audit', '--nats', server.url, '--verify']);
    assert.equal(all.exitCode, 0, all.stderr);
    assert.match(all.stdout, /from 2 host\(s\)/);
    const nc = await connect({ servers: server.url });
    try {
      const jsm = await jetstreamManager(nc);
      assert.equal((await jsm.streams.getMessage('LEDGERNET', { last_by_subj: 'ledgernet.web_2e1.events.>' }))?.json<{ source: string }>().source, 'ledgernet://web.1');
      assert.equal((await jsm.streams.getMessage('LEDGERNET', { last_by_subj: 'ledgernet.web_5f1.events.>' }))?.json<{ source: string }>().source, 'ledgernet://web_1');
    } finally {
      await nc.close();
    }
  });
});

describe('NATS credentials', () => {
  const PASS = `pa@ss:w0rd-${process.pid}`;
  const WRONG = `wr0ng@pw-${process.pid}`;
  const TOKEN = `tok-${process.pid}-secret`;

  afterEach(async () => {
    await stopAllDaemons();
  });

  const noSecrets = (text: string) => {
    for (const secret of [PASS, WRONG, TOKEN, encodeURIComponent(PASS)]) assert.ok(!text.includes(secret), `a secret is shown:\n${text.slice(-3000)}`);
  };

  test('user:password@ in the URL (an @ in the password, scheme-less too) authenticates; the password shows nowhere', async () => {
    const server = await nats(true, { user: 'alice', pass: PASS });
    const host = `e2e-user-${process.pid}`;
    const withCreds = `nats://alice:${PASS}@127.0.0.1:${server.port}`;
    const d = await daemonAt(withCreds, host);
    await ipamEvents(d, 2);
    await waitCaughtUp(d, withCreds, host);
    // The reader takes the same URLs: scheme-less here.
    const v = await audit(`alice:${PASS}@127.0.0.1:${server.port}`, host, '--verify');
    assert.equal(v.exitCode, 0, v.stderr);
    const st = await auditStats(d);
    assert.equal(st.target, `nats://***@127.0.0.1:${server.port} (auth user alice)`);
    assert.equal(st.connected, true);
    const human = await ledgernetCli(['status', '--state-dir', d.stateDir]);
    noSecrets(human.stdout + JSON.stringify(st));
    await d.stop();
    noSecrets(d.logs());
    assert.match(d.logs(), /publishing the event log to NATS JetStream/);
  });

  test('wrong credentials: a clear error in log and status, Docker calls unaffected, no secret shown; a token works', async () => {
    const server = await nats(true, { user: 'alice', pass: PASS });
    const host = `e2e-wrong-${process.pid}`;
    // From the settings (the managed plugin's env) this time.
    const d = await daemonAt(`127.0.0.1:${server.port}`, host, { env: { LEDGERNET_NATS_USER: 'alice', LEDGERNET_NATS_PASSWORD: WRONG } });
    const t0 = Date.now();
    await ipamEvents(d, 3);
    assert.ok(Date.now() - t0 < 8_000, 'IPAM calls wait for nothing');
    await waitFor(async () => /refused the credentials/.test((await auditStats(d)).lastError ?? ''), { what: 'the error in status', timeoutMs: 15_000 });
    const st = await auditStats(d);
    assert.equal(st.lastError, `NATS 127.0.0.1:${server.port} (auth user alice) refused the credentials: Authorization Violation`);
    assert.equal(st.connected, false);
    assert.ok(st.backlog >= 6);
    const human = await ledgernetCli(['status', '--state-dir', d.stateDir]);
    assert.match(human.stdout, /NOT reachable \(NATS .* refused the credentials: Authorization Violation\)/);
    assert.ok(d.logs().split('\n').some((l) => l.includes('cannot publish to NATS') && l.includes('refused the credentials')), d.logs());
    const bad = await audit(`nats://alice:${WRONG}@127.0.0.1:${server.port}`, host);
    assert.notEqual(bad.exitCode, 0);
    assert.match(bad.stderr, /refused the credentials/);
    noSecrets(human.stdout + JSON.stringify(st) + bad.stdout + bad.stderr);
    await d.stop();
    noSecrets(d.logs());

    const tokServer = await nats(true, { token: TOKEN });
    const t = await daemonAt(tokServer.url, host, { env: { LEDGERNET_NATS_TOKEN: TOKEN } });
    await ipamEvents(t, 1);
    await waitCaughtUp(t, `nats://${TOKEN}@127.0.0.1:${tokServer.port}`, host);
    assert.equal((await auditStats(t)).target, `${tokServer.url} (auth token)`);
    await t.stop();
    noSecrets(t.logs());
  });
});
