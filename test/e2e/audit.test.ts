// The audit stream end to end: a real dockerd drives the daemon, which publishes to a real
// nats-server (JetStream, temp store, free port). NATS goes away for longer than the stream's
// (shortened) duplicate window while containers come and go, and comes back: the stream holds
// every event once, in order. `audit --verify` names a forged or removed message. A daemon
// started with NATS unreachable works, then catches up.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { TEST_IMAGE, cleanupAll, containerIp, docker, track, uniqueName, waitFor } from '../helpers/docker.ts';
import { ledgernetCli, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { assertNoLeaks, waitNoLeaks } from '../helpers/leaks.ts';
import { createNatsServer, type NatsServer } from '../helpers/nats.ts';

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

async function nats(started = true): Promise<NatsServer> {
  const s = await createNatsServer({ started });
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

async function logIds(d: DaemonHandle): Promise<string[]> {
  const r = await ledgernetCli(['events', '--json', '--state-dir', d.stateDir]);
  assert.equal(r.exitCode, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { id: string }).id);
}

async function audit(server: NatsServer, host: string, ...flags: string[]) {
  return ledgernetCli(['audit', '--nats', server.url, '--host', host, ...flags]);
}

async function streamIds(server: NatsServer, host: string): Promise<string[]> {
  const r = await audit(server, host, '--json');
  assert.equal(r.exitCode, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { id: string }).id);
}

/** Waits until the stream holds exactly the log's events, once each, in order. */
async function waitCaughtUp(d: DaemonHandle, server: NatsServer, host: string, timeoutMs = 30_000): Promise<string[]> {
  let last: string[] = [];
  await waitFor(
    async () => {
      const want = await logIds(d);
      last = await streamIds(server, host);
      assert.deepEqual(last, want);
      return true;
    },
    { what: `the stream to hold the log's events once each, in order (stream: ${last.length} ids)`, timeoutMs, intervalMs: 300 },
  );
  return last;
}

async function auditStats(d: DaemonHandle): Promise<{ backlog: number; connected: boolean }> {
  const r = await ledgernetCli(['status', '--json', '--state-dir', d.stateDir]);
  return (JSON.parse(r.stdout) as { daemon: { audit: { backlog: number; connected: boolean } } }).daemon.audit;
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
    assert.match(readable.stdout, new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ ${host} network ${net.id.slice(0, 12)} created 10\\.231\\.20\\.0/24$`, 'm'));
    const json = await audit(server, host, '--json');
    const first = JSON.parse(json.stdout.split('\n')[0] ?? '') as Record<string, unknown>;
    assert.equal(first['specversion'], '1.0');
    assert.equal(first['type'], 'io.ledgernet.network.created.v1');
    assert.equal(first['source'], `ledgernet://${host}`);
    assert.equal(first['id'], `${host}:1`);

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
