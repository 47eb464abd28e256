// The supervisor in front of the worker, and `ledgernet repair`, with the real dockerd and kernel:
// - a call made while the worker is dead waits for the next worker instead of failing;
// - Docker's empty-body retry of a call an earlier supervisor journaled is answered from the
//   journal; two such calls of one method are refused, never guessed;
// - `docker run` whose Join or ProgramExternalConnectivity died with the daemon before it was
//   journaled succeeds: its empty retry is answered from the model (and the journaled Join);
// - SIGTERM stops the worker and removes the socket;
// - an endpoint Docker abandoned (never joined, unknown to Docker) and a connect whose rollback
//   DeleteEndpoint failed too: `ledgernet repair` releases and force-disconnects what is left,
//   and the networks can be removed; docker-sync releases an abandoned endpoint by itself.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { connect } from '@nats-io/transport-node';
import { execa } from 'execa';
import { TEST_IMAGE, cleanupAll, containerEndpoint, containerIp, docker, ping, track, uniqueName, waitFor } from '../helpers/docker.ts';
import { PLUGIN_SOCKET, ledgernetCli, loggedEvents, pluginCall, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { assertNoLeaks, waitNoLeaks } from '../helpers/leaks.ts';
import { createNatsServer } from '../helpers/nats.ts';

const hex = () => randomBytes(32).toString('hex');
const ARGS = ['--reconcile-interval', '1'];

before(async () => {
  await assertNoLeaks();
});
afterEach(async () => {
  await cleanupAll();
});
after(async () => {
  await cleanupAll();
  await stopAllDaemons();
});

const networkBody = (id: string, subnet: string, gw: string) => ({
  NetworkID: id,
  Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': {} },
  IPv4Data: [{ AddressSpace: 'LocalDefault', Gateway: gw, Pool: subnet }],
  IPv6Data: [],
});

async function networksKnown(d: DaemonHandle): Promise<string[]> {
  const st = await ledgernetCli(['status', '--json', '--state-dir', d.stateDir]);
  return (JSON.parse(st.stdout) as { networks: { networkId: string }[] }).networks.map((n) => n.networkId);
}

describe('supervisor', () => {
  test('a call made while the worker is dead is answered by the next worker (no Err, no EOF)', async () => {
    const d = await startDaemon({ extraArgs: ARGS });
    try {
      const old = d.workerPid();
      assert.ok(old, 'a worker runs');
      await d.kill9Worker();
      const id = hex();
      const r = await pluginCall('NetworkDriver.CreateNetwork', networkBody(id, '10.231.220.0/24', '10.231.220.1/24'));
      assert.equal(r.status, 200, r.text);
      assert.notEqual(d.workerPid(), old, 'a new worker answered');
      assert.deepEqual(await networksKnown(d), [id]);
      assert.match((await ledgernetCli(['status', '--state-dir', d.stateDir])).stdout, new RegExp(`^worker: the supervisor's 2nd; the one before \\(pid ${old}\\) died \\(SIGKILL\\) at `, 'm'));
      assert.equal((await pluginCall('NetworkDriver.DeleteNetwork', { NetworkID: id })).status, 200);
      await waitNoLeaks();
    } finally {
      await d.stop();
    }
    assert.ok(!existsSync(PLUGIN_SOCKET), 'SIGTERM removed the socket');
    assert.equal(d.workerPid(), null, 'and the worker is gone');
  });

  test('a worker whose event loop stops (SIGSTOP) is killed and replaced after --worker-watchdog; a call made to it meanwhile is answered by the next worker', async () => {
    const d = await startDaemon({ extraArgs: [...ARGS, '--worker-watchdog', '2'] });
    const old = d.workerPid();
    try {
      assert.ok(old, 'a worker runs');
      process.kill(old, 'SIGSTOP');
      const id = hex();
      const r = await pluginCall('NetworkDriver.CreateNetwork', networkBody(id, '10.231.221.0/24', '10.231.221.1/24'));
      // Without the watchdog the call waits out the supervisor's 25 s and gets its Err.
      assert.equal(r.status, 200, r.text);
      assert.notEqual(d.workerPid(), old, 'a new worker answered');
      assert.throws(() => process.kill(old, 0), /ESRCH/, 'the stopped worker was killed');
      assert.match(d.logs(), /the worker's event loop has not answered for [2-4] s \(stopped, or stuck in a loop or call\); killing it and starting a new one/);
      assert.deepEqual(await networksKnown(d), [id]);
      // `ledgernet status` says the worker was replaced, and why.
      const st = await ledgernetCli(['status', '--state-dir', d.stateDir]);
      assert.match(st.stdout, new RegExp(`^worker: the supervisor's 2nd; the one before \\(pid ${old}\\) killed by the watchdog: its event loop had not answered for [2-4] s at 20\\d\\d-`, 'm'));
      const js = JSON.parse((await ledgernetCli(['status', '--json', '--state-dir', d.stateDir])).stdout) as { daemon: { previousWorker: { generation: number; pid: number } } };
      assert.deepEqual([js.daemon.previousWorker.generation, js.daemon.previousWorker.pid], [2, old]);
      // The new worker is watched too, and one that answers is left alone.
      await new Promise((r) => setTimeout(r, 3_000));
      assert.equal((await pluginCall('NetworkDriver.DeleteNetwork', { NetworkID: id })).status, 200);
      assert.equal((d.logs().match(/has not answered for/g) ?? []).length, 1, 'one kill only');
      await waitNoLeaks();
    } finally {
      try {
        if (old) process.kill(old, 'SIGCONT');
      } catch {
        // gone, as it should be
      }
      await d.stop();
    }
  });

  test("Docker's empty-body retry is answered from the journal an earlier supervisor left; two candidates are refused", async () => {
    let d = await startDaemon({ extraArgs: ARGS, keepStateDir: true });
    const { stateDir } = d;
    await d.kill9All();
    // As the killed supervisor would have left it: CreateNetwork received, never answered.
    const one = hex();
    const [j1, j2] = [hex(), hex()];
    const line = (id: string, m: string, body: object) => JSON.stringify({ k: 'req', id, t: Date.now(), m, b: `${JSON.stringify(body)}\n` });
    writeFileSync(
      join(stateDir, 'requests.journal'),
      [
        line('x-1', 'NetworkDriver.CreateNetwork', networkBody(one, '10.231.221.0/24', '10.231.221.1/24')),
        line('x-2', 'NetworkDriver.Join', { NetworkID: one, EndpointID: j1, SandboxKey: '/x', Options: {} }),
        line('x-3', 'NetworkDriver.Join', { NetworkID: one, EndpointID: j2, SandboxKey: '/y', Options: {} }),
      ].join('\n') + '\n',
    );
    d = await startDaemon({ stateDir, extraArgs: ARGS, keepStateDir: false });
    try {
      const r = await pluginCall('NetworkDriver.CreateNetwork', undefined);
      assert.equal(r.status, 200, `the retry is answered as the journaled call: ${r.text}`);
      assert.deepEqual(await networksKnown(d), [one], 'and that call took effect');
      // A journaled call answers one retry only: another is a CreateNetwork cut off before it was
      // journaled, answered `{}` after a marker (deferred-network.ts); no network comes of it here.
      const again = await pluginCall('NetworkDriver.CreateNetwork', undefined);
      assert.equal(again.status, 200, again.text);
      const types = (await ledgernetCli(['events', '--json', '--state-dir', stateDir])).stdout.trim().split('\n').map((l) => (JSON.parse(l) as { type: string }).type);
      assert.deepEqual(types.filter((t) => t.startsWith('network.')), ['network.created', 'network.deferred'], 'not the journaled call again');
      assert.deepEqual(await networksKnown(d), [one]);
      const join2 = await pluginCall('NetworkDriver.Join', undefined);
      assert.match(String((join2.json as { Err?: string }).Err), /2 such calls were cut off at once/, 'never a guess between two Joins');
      assert.equal((await pluginCall('NetworkDriver.DeleteNetwork', { NetworkID: one })).status, 200);
      await waitNoLeaks();
    } finally {
      await d.stop();
    }
  });
});

describe('a worker whose supervisor is killed', () => {
  test('exits within seconds even with a call in flight that does not end (it would hold the state lock)', async () => {
    // A cluster RequestPool waits on a JetStream that takes requests and never answers: the call is
    // still in flight in the worker when its supervisor is SIGKILLed.
    const nats = await createNatsServer({ jetstream: false });
    const silent = await connect({ servers: nats.url });
    let asked = 0;
    const sub = silent.subscribe('$JS.API.>');
    void (async () => {
      for await (const _ of sub) asked += 1;
    })();
    await silent.flush();
    const dir = mkdtempSync(join(tmpdir(), 'ln-orphan-'));
    const socket = join(dir, 'p.sock');
    const d = await startDaemon({ socket, extraArgs: [...ARGS, '--nats', nats.url, '--host', 'h1', '--vtep', '127.0.0.1'], keepStateDir: true });
    try {
      const worker = d.workerPid();
      assert.ok(worker, 'a worker runs');
      const call = pluginCall('IpamDriver.RequestPool', { Pool: '', Options: { 'ledgernet.cluster': 'blue' }, V6: false }, socket, { timeoutMs: 30_000 }).catch((e: unknown) => e);
      // Journaled by the supervisor, then forwarded; JetStream asked (by it, or by the cluster's start it waits for).
      const journal = join(d.stateDir, 'requests.journal');
      await waitFor(() => asked > 0 && existsSync(journal) && readFileSync(journal, 'utf8').includes('IpamDriver.RequestPool'), { timeoutMs: 10_000, intervalMs: 20, what: 'the call to reach the worker' });
      await new Promise((r) => setTimeout(r, 500));
      const t = Date.now();
      d.proc.kill('SIGKILL');
      await waitFor(() => !existsSync(`/proc/${worker}`), { timeoutMs: 11_000, intervalMs: 50, what: `worker ${worker} to exit after its supervisor was killed\n${d.logs().slice(-3000)}` });
      const took = Date.now() - t;
      assert.ok(took < 8_000, `the worker exited ${took} ms after its supervisor, not within its 5 s`);
      assert.match(d.logs(), /did not stop within 5 s \(a call in flight that does not end\): exiting now/);
      await call;
      // Nothing holds the state lock now: a new daemon starts on the same state dir.
      const next = await startDaemon({ socket, stateDir: d.stateDir, extraArgs: ARGS });
      await next.stop();
    } finally {
      await d.terminate();
      await silent.close();
      await nats.stop();
      rmSync(dir, { recursive: true, force: true });
      rmSync(d.stateDir, { recursive: true, force: true });
    }
  });
});

describe('CreateEndpoint cut off with the whole daemon', () => {
  test('several cut off at once: each empty retry is answered {} once all are done again, and each veth carries its MAC; then their DeleteEndpoints', async () => {
    let d = await startDaemon({ extraArgs: ARGS, keepStateDir: true });
    const { stateDir } = d;
    const net = hex();
    const eps = [hex(), hex(), hex()];
    const cutOff = (m: string, body: (ep: string, i: number) => object) =>
      `${eps.map((ep, i) => JSON.stringify({ k: 'req', id: `${m}-${i}`, t: Date.now(), m, b: `${JSON.stringify(body(ep, i))}\n` })).join('\n')}\n`;
    /** SIGKILL the whole daemon, leave `journal` as the killed supervisor would have, start again. */
    const restartWith = async (journal: string) => {
      await d.kill9All();
      writeFileSync(join(stateDir, 'requests.journal'), journal);
      d = await startDaemon({ stateDir, extraArgs: ARGS, keepStateDir: false });
    };
    try {
      assert.equal((await pluginCall('NetworkDriver.CreateNetwork', networkBody(net, '10.231.224.0/24', '10.231.224.1/24'))).status, 200);
      await restartWith(cutOff('NetworkDriver.CreateEndpoint', (ep, i) => ({ NetworkID: net, EndpointID: ep, Interface: { Address: `10.231.224.${10 + i}/24`, AddressIPv6: '', MacAddress: '' }, Options: {} })));
      const replies = await Promise.all(eps.map(() => pluginCall('NetworkDriver.CreateEndpoint', undefined)));
      for (const r of replies) assert.deepEqual([r.status, r.json], [200, {}], r.text);
      const links = JSON.parse((await execa('ip', ['-j', 'link', 'show'])).stdout) as { ifname: string; address: string }[];
      eps.forEach((ep, i) => {
        const peer = links.find((l) => l.ifname === `lnp-${ep.slice(0, 11)}`);
        assert.equal(peer?.address, `02:42:0a:e7:e0:${(10 + i).toString(16).padStart(2, '0')}`, `endpoint ${i}'s container side exists with its MAC`);
      });
      // Their three DeleteEndpoints cut off the same way; two retries come (one was never
      // journaled, or comes later): every journaled removal is done, each retry answered as done.
      await restartWith(cutOff('NetworkDriver.DeleteEndpoint', (ep) => ({ NetworkID: net, EndpointID: ep })));
      const dels = await Promise.all([1, 2].map(() => pluginCall('NetworkDriver.DeleteEndpoint', undefined)));
      for (const r of dels) assert.deepEqual([r.status, r.json], [200, {}], r.text);
      const st = JSON.parse((await ledgernetCli(['status', '--json', '--state-dir', stateDir])).stdout) as { endpoints: unknown[] };
      assert.deepEqual(st.endpoints, [], 'all three removed');
    } finally {
      await pluginCall('NetworkDriver.DeleteNetwork', { NetworkID: net }).catch(() => undefined);
      await d.stop();
    }
    await waitNoLeaks();
  });

  test('Docker 20.10 keeps the veth\'s own MAC when CreateEndpoint answers {}', async () => {
    const inner = '/run/ledgernet-test-mac.sock';
    const d = await startDaemon({ socket: inner, extraArgs: ARGS });
    // Docker talks to a proxy that answers every CreateEndpoint {} (as a redone retry gets it).
    const proxy = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const method = (req.url ?? '/').slice(1);
        pluginCall(method, body, inner).then(
          (r) => res.writeHead(r.status).end(method === 'NetworkDriver.CreateEndpoint' && r.status === 200 ? '{}' : r.text),
          (e: Error) => res.writeHead(500).end(JSON.stringify({ Err: e.message })),
        );
      });
    });
    await new Promise<void>((r) => proxy.listen(PLUGIN_SOCKET, r));
    try {
      const n = track.network(uniqueName('mac'));
      assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.225.0/24', n])).exitCode, 0);
      const [c1, c2] = [track.container(uniqueName('mac')), track.container(uniqueName('mac'))];
      for (const c of [c1, c2]) assert.equal((await docker(['run', '-d', '--name', c, '--network', n, TEST_IMAGE, 'sleep', '600'])).exitCode, 0);
      const ip = await containerIp(c1, n);
      const mac = (await docker(['exec', c1, 'cat', '/sys/class/net/eth0/address'], { check: true })).stdout.trim();
      assert.equal(mac, `02:42:${ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join(':')}`, 'the MAC set at creation');
      assert.ok(await ping(c2, ip), 'and the container is reachable');
    } finally {
      await cleanupAll();
      await new Promise((r) => proxy.close(r));
      await d.stop();
    }
    await waitNoLeaks();
  });
});

describe('calls cut off before they were journaled', () => {
  // Docker talks to a proxy that forwards to the daemon. The proxy drops the first call of the
  // armed method unanswered and SIGKILLs the whole daemon at that moment, as a kill between
  // accept(2) and the journal's write(2) would (RELIABILITY.md, "The window"): nothing records the
  // call, and Docker re-sends it with an empty body (moby#39331) to the daemon started next, which
  // must answer it from its model (and, for ProgramExternalConnectivity, the Join it journaled).
  const inner = '/run/ledgernet-test-cut.sock';
  let d: DaemonHandle;
  let ready: Promise<unknown> = Promise.resolve();
  let armed: string | null = null;
  let seen: Record<string, string[]> = {};
  /** Calls of this method with a body that come after the cut wait until its empty retry came, and 0.5 s more. */
  let holdOthers: string | null = null;
  let held: (() => void)[] = [];
  /** Calls of `method` wait for `open` before anything else is done with them. */
  let gate: { readonly method: string; readonly open: Promise<void> } | null = null;
  /** Called after each reply the proxy passes on, with the method. */
  let onAnswer: ((method: string) => void) | null = null;
  /** The environment of the daemon the next cut starts (the daemon on the inner socket asks Docker's API only when told). */
  let daemonEnv: Record<string, string> = {};
  const proxy = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    // A failure here closes the connection (Docker sees a crash) instead of going unhandled.
    const onEnd = async () => {
      const method = (req.url ?? '/').slice(1);
      if (gate && method === gate.method) await gate.open;
      (seen[method] ??= []).push(body);
      if (method === armed) {
        armed = null;
        req.socket.destroy();
        const stateDir = d.stateDir;
        ready = d.kill9All().then(async () => (d = await startDaemon({ socket: inner, stateDir, extraArgs: ARGS, keepStateDir: true, env: daemonEnv })));
        return;
      }
      let wait: Promise<unknown> = ready;
      if (method === holdOthers && armed === null && body !== '') wait = new Promise<void>((r) => held.push(r));
      if (method === holdOthers && body === '') {
        holdOthers = null;
        setTimeout(() => held.splice(0).forEach((r) => r()), 500);
      }
      wait
        .then(() => ready)
        .then(() => pluginCall(method, body, inner, { timeoutMs: 60_000 }))
        .then(
          (r) => {
            res.writeHead(r.status).end(r.text);
            onAnswer?.(method);
          },
          // The daemon died with the call (one in flight when the cut killed it): Docker sees its
          // connection closed, as it would in a crash, and retries.
          () => req.socket.destroy(),
        );
    };
    req.on('end', () => void onEnd().catch(() => req.socket.destroy()));
  });
  before(async () => {
    d = await startDaemon({ socket: inner, extraArgs: ARGS, keepStateDir: true });
    await new Promise<void>((r) => proxy.listen(PLUGIN_SOCKET, r));
  });
  after(async () => {
    await cleanupAll();
    await new Promise((r) => proxy.close(r));
    await ready.catch(() => undefined);
    await d.stop();
    rmSync(d.stateDir, { recursive: true, force: true });
    await waitNoLeaks();
  });

  /** Arms the cut for `method`; after `run`, checks Docker sent it twice (and `others` more with bodies), the retry empty. */
  async function cutOff(method: string, run: () => Promise<void>, others = 0): Promise<void> {
    seen = {};
    armed = method;
    await run();
    assert.equal(armed, null, `Docker sent ${method}`);
    const calls = seen[method] ?? [];
    assert.equal(calls.length, 2 + others, `Docker sent ${method} ${2 + others} times: the call cut off, its retry, ${others} other(s)`);
    assert.notEqual(calls[0], '', 'the first with its body');
    assert.deepEqual(calls.filter((b) => b === '').length, 1, 'one retry with an empty body (moby#39331)');
  }

  test('ProgramExternalConnectivity: `docker run -p` succeeds and the port answers', async () => {
    const n = track.network(uniqueName('cut'));
    assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.226.0/24', n])).exitCode, 0);
    const c = track.container(uniqueName('cut'));
    const serve = 'mkdir -p /www && echo cut-off-pec >/www/index.html && httpd -p 80 -h /www && exec sleep 600';
    await cutOff('NetworkDriver.ProgramExternalConnectivity', async () => {
      const r = await docker(['run', '-d', '--name', c, '--network', n, '-p', '127.0.0.1:18711:80', TEST_IMAGE, 'sh', '-c', serve]);
      assert.equal(r.exitCode, 0, `docker run succeeds: ${r.stderr}`);
    });
    assert.match(seen['NetworkDriver.ProgramExternalConnectivity']?.[0] ?? '', /"HostPort":18711/);
    await waitFor(
      async () => {
        const w = await execa('/bin/busybox', ['timeout', '5', '/bin/busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:18711/'], { reject: false, stdin: 'ignore' });
        return w.stdout.trim() === 'cut-off-pec';
      },
      { timeoutMs: 15_000, what: 'the container answers on its published port 127.0.0.1:18711' },
    );
    const internal = await pluginCall('Ledgernet.ExternalRetry', { joins: [], teardowns: [] }, inner);
    assert.equal(internal.status, 404, `the worker's internal call is not taken from the plugin socket: ${internal.text}`);
  });

  test('Join: `docker run` succeeds, the container gets its own interface and reaches its neighbour', async () => {
    const n = track.network(uniqueName('cut'));
    assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.227.0/24', n])).exitCode, 0);
    const [c1, c2] = [track.container(uniqueName('cut')), track.container(uniqueName('cut'))];
    assert.equal((await docker(['run', '-d', '--name', c1, '--network', n, TEST_IMAGE, 'sleep', '600'])).exitCode, 0);
    await cutOff('NetworkDriver.Join', async () => {
      const r = await docker(['run', '-d', '--name', c2, '--network', n, TEST_IMAGE, 'sleep', '600']);
      assert.equal(r.exitCode, 0, `docker run succeeds: ${r.stderr}`);
    });
    const ep2 = (await containerEndpoint(c2, n)).EndpointID;
    const ifname = (await docker(['exec', c2, 'cat', `/sys/class/net/eth0/ifindex`], { check: true })).stdout.trim();
    assert.ok(Number(ifname) > 0, 'eth0 is there');
    const links = JSON.parse((await execa('ip', ['-j', 'link', 'show'])).stdout) as { ifname: string }[];
    assert.ok(!links.some((l) => l.ifname === `lnp-${ep2.slice(0, 11)}`), "its own container-side veth was moved into it (no longer on the host)");
    assert.ok(await ping(c2, await containerIp(c1, n)), 'c2 reaches c1');
    assert.ok(await ping(c1, await containerIp(c2, n)), 'c1 reaches c2');
  });

  test('Join while another container is between CreateEndpoint and Join: its retry waits for the other\'s own Join; both get their own veth', async () => {
    const n = track.network(uniqueName('cut'));
    assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.229.0/24', n])).exitCode, 0);
    const [c1, c2] = [track.container(uniqueName('cut')), track.container(uniqueName('cut'))];
    // The Joins wait until both CreateEndpoints were answered; the first is cut off, the other
    // container's, with its body, is held until the retry came: two endpoints are created and not
    // joined when the retry arrives.
    let open = (): void => undefined;
    gate = { method: 'NetworkDriver.Join', open: new Promise<void>((r) => (open = r)) };
    let created = 0;
    onAnswer = (m) => {
      if (m === 'NetworkDriver.CreateEndpoint' && ++created === 2) open();
    };
    holdOthers = 'NetworkDriver.Join';
    try {
      await cutOff('NetworkDriver.Join', async () => {
        const runs = await Promise.all([c1, c2].map((c) => docker(['run', '-d', '--name', c, '--network', n, TEST_IMAGE, 'sleep', '600'])));
        for (const r of runs) assert.equal(r.exitCode, 0, `docker run succeeds: ${r.stderr}`);
      }, 1);
    } catch (e) {
      throw new Error(`${String(e)}\n--- daemon logs ---\n${d.logs().slice(-6000)}`);
    } finally {
      [gate, onAnswer, holdOthers] = [null, null, null];
      held.splice(0).forEach((r) => r());
    }
    assert.equal(held.length, 0);
    assert.equal(seen['NetworkDriver.CreateEndpoint']?.length, 2);
    assert.match(d.logs(), /several endpoints can be its target; waiting/, 'the retry came while two endpoints were created and not joined');
    for (const c of [c1, c2]) {
      const ep = (await containerEndpoint(c, n)).EndpointID;
      const iflink = (await docker(['exec', c, 'cat', '/sys/class/net/eth0/iflink'], { check: true })).stdout.trim();
      const host = (await execa('cat', [`/sys/class/net/lnv-${ep.slice(0, 11)}/ifindex`])).stdout.trim();
      assert.equal(iflink, host, `${c}'s eth0 is the peer of its own endpoint's veth lnv-${ep.slice(0, 11)}`);
    }
    assert.ok(await ping(c1, await containerIp(c2, n)), 'c1 reaches c2');
    assert.ok(await ping(c2, await containerIp(c1, n)), 'c2 reaches c1');
  });

  test('CreateEndpoint: `docker run -p` succeeds; the endpoint is created at its Join, its address read from the container, the port answers', async () => {
    const n = track.network(uniqueName('cut'));
    assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.228.0/24', n])).exitCode, 0);
    const [c1, c2] = [track.container(uniqueName('cut')), track.container(uniqueName('cut'))];
    assert.equal((await docker(['run', '-d', '--name', c1, '--network', n, TEST_IMAGE, 'sleep', '600'])).exitCode, 0);
    const serve = 'mkdir -p /www && echo cut-off-create >/www/index.html && httpd -p 80 -h /www && exec sleep 600';
    await cutOff('NetworkDriver.CreateEndpoint', async () => {
      const r = await docker(['run', '-d', '--name', c2, '--network', n, '-p', '127.0.0.1:18712:80', TEST_IMAGE, 'sh', '-c', serve]);
      assert.equal(r.exitCode, 0, `docker run succeeds: ${r.stderr}`);
    });
    const ip2 = await containerIp(c2, n);
    assert.match(seen['NetworkDriver.CreateEndpoint']?.[0] ?? '', new RegExp(`"Address":"${ip2.replace(/\./g, '\\.')}/24"`), "the cut-off call carried the address Docker gave the container");
    const ep2 = (await containerEndpoint(c2, n)).EndpointID;
    await waitFor(
      async () => {
        const st = JSON.parse((await ledgernetCli(['status', '--json', '--state-dir', d.stateDir])).stdout) as { endpoints: { endpointId: string; address: string | null }[] };
        return st.endpoints.find((e) => e.endpointId === ep2)?.address === `${ip2}/24`;
      },
      { timeoutMs: 15_000, what: `ledgernet knows endpoint ${ep2.slice(0, 12)} with the address Docker gave it (${ip2})` },
    ).catch((e: unknown) => {
      throw new Error(`${String(e)}\n--- daemon logs ---\n${d.logs().slice(-6000)}`);
    });
    assert.ok(await ping(c2, await containerIp(c1, n)), 'c2 reaches c1');
    assert.ok(await ping(c1, ip2), 'c1 reaches c2');
    await waitFor(
      async () => {
        const w = await execa('/bin/busybox', ['timeout', '5', '/bin/busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:18712/'], { reject: false, stdin: 'ignore' });
        return w.stdout.trim() === 'cut-off-create';
      },
      { timeoutMs: 15_000, what: 'the container answers on its published port 127.0.0.1:18712' },
    );
  });

  test("CreateNetwork: `docker network create` succeeds; the network is taken from Docker's API as Docker made it, and a container started at once waits for it", async () => {
    // The daemon started by the cut reads Docker's API, and knows the name Docker gives it (the proxy's socket).
    daemonEnv = { LEDGERNET_DOCKER_SOCKET: '/var/run/docker.sock', LEDGERNET_DRIVER_NAME: 'ledgernet' };
    const n = track.network(uniqueName('cut'));
    await cutOff('NetworkDriver.CreateNetwork', async () => {
      const r = await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.225.0/24', '-o', 'com.docker.network.driver.mtu=1400', n]);
      assert.equal(r.exitCode, 0, `docker network create succeeds: ${r.stderr}`);
    });
    assert.match(seen['NetworkDriver.CreateNetwork']?.[0] ?? '', /"Pool":"10\.231\.225\.0\/24"/);
    // At once, with no wait for ledgernet to read Docker's API.
    const [c1, c2] = [track.container(uniqueName('cut')), track.container(uniqueName('cut'))];
    for (const c of [c1, c2]) {
      const r = await docker(['run', '-d', '--name', c, '--network', n, TEST_IMAGE, 'sleep', '600']);
      assert.equal(r.exitCode, 0, `docker run on the network succeeds: ${r.stderr}\n--- daemon logs ---\n${d.logs().slice(-4000)}`);
    }
    const id = (await docker(['network', 'inspect', '-f', '{{.Id}}', n], { check: true })).stdout.trim();
    const bridge = JSON.parse((await execa('ip', ['-j', 'addr', 'show', 'dev', `lnb-${id.slice(0, 11)}`])).stdout) as { mtu: number; addr_info: { local: string; prefixlen: number }[] }[];
    assert.equal(bridge[0]?.mtu, 1400, 'the -o option of the lost body was taken from Docker');
    assert.ok(bridge[0]?.addr_info.some((a) => a.local === '10.231.225.1' && a.prefixlen === 24), "the gateway Docker's IPAM gave it is on the bridge");
    const evs = (await ledgernetCli(['events', '--json', '--state-dir', d.stateDir])).stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; data: { networkId?: string; adopted?: boolean } });
    assert.ok(evs.some((e) => e.type === 'network.deferred'), 'the retry was answered after a durable marker');
    assert.equal(evs.find((e) => e.type === 'network.created' && e.data.networkId === id)?.data.adopted, true, "recorded as taken from Docker's API");
    assert.ok(await ping(c1, await containerIp(c2, n)), 'c1 reaches c2');
    assert.ok(await ping(c2, '10.231.225.1'), 'c2 reaches its gateway');
  });

  test('DeleteEndpoint: `docker rm -f` succeeds; the endpoint that left is deleted a few seconds later, not a minute', async () => {
    const n = track.network(uniqueName('cut'));
    assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.229.0/24', n])).exitCode, 0);
    const [c1, c2] = [track.container(uniqueName('cut')), track.container(uniqueName('cut'))];
    for (const c of [c1, c2]) assert.equal((await docker(['run', '-d', '--name', c, '--network', n, TEST_IMAGE, 'sleep', '600'])).exitCode, 0);
    const ep2 = (await containerEndpoint(c2, n)).EndpointID;
    const veth = `lnv-${ep2.slice(0, 11)}`;
    await cutOff('NetworkDriver.DeleteEndpoint', async () => {
      const r = await docker(['rm', '-f', c2]);
      assert.equal(r.exitCode, 0, `docker rm succeeds: ${r.stderr}`);
    });
    const t0 = Date.now();
    await waitFor(async () => (await execa('ip', ['link', 'show', veth], { reject: false })).exitCode !== 0, { timeoutMs: 20_000, what: `${veth} of the removed container is deleted` });
    assert.ok(Date.now() - t0 < 20_000);
    assert.ok(await ping(c1, (await containerIp(c1, n)).replace(/\.\d+$/, '.1')), 'the other container still reaches its gateway');
  });
});

describe('ledgernet repair', () => {
  test('an endpoint Docker abandoned, and a connect whose rollback failed: repaired, the networks can be removed', async () => {
    // ledgernet on a private socket; Docker talks to a proxy that can fail chosen calls.
    const inner = '/run/ledgernet-test-repair.sock';
    const d = await startDaemon({ socket: inner, extraArgs: ARGS });
    const fail = new Set<string>();
    const proxy = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const method = (req.url ?? '/').slice(1);
        if (fail.has(method)) return res.writeHead(500).end('{"Err":"injected failure"}');
        pluginCall(method, body, inner).then(
          (r) => res.writeHead(r.status).end(r.text),
          (e: Error) => res.writeHead(500).end(JSON.stringify({ Err: e.message })),
        );
      });
    });
    await new Promise<void>((r) => proxy.listen(PLUGIN_SOCKET, r));
    try {
      const [n1, n2] = [track.network(uniqueName('rep')), track.network(uniqueName('rep'))];
      assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.222.0/24', n1])).exitCode, 0);
      assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.223.0/24', n2])).exitCode, 0);
      const n1Id = (await docker(['network', 'inspect', '-f', '{{.Id}}', n1], { check: true })).stdout.trim();
      const c = track.container(uniqueName('rep'));
      assert.equal((await docker(['run', '-d', '--name', c, '--network', n1, TEST_IMAGE, 'sleep', '600'])).exitCode, 0);

      // An endpoint whose CreateEndpoint Docker abandoned (it sends no DeleteEndpoint then).
      const abandoned = hex();
      const ce = await pluginCall('NetworkDriver.CreateEndpoint', { NetworkID: n1Id, EndpointID: abandoned, Interface: { Address: '10.231.222.200/24', AddressIPv6: '', MacAddress: '' }, Options: {} }, inner);
      assert.equal(ce.status, 200, ce.text);

      // A connect that fails after CreateEndpoint, whose rollback (DeleteEndpoint) fails too.
      fail.add('NetworkDriver.EndpointOperInfo').add('NetworkDriver.DeleteEndpoint');
      const connect = await docker(['network', 'connect', n2, c]);
      fail.clear();
      assert.notEqual(connect.exitCode, 0, 'the injected failure fails the connect');
      assert.equal((await docker(['rm', '-f', c])).exitCode, 0);
      // Docker 20.10 usually drops such an endpoint itself when the container goes; when it does
      // not (the issue's `has active endpoints`), repair force-disconnects it (planRepair's unit
      // tests cover that choice).
      const inspect = await docker(['network', 'inspect', '-f', '{{json .Containers}}', n2], { check: true });
      const stale = Object.keys(JSON.parse(inspect.stdout) ?? {}).length > 0;

      const dry = await ledgernetCli(['repair', '--dry-run', '--state-dir', d.stateDir]);
      assert.equal(dry.exitCode, 2, dry.stdout + dry.stderr);
      if (stale) assert.match(dry.stdout, new RegExp(`would force-disconnect ${c} from network ${n2}`));
      assert.match(dry.stdout, new RegExp(`would release endpoint ${abandoned.slice(0, 12)}`));

      const fix = await ledgernetCli(['repair', '--reason', 'after the crash of 21:50', '--state-dir', d.stateDir]);
      assert.equal(fix.exitCode, 0, fix.stdout + fix.stderr);
      // The release is recorded as the operator's repair, with what repair found and the reason.
      const released = (await loggedEvents(d.stateDir)).find((e) => e.type === 'endpoint.deleted' && e.data['endpointId'] === abandoned);
      assert.deepEqual([released?.cause?.['by'], released?.cause?.['command']], ['operator', 'repair']);
      assert.match(String(released?.cause?.['reason']), new RegExp(`^release endpoint ${abandoned.slice(0, 12)}.* \\(after the crash of 21:50\\)$`));
      const again = await ledgernetCli(['repair', '--dry-run', '--state-dir', d.stateDir]);
      assert.equal(again.exitCode, 0, `nothing left to repair: ${again.stdout}`);

      for (const n of [n1, n2]) assert.equal((await docker(['network', 'rm', n])).exitCode, 0, `network ${n} can be removed`);
      await waitNoLeaks();
    } finally {
      await cleanupAll();
      await new Promise((r) => proxy.close(r));
      await d.stop();
    }
  });
});

describe('docker-sync', () => {
  test('releases an endpoint Docker abandoned once the grace period has passed, and keeps the joined one Docker lists', async () => {
    const d = await startDaemon({ extraArgs: [...ARGS, '--abandoned-grace', '3'] });
    const links = async () => (JSON.parse((await execa('ip', ['-j', 'link', 'show'])).stdout) as { ifname: string }[]).map((l) => l.ifname);
    try {
      const n = track.network(uniqueName('abn'));
      assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.226.0/24', n])).exitCode, 0);
      const nId = (await docker(['network', 'inspect', '-f', '{{.Id}}', n], { check: true })).stdout.trim();
      const c = track.container(uniqueName('abn'));
      assert.equal((await docker(['run', '-d', '--name', c, '--network', n, TEST_IMAGE, 'sleep', '600'])).exitCode, 0);
      const joined = (await containerEndpoint(c, n)).EndpointID;
      // As a docker run whose CreateEndpoint retry was refused after a crash leaves it: Docker never stored it.
      const abandoned = hex();
      const ce = await pluginCall('NetworkDriver.CreateEndpoint', { NetworkID: nId, EndpointID: abandoned, Interface: { Address: '10.231.226.200/24', AddressIPv6: '', MacAddress: '' }, Options: {} });
      assert.equal(ce.status, 200, ce.text);
      const veth = `lnv-${abandoned.slice(0, 11)}`;
      assert.ok((await links()).includes(veth));
      const t0 = Date.now();
      await waitFor(async () => !(await links()).includes(veth), { what: `${veth} removed`, timeoutMs: 30_000, intervalMs: 250 });
      assert.ok(Date.now() - t0 >= 2_000, 'not before the grace period');
      const st = JSON.parse((await ledgernetCli(['status', '--json', '--state-dir', d.stateDir])).stdout) as { endpoints: { endpointId: string }[] };
      assert.deepEqual(st.endpoints.map((e) => e.endpointId), [joined], 'the joined endpoint Docker lists stays, the abandoned one is released');
      assert.match(d.logs(), /is unknown to Docker \(abandoned after a crash\): released/);
      assert.ok((await links()).includes(`lnv-${joined.slice(0, 11)}`));
      assert.ok(await ping(c, '10.231.226.1'), 'the container still reaches its gateway');
      assert.equal((await docker(['rm', '-f', c])).exitCode, 0);
      assert.equal((await docker(['network', 'rm', n])).exitCode, 0);
      await waitNoLeaks();
    } finally {
      await cleanupAll();
      await d.stop();
    }
  });
});
