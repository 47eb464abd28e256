// Restarts with the real dockerd. Traffic continuity: two containers ping each other every 10 ms
// while the daemon is SIGKILLed and restarted 10 times and restarted gracefully 10 times; not one
// packet may be lost and no kernel object may be recreated (links keep their ifindex, rules and
// qdiscs their packet counters).
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { TEST_IMAGE, cleanupAll, containerIp, docker, ping, track, uniqueName } from '../helpers/docker.ts';
import { kill9AndRestart, ledgernetCli, restartGracefully, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { kernelObjects, recreated } from '../helpers/kernel-objects.ts';
import { assertNoLeaks, waitNoLeaks } from '../helpers/leaks.ts';

const DAEMON_ARGS = ['--reconcile-interval', '1'];
const KILLS = 10;
const GRACEFUL = 10;

let daemon: DaemonHandle;

before(async () => {
  await assertNoLeaks();
  daemon = await startDaemon({ extraArgs: DAEMON_ARGS });
});

afterEach(async () => {
  await cleanupAll();
});

after(async () => {
  await cleanupAll();
  await stopAllDaemons();
});

async function createNetwork(subnet: string, ...extra: string[]): Promise<string> {
  const name = track.network(uniqueName('ln'));
  const r = await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', subnet, ...extra, name]);
  assert.equal(r.exitCode, 0, `network create failed: ${r.stderr}\n${daemon.logs().slice(-2000)}`);
  return name;
}

async function runContainer(network: string, ...extra: string[]): Promise<string> {
  const name = track.container(uniqueName('c'));
  const r = await docker(['run', '-d', '--name', name, '--network', network, '--stop-timeout', '1', ...extra, TEST_IMAGE, 'sleep', '3600']);
  assert.equal(r.exitCode, 0, `docker run failed: ${r.stderr}\n${daemon.logs().slice(-2000)}`);
  return name;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A busybox ping every 10 ms inside `from`, in the background, its output in the container. */
async function startPinger(from: string, to: string): Promise<void> {
  const r = await docker(['exec', '-d', from, 'sh', '-c', `exec ping -i 0.01 ${to} >/tmp/ping.out 2>&1`]);
  assert.equal(r.exitCode, 0, r.stderr);
}

export interface PingCount {
  sent: number;
  received: number;
  /** Sequence numbers below the last answered one that got no answer. */
  lost: number[];
  /** Sent after the last answer (in flight when ping was stopped): 0 or 1. */
  inFlight: number;
}

/** Stops the pinger (SIGINT: it prints its totals) and counts every sequence number. */
async function stopPinger(from: string): Promise<PingCount> {
  await docker(['exec', from, 'killall', '-INT', 'ping']);
  let out = '';
  for (let i = 0; i < 50 && !/packets transmitted/.test(out); i++) {
    await sleep(100);
    out = (await docker(['exec', from, 'cat', '/tmp/ping.out'])).stdout;
  }
  const totals = /(\d+) packets transmitted, (\d+) packets received/.exec(out);
  assert.ok(totals, `ping printed no totals:\n${out.slice(-2000)}`);
  const seqs = new Set([...out.matchAll(/ seq=(\d+) /g)].map((m) => Number(m[1])));
  const last = Math.max(-1, ...seqs);
  const lost: number[] = [];
  for (let s = 0; s <= last; s++) if (!seqs.has(s)) lost.push(s);
  const sent = Number(totals[1]);
  return { sent, received: Number(totals[2]), lost, inFlight: sent - (last + 1) };
}

describe('restarts', () => {
  test(`traffic continuity: ${KILLS} SIGKILLs and ${GRACEFUL} graceful restarts under 10 ms pings lose no packet and recreate nothing`, async () => {
    // Rates put a tbf on each veth and an ifb per endpoint: tc objects are compared too.
    const n = await createNetwork('10.231.9.0/24', '-o', 'ledgernet.ingress_rate=200mbit', '-o', 'ledgernet.egress_rate=200mbit');
    const c1 = await runContainer(n);
    const c2 = await runContainer(n);
    const [ip1, ip2] = [await containerIp(c1, n), await containerIp(c2, n)];
    assert.ok(await ping(c1, ip2), 'the containers reach each other before the restarts');

    const before = await kernelObjects();
    assert.equal(before.links.filter((l) => l.startsWith('lnv-')).length, 2, `two veths: ${before.links.join(' ')}`);
    assert.ok(before.links.some((l) => l.startsWith('lnb-')), 'a bridge');
    assert.ok(before.links.some((l) => l.startsWith('lni-')), 'ifb devices (egress_rate)');
    assert.ok([...before.qdiscs.keys()].some((k) => k.includes(' tbf ')), `tbf qdiscs: ${[...before.qdiscs.keys()].join(', ')}`);
    const eth0Before = [await ifindexIn(c1), await ifindexIn(c2)];

    await startPinger(c1, ip2);
    await startPinger(c2, ip1);
    const started = Date.now();
    // Kills land at different moments: right after the socket answers (the start-up pass may
    // still run) or a little later.
    for (let i = 0; i < KILLS; i++) {
      await sleep((i % 3) * 150);
      daemon = await kill9AndRestart(daemon);
    }
    for (let i = 0; i < GRACEFUL; i++) {
      await sleep((i % 3) * 150);
      daemon = await restartGracefully(daemon);
    }
    await sleep(500);
    const pings = [await stopPinger(c1), await stopPinger(c2)];
    const seconds = (Date.now() - started) / 1000;
    const after = await kernelObjects();

    for (const [who, p] of [
      [`${c1} -> ${c2}`, pings[0]],
      [`${c2} -> ${c1}`, pings[1]],
    ] as const) {
      assert.ok(p, who);
      // Every 10 ms for the whole run (busybox keeps the pace: at least half the nominal count).
      assert.ok(p.sent >= seconds * 50, `${who}: only ${p.sent} pings sent in ${seconds.toFixed(1)} s`);
      assert.deepEqual(p.lost, [], `${who}: no packet lost (${p.sent} sent, ${p.received} received)`);
      assert.ok(p.inFlight <= 1, `${who}: ${p.inFlight} unanswered at the end`);
    }
    assert.deepEqual(recreated(before, after), [], 'no link, rule or qdisc was recreated');
    assert.deepEqual([await ifindexIn(c1), await ifindexIn(c2)], eth0Before, 'the containers keep their eth0');
    console.log(
      `traffic continuity: ${KILLS} kills + ${GRACEFUL} graceful restarts in ${seconds.toFixed(1)} s; ` +
        `pings ${pings.map((p) => `${p?.sent} sent/${p?.received} received/${p?.lost.length} lost`).join(', ')}; ` +
        `${after.links.length} links, ${after.rules.size} rules, ${after.qdiscs.size} qdiscs compared`,
    );

    const dr = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', daemon.stateDir]);
    assert.equal(dr.exitCode, 0, dr.stdout + dr.stderr);
    const c3 = await runContainer(n);
    assert.ok(await ping(c3, ip1), 'a container started after the restarts reaches an old one');
    const verify = await ledgernetCli(['events', 'verify', '--state-dir', daemon.stateDir]);
    assert.equal(verify.exitCode, 0, verify.stderr);
    await cleanupAll();
    await waitNoLeaks();
  });
});

/** The ifindex of eth0 inside a container. */
async function ifindexIn(container: string): Promise<number> {
  const r = await docker(['exec', container, 'cat', '/sys/class/net/eth0/ifindex'], { check: true });
  return Number(r.stdout.trim());
}
