// Restarts with the real dockerd. Traffic continuity: two containers ping each other every 10 ms
// while the daemon is SIGKILLed and restarted 10 times and restarted gracefully 10 times; not one
// packet may be lost and no kernel object may be recreated (links keep their ifindex, rules and
// qdiscs their packet counters). Docker restarts: dockerd restarted under a running ledgernet;
// a network removed while ledgernet was down; ledgernet started after dockerd gave up on
// `--restart always` containers. dockerd runs again at the end whatever happens.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_IMAGE, cleanupAll, containerEndpoint, containerIp, docker, ping, track, uniqueName, waitFor } from '../helpers/docker.ts';
import { PLUGIN_SOCKET, kill9AndRestart, ledgernetCli, loggedEvents, pluginCall, restartGracefully, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { startPluginProxy } from '../helpers/plugin-proxy.ts';
import { dockerdLogSince, dockerdLogSize, ensureDockerd, spawnDockerd, stopDockerd, waitDockerAnswers } from '../helpers/dockerd.ts';
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
  // dockerd first (a failed test may have left it stopped), then a ledgernet to answer the
  // removals (without one, Docker waits ~15 s per network), then clean up.
  await ensureDockerd();
  if (daemon.proc.exitCode !== null || daemon.proc.signalCode !== null) daemon = await startDaemon(daemon.options);
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
  /** Date.now() when the stop was sent (the end of this pinger's run). */
  stoppedAt: number;
}

/** Stops the pinger (SIGINT: it prints its totals) and counts every sequence number. */
async function stopPinger(from: string): Promise<PingCount> {
  const stoppedAt = Date.now();
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
  return { sent, received: Number(totals[2]), lost, inFlight: sent - (last + 1), stoppedAt };
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
      // Every 10 ms for the whole run (busybox keeps the pace: at least half the nominal count),
      // counted over this pinger's own run (the first stops while the second still pings).
      const ran = (p.stoppedAt - started) / 1000;
      assert.ok(p.sent >= ran * 50, `${who}: only ${p.sent} pings sent in ${ran.toFixed(1)} s`);
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

  test('dockerd restarted under a running ledgernet: --restart always containers come back and reach each other, the network keeps its bridge, new containers start', async () => {
    const n = await createNetwork('10.231.14.0/24');
    const c1 = await runContainer(n, '--restart', 'always');
    const c2 = await runContainer(n, '--restart', 'always');
    assert.ok(await ping(c1, await containerIp(c2, n)));
    const bridgeBefore = (await kernelObjects()).links.filter((l) => l.startsWith('lnb-'));

    await stopDockerd();
    await ensureDockerd();
    await waitRunning(c1, c2);
    assert.ok(await ping(c1, await containerIp(c2, n)), `${c1} reaches ${c2} after the dockerd restart`);
    assert.ok(await ping(c2, await containerIp(c1, n)), `${c2} reaches ${c1} after the dockerd restart`);
    assert.deepEqual((await kernelObjects()).links.filter((l) => l.startsWith('lnb-')), bridgeBefore, 'the same bridge (same ifindex)');
    const c3 = await runContainer(n);
    assert.ok(await ping(c3, await containerIp(c1, n)), 'a new container reaches a restarted one');
    const dr = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', daemon.stateDir]);
    assert.equal(dr.exitCode, 0, dr.stdout + dr.stderr);
    await cleanupAll();
    await waitNoLeaks();
  });

  test('docker network rm while ledgernet is down: Docker removes it anyway; when ledgernet returns its bridge, veth, rules, qdiscs and IPAM pool go, recorded as network.collected', async () => {
    const subnet = '10.231.15.0/24';
    const n = await createNetwork(subnet, '--ipam-driver', 'ledgernet', '-o', 'ledgernet.ingress_rate=50mbit');
    const netId = (await docker(['network', 'inspect', '-f', '{{.Id}}', n], { check: true })).stdout.trim();
    // An endpoint Docker's DeleteEndpoint never reached (as after a crash mid-call): its veth and
    // qdisc must go with the network.
    const epId = 'c011ec7ed'.padEnd(64, '0');
    const ep = await pluginCall('NetworkDriver.CreateEndpoint', {
      NetworkID: netId,
      EndpointID: epId,
      Interface: { Address: '10.231.15.9/24', AddressIPv6: '', MacAddress: '' },
      Options: {},
    });
    assert.equal(ep.status, 200, ep.text);
    const ours = (o: Awaited<ReturnType<typeof kernelObjects>>) => ({
      links: o.links.filter((l) => l.startsWith(`lnb-${netId.slice(0, 11)}#`) || l.startsWith(`lnv-${epId.slice(0, 11)}#`)),
      qdiscs: [...o.qdiscs.keys()].filter((k) => k.startsWith(`lnv-${epId.slice(0, 11)} `)),
      rules: [...o.rules.keys()].filter((k) => k.includes(netId.slice(0, 12)) || k.includes(`lnb-${netId.slice(0, 11)}`)),
    });
    const before = ours(await kernelObjects());
    assert.equal(before.links.length, 2, `bridge and veth: ${before.links.join(' ')}`);
    assert.ok(before.qdiscs.length > 0, 'a qdisc on the veth');
    assert.ok(before.rules.length > 0, 'rules for the network');

    await daemon.terminate();
    const t0 = Date.now();
    const rm = await docker(['network', 'rm', n], { timeoutMs: 60_000 });
    const rmSeconds = (Date.now() - t0) / 1000;
    assert.equal(rm.exitCode, 0, `Docker removes the network anyway: ${rm.stderr}`);
    assert.equal((await docker(['network', 'inspect', n])).exitCode, 1, 'Docker no longer has it');
    assert.deepEqual(ours(await kernelObjects()), before, 'nothing changed while ledgernet was down');

    daemon = await startDaemon(daemon.options);
    await waitFor(
      async () => {
        const now = ours(await kernelObjects());
        return now.links.length === 0 && now.qdiscs.length === 0 && now.rules.length === 0;
      },
      { what: 'the network\'s leftovers to be removed', timeoutMs: 15_000 },
    );
    const events = (await ledgernetCli(['events', '--json', '--state-dir', daemon.stateDir])).stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; data: { networkId?: string; endpointId?: string; poolId?: string } });
    const tail = events.slice(events.findIndex((e) => e.type === 'endpoint.deleted' && e.data.endpointId === epId));
    assert.deepEqual(
      tail.filter((e) => e.type !== 'reconcile.applied').map((e) => e.type),
      ['endpoint.deleted', 'network.collected', 'pool.released'],
    );
    assert.equal(tail.find((e) => e.type === 'network.collected')?.data.networkId, netId);
    assert.match(daemon.logs(), new RegExp(`network ${netId.slice(0, 12)} is gone from Docker: collected`));
    // The pool is free again: the same subnet can be taken through ledgernet IPAM.
    const again = await createNetwork(subnet, '--ipam-driver', 'ledgernet');
    assert.ok(again);
    console.log(`docker network rm while ledgernet was down: Docker took ${rmSeconds.toFixed(1)} s; ${before.links.length} links, ${before.qdiscs.length} qdiscs, ${before.rules.length} rules and 1 pool removed when ledgernet returned`);
    await cleanupAll();
    await waitNoLeaks();
  });

  test('ledgernet started after dockerd: the --restart containers Docker gave up on are started by ledgernet and reach each other', async () => {
    const n = await createNetwork('10.231.16.0/24');
    const c1 = await runContainer(n, '--restart', 'always');
    const c2 = await runContainer(n, '--restart', 'unless-stopped');
    assert.ok(await ping(c1, await containerIp(c2, n)));
    const ids = new Map<string, string>();
    for (const c of [c1, c2]) ids.set((await docker(['inspect', '-f', '{{.Id}}', c], { check: true })).stdout.trim(), c);

    // A boot where Docker comes up before ledgernet: Docker looks for the plugin for ~15 s per
    // container, gives up on it ("plugin not found") and never tries again.
    await stopDockerd();
    await daemon.terminate();
    const logFrom = await dockerdLogSize();
    await spawnDockerd();
    // ledgernet comes back once Docker has given up on the first container; Docker's search for
    // the second one then finds it.
    const gaveUp = await waitFor(
      async () => /failed to start container" container=([0-9a-f]{64}) error="[^"]*plugin \\"ledgernet\\" not found/.exec(await dockerdLogSince(logFrom))?.[1],
      { what: 'dockerd to give up on a container', timeoutMs: 60_000, intervalMs: 200 },
    );
    daemon = await startDaemon(daemon.options);
    await waitDockerAnswers();
    await waitRunning(c1, c2);
    const name = ids.get(gaveUp);
    assert.ok(name, `dockerd gave up on one of ours (${gaveUp.slice(0, 12)})`);
    assert.match(daemon.logs(), new RegExp(`starting container ${name}: Docker gave up on it`), 'ledgernet started it, and said so');
    assert.ok(await ping(c1, await containerIp(c2, n)), `${c1} reaches ${c2}`);
    assert.ok(await ping(c2, await containerIp(c1, n)), `${c2} reaches ${c1}`);
    const ep = await containerEndpoint(name, n);
    assert.ok(ep.EndpointID, 'the container is back on its ledgernet network');
    console.log(`ledgernet started after dockerd: Docker gave up on ${name}, ledgernet started it; both containers reach each other`);
    await cleanupAll();
    await waitNoLeaks();
  });

  test('a --restart always container with a published port dies while Docker cannot reach ledgernet: its stale endpoint is released at the restart, which publishes the port again, and its address after the grace', async () => {
    // Docker gives up each teardown call of an outage of ~50 s (15 s per call); a proxy on the
    // plugin socket refuses them at once instead (Docker never retries an Err): the same state.
    await daemon.terminate();
    const dir = await mkdtemp(join(tmpdir(), 'ln-proxied-'));
    const behind = join(dir, 'ledgernet.sock');
    // Docker's API is asked (startDaemon turns it off for a socket other than Docker's).
    const proxied = await startDaemon({ socket: behind, extraArgs: [...DAEMON_ARGS, '--abandoned-grace', '3'], env: { LEDGERNET_DOCKER_SOCKET: '/var/run/docker.sock' } });
    const proxy = await startPluginProxy(PLUGIN_SOCKET, behind);
    try {
      const n = track.network(uniqueName('ln'));
      await docker(['network', 'create', '--driver', 'ledgernet', '--ipam-driver', 'ledgernet', '--subnet', '10.231.17.0/24', n], { check: true });
      const port = 38617;
      const c = track.container(uniqueName('c'));
      await docker(['run', '-d', '--name', c, '--restart', 'always', '--network', n, '-p', `127.0.0.1:${port}:7000`, TEST_IMAGE, 'sh', '-c', 'while true; do echo served | nc -l -p 7000; done'], { check: true });
      await waitFor(async () => (await served(port)) === 'served', { what: `127.0.0.1:${port} to serve`, timeoutMs: 20_000, intervalMs: 200 });
      const old = await containerEndpoint(c, n);
      // The old endpoint's container must be known (docker-sync names it from Docker's API).
      await waitFor(async () => (await loggedEvents(proxied.stateDir)).some((e) => e.type === 'endpoint.named' && e.data['endpointId'] === old.EndpointID), { what: 'the endpoint to be named', timeoutMs: 20_000, intervalMs: 250 });

      proxy.refuse(['NetworkDriver.RevokeExternalConnectivity', 'NetworkDriver.Leave', 'NetworkDriver.DeleteEndpoint', 'IpamDriver.ReleaseAddress']);
      const pid = (await docker(['inspect', '-f', '{{.State.Pid}}', c], { check: true })).stdout.trim();
      await execa('kill', ['-9', pid]);
      await waitFor(async () => (await docker(['inspect', '-f', '{{.RestartCount}} {{.State.Running}}', c])).stdout.trim() === '1 true', {
        what: `${c} to be restarted by Docker`,
        timeoutMs: 20_000,
        intervalMs: 200,
      });
      proxy.refuse([]);
      assert.ok(['NetworkDriver.Leave', 'NetworkDriver.DeleteEndpoint', 'IpamDriver.ReleaseAddress'].every((m) => proxy.refused.includes(m)), `Docker's teardown calls were refused: ${proxy.refused.join(', ')}`);
      await waitFor(async () => (await served(port)) === 'served', { what: `127.0.0.1:${port} to serve again`, timeoutMs: 20_000, intervalMs: 200 });
      const fresh = await containerEndpoint(c, n);
      assert.notEqual(fresh.EndpointID, old.EndpointID);
      const deleted = (await loggedEvents(proxied.stateDir)).find((e) => e.type === 'endpoint.deleted' && e.data['endpointId'] === old.EndpointID);
      assert.match(String(deleted?.data['reason']), new RegExp(`superseded by endpoint ${fresh.EndpointID.slice(0, 12)} of the same container ${c}`));
      // Docker gave up its ReleaseAddress too: the old address is released after the grace (3 s here), with its reason.
      assert.notEqual(fresh.IPAddress, old.IPAddress);
      const released = await waitFor(
        async () => (await loggedEvents(proxied.stateDir)).find((e) => e.type === 'address.released' && e.data['address'] === old.IPAddress),
        { what: `the old address ${old.IPAddress} to be released`, timeoutMs: 20_000, intervalMs: 250 },
      );
      assert.match(String(released.data['reason']), /no endpoint holds it and Docker holds it nowhere/);
      assert.deepEqual(released.cause, { by: 'ledgernet', what: 'leaked-addresses' });
      await docker(['rm', '-f', c], { check: true });
      await docker(['network', 'rm', n], { check: true });
      await waitNoLeaks();
    } finally {
      await cleanupAll();
      await proxy.close();
      await proxied.stop();
      await rm(dir, { recursive: true, force: true });
      daemon = await startDaemon(daemon.options);
    }
  });
});

/** The first line 127.0.0.1:port answers with, or '' when it does not answer. */
async function served(port: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1');
    let data = '';
    const done = () => {
      sock.destroy();
      resolve(data.split('\n')[0] ?? '');
    };
    sock.setTimeout(2_000, done);
    sock.on('data', (d) => (data += d.toString()));
    sock.on('end', done);
    sock.on('error', done);
  });
}

/** Waits until every container runs. */
async function waitRunning(...containers: string[]): Promise<void> {
  await waitFor(
    async () => {
      const r = await docker(['inspect', '-f', '{{.State.Running}}', ...containers]);
      return r.exitCode === 0 && r.stdout.split('\n').every((l) => l.trim() === 'true');
    },
    { what: `${containers.join(', ')} to run`, timeoutMs: 60_000, intervalMs: 250 },
  );
}

/** The ifindex of eth0 inside a container. */
async function ifindexIn(container: string): Promise<number> {
  const r = await docker(['exec', container, 'cat', '/sys/class/net/eth0/ifindex'], { check: true });
  return Number(r.stdout.trim());
}
