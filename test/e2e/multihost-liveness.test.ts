// Multi-host networks (issue 14), the liveness side, on the test bed of test/helpers/multihost.ts
// (three hosts, each with its own dockerd, nats-server and ledgernet): a host that stops sending
// heartbeats is removed from the others and added back when it returns; an outage of every nats-server and a SIGKILLed
// ledgernet leave cross-host traffic alone; a host stopped for good is removed after the timeout.
// The scenarios run in order on one bed (each leaves it as the next expects).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readLog } from '../../src/events/log/read.ts';
import { TEST_IMAGE, waitFor } from '../helpers/docker.ts';
import { CLI_PATH } from '../helpers/daemon.ts';
import { createTestbed, type Host, type Testbed } from '../helpers/multihost.ts';

/**
 * The bed's --cluster-host-timeout: short, but longer than a ledgernet restart on this machine. A
 * SIGKILLed h1 took 7 s from its kill to its first heartbeat while other suites loaded the
 * machine (6 s was too short: h3 expired h1, and h2 dropped c1's entries until h1 published
 * them again).
 */
const TIMEOUT_S = 10;
const METRICS = '127.0.0.1:9654';
const ARGS = ['--reconcile-interval', '2', '--cluster-host-timeout', `${TIMEOUT_S}s`, '--metrics', METRICS];
const NET = 'blue';
const CLUSTER = ['-d', 'ledgernet', '--ipam-driver', 'ledgernet', '--ipam-opt', `ledgernet.cluster=${NET}`, '-o', `ledgernet.cluster=${NET}`];

let bed: Testbed;
let h1: Host;
let h2: Host;
let h3: Host;
/** The long-running container of each host (`c1` on h1, …): address and MAC. */
const addr: Record<string, { ip: string; mac: string }> = {};

before(async () => {
  bed = await createTestbed({ ledgernet: ARGS });
  [h1, h2, h3] = bed.hosts as [Host, Host, Host];
  // Created at once on every host (test/e2e/multihost-scale.test.ts checks that this gives one
  // subnet and one VNI, with 100 containers).
  await Promise.all(bed.hosts.map((h) => h.docker(['network', 'create', ...CLUSTER, NET], { check: true })));
  for (const h of bed.hosts) addr[`c${h.n}`] = await run(h, `c${h.n}`);
  await reaches(h1, 'c1', addr['c3']?.ip ?? '');
  await reaches(h3, 'c3', addr['c2']?.ip ?? '');
});
after(async () => {
  // A worker left stopped by a failed test would hold up the bed's teardown.
  for (const h of bed?.hosts ?? []) await h.signalLedgernet('SIGCONT').catch(() => undefined);
  await bed?.down();
});

async function inspect(h: Host, name: string): Promise<{ ip: string; mac: string }> {
  const f = `{{.NetworkSettings.Networks.${NET}.IPAddress}} {{.NetworkSettings.Networks.${NET}.MacAddress}}`;
  const [ip = '', mac = ''] = (await h.docker(['inspect', '-f', f, name], { check: true })).stdout.trim().split(' ');
  return { ip, mac };
}

async function run(h: Host, name: string): Promise<{ ip: string; mac: string }> {
  // --init: `sleep` as PID 1 ignores SIGTERM, and a dockerd stop would wait 10 s for it.
  await h.docker(['run', '-d', '--init', '--name', name, '--network', NET, TEST_IMAGE, 'sleep', '3600'], { check: true });
  return inspect(h, name);
}

/** The peer.* events of cluster blue in a host's log, from seq `since` on. */
async function peerEvents(h: Host, since = 0): Promise<{ type: string; seq: number; data: Record<string, unknown> }[]> {
  const { events } = await readLog(h.stateDir);
  return events.filter((e) => e.seq > since && e.type.startsWith('peer.') && (e.data as { cluster?: string }).cluster === NET) as never;
}

async function lastSeq(h: Host): Promise<number> {
  const { events } = await readLog(h.stateDir);
  return events.at(-1)?.seq ?? 0;
}

/** The host's FDB and neighbour tables, as `bridge fdb show` and `ip neigh show` print them. */
async function tables(h: Host): Promise<string> {
  return `${(await h.exec('bridge', ['fdb', 'show'])).stdout}\n${(await h.exec('ip', ['neigh', 'show'])).stdout}`;
}

async function reaches(h: Host, from: string, ip: string, timeoutMs = 15_000): Promise<void> {
  await waitFor(async () => (await h.docker(['exec', from, 'ping', '-c', '1', '-W', '1', ip])).exitCode === 0, { timeoutMs, intervalMs: 200, what: `${from} on ${h.name} to reach ${ip}` });
}

/**
 * Pings `ip` from container `from` every `intervalMs` for `count` packets in the background;
 * resolves to [sent, received, the missing sequence numbers as ranges, e.g. "51-137"].
 */
function pingFlood(h: Host, from: string, ip: string, count: number, intervalMs: number): Promise<[number, number, string]> {
  const r = h.docker(['exec', from, 'ping', '-c', String(count), '-i', String(intervalMs / 1000), '-W', '2', ip], { timeoutMs: count * intervalMs + 60_000 });
  return r.then((res) => {
    const m = /(\d+) packets transmitted, (\d+) packets received/.exec(res.stdout);
    if (!m) throw new Error(`ping printed no statistics (exit ${res.exitCode}): ${res.stdout.slice(-500)} ${res.stderr}`);
    const seen = new Set([...res.stdout.matchAll(/seq=(\d+)/g)].map((x) => Number(x[1])));
    const ranges: string[] = [];
    for (let i = 0; i < Number(m[1]); i++) {
      if (seen.has(i)) continue;
      let j = i;
      while (j + 1 < Number(m[1]) && !seen.has(j + 1)) j++;
      ranges.push(i === j ? `${i}` : `${i}-${j}`);
      i = j;
    }
    return [Number(m[1]), Number(m[2]), ranges.join(' ')];
  });
}

/** The cluster's lines of every host's ledgernet log (the last `n` each): what a failed wait says. */
function clusterLogs(n = 12): string {
  return bed.hosts
    .map((h) => `--- ${h.name}:\n${h.ledgernetLog().split('\n').filter((l) => l.includes('"component":"cluster"')).slice(-n).join('\n')}`)
    .join('\n');
}

/** `p`, with the hosts' cluster log lines added to its error. */
async function explained<T>(p: Promise<T>, lines = 12): Promise<T> {
  try {
    return await p;
  } catch (e) {
    throw new Error(`${e instanceof Error ? e.message : String(e)}\n${clusterLogs(lines)}`, { cause: e });
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('cluster networks: liveness', () => {
  test('a host that stops sending heartbeats (ledgernet stopped) is removed from the others after the timeout, and added back when it returns', { timeout: 90_000 }, async () => {
    const c3 = addr['c3'] ?? { ip: '', mac: '' };
    const seqs = await Promise.all([h1, h2].map(lastSeq));
    await h3.signalLedgernet('SIGSTOP');
    const t0 = Date.now();
    try {
      for (const [i, h] of [h1, h2].entries()) {
        await explained(waitFor(async () => (await peerEvents(h, seqs[i])).some((e) => e.type === 'peer.member.left' && e.data['host'] === 'h3'), {
          timeoutMs: (TIMEOUT_S + 15) * 1000,
          intervalMs: 200,
          what: `h3 to leave ${h.name}'s log`,
        }));
      }
      const took = (Date.now() - t0) / 1000;
      // Its last heartbeat may have been up to an interval (1 s) before the stop.
      assert.ok(took >= TIMEOUT_S - 1.5, `removed after ${took} s, before the ${TIMEOUT_S} s timeout`);
      console.log(`h3 (stopped) removed from h1's and h2's logs ${took.toFixed(1)} s after it stopped`);
      for (const [i, h] of [h1, h2].entries()) {
        const evs = await peerEvents(h, seqs[i]);
        assert.ok(evs.some((e) => e.type === 'peer.endpoint.removed' && e.data['host'] === 'h3'), `${h.name} recorded c3's removal`);
        await waitFor(async () => !(await tables(h)).includes(c3.mac), { timeoutMs: 3_000, intervalMs: 100, what: `c3's MAC gone from ${h.name}'s FDB and neighbours` });
        assert.doesNotMatch(await tables(h), new RegExp(`dst ${h3.underlay.replace(/\./g, '\\.')}\\b`), `no FDB entry of ${h.name} still points at h3`);
      }
      // The two left still reach each other.
      await reaches(h1, 'c1', addr['c2']?.ip ?? '', 3_000);
    } finally {
      await h3.signalLedgernet('SIGCONT');
    }
    // Back: h3 finds its record gone, publishes its keys again, and the others add it back.
    for (const [i, h] of [h1, h2].entries()) {
      await explained(waitFor(async () => (await peerEvents(h, seqs[i])).some((e) => e.type === 'peer.endpoint.added' && e.data['address'] === c3.ip), { timeoutMs: 15_000, intervalMs: 200, what: `c3 back in ${h.name}'s log` }));
    }
    assert.match(h3.ledgernetLog(), /this host was expired by the cluster/);
    await reaches(h1, 'c1', c3.ip);
    await reaches(h2, 'c2', c3.ip);
  });

  test('every nats-server stopped: cross-host traffic keeps flowing, nobody is expired, a new container starts; after NATS returns the others reach it', { timeout: 150_000 }, async () => {
    const seqs = await Promise.all(bed.hosts.map(lastSeq));
    const outageMs = (TIMEOUT_S + 6) * 1000;
    // Pings across hosts through the whole outage and NATS's return (every 50 ms).
    const flood = pingFlood(h2, 'c2', addr['c1']?.ip ?? '', Math.round((outageMs + 10_000) / 50), 50);
    flood.catch(() => undefined);
    await Promise.all(bed.hosts.map((h) => h.stopNats()));
    const down = Date.now();
    let c1b = { ip: '', mac: '' };
    try {
      const t = Date.now();
      c1b = await run(h1, 'c1b');
      assert.ok(Date.now() - t < 5_000, `docker run took ${Date.now() - t} ms without NATS`);
      await reaches(h1, 'c1', c1b.ip, 5_000);
      await sleep(outageMs - (Date.now() - down));
    } finally {
      for (const h of bed.hosts) h.startNats();
    }
    const back = Date.now();
    const published = explained(waitFor(async () => (await peerEvents(h2, seqs[1])).some((e) => e.type === 'peer.endpoint.added' && e.data['address'] === c1b.ip), {
      timeoutMs: 60_000,
      intervalMs: 200,
      what: `c1b (started during the outage) in h2's log`,
    }), 40).then(() => Date.now());
    published.catch(() => undefined);
    const [sent, received] = await flood;
    assert.equal(received, sent, `${sent - received} of ${sent} pings h2 → h1 lost around the NATS outage`);
    console.log(`NATS outage of ${((back - down) / 1000).toFixed(1)} s: ${received} of ${sent} pings h2 → h1 (every 50 ms) answered`);
    // Once NATS answers, h1 publishes c1b and the others add it.
    console.log(`c1b (started during the outage) in h2's log ${((await published - back) / 1000).toFixed(1)} s after the nats-servers were started again`);
    await reaches(h2, 'c2', c1b.ip, 15_000);
    await reaches(h3, 'c3', c1b.ip, 15_000);
    // And nobody expired anybody, during or after (a timeout more).
    await sleep((TIMEOUT_S + 2) * 1000);
    for (const [i, h] of bed.hosts.entries()) {
      const left = (await peerEvents(h, seqs[i])).filter((e) => e.type === 'peer.member.left' || e.type === 'peer.endpoint.removed');
      assert.deepEqual(left, [], `${h.name} removed peers around the outage`);
    }
    await h1.docker(['rm', '-f', 'c1b'], { check: true });
  });

  test('ledgernet SIGKILLed on h1: pings between h1 and h2 every 20 ms lose nothing; after restart h1 converges', { timeout: 90_000 }, async () => {
    const flood = pingFlood(h2, 'c2', addr['c1']?.ip ?? '', 400, 20);
    await sleep(1000);
    await h1.signalLedgernet('SIGKILL');
    await sleep(1000);
    await h1.startLedgernet(ARGS);
    const [sent, received, lost] = await flood;
    // The pings are 20 ms apart: the kill came at about seq 50, the restart at about 100.
    assert.equal(received, sent, `${sent - received} of ${sent} pings lost while h1's ledgernet was down (seq ${lost})\n${clusterLogs(30)}\n--- h1's restart:\n${h1.ledgernetLog().slice(-6000)}`);
    console.log(`ledgernet SIGKILLed on h1: ${received} of ${sent} pings h2 → h1 (every 20 ms) answered`);
    // Converged: a container new on h2 is reached from h1, and nothing is left to change on h1.
    const c2b = await run(h2, 'c2b');
    await reaches(h1, 'c1', c2b.ip);
    const dry = await h1.exec(process.execPath, [CLI_PATH, 'reconcile', '--dry-run', '--state-dir', h1.stateDir]);
    assert.equal(dry.exitCode, 0, `reconcile --dry-run on h1 after the restart:\n${dry.stdout}${dry.stderr}`);
    await h2.docker(['rm', '-f', 'c2b'], { check: true });
  });

  test('h3\'s ledgernet and dockerd stopped for good: after the timeout h1 and h2 remove its member and endpoints', { timeout: 120_000 }, async () => {
    const c3 = addr['c3'] ?? { ip: '', mac: '' };
    const seqs = await Promise.all([h1, h2].map(lastSeq));
    await h3.stopLedgernet();
    const t0 = Date.now();
    // dockerd takes a while to stop without its plugin: the others' clocks run meanwhile.
    const stopping = h3.stopDockerd();
    for (const [i, h] of [h1, h2].entries()) {
      await explained(waitFor(async () => {
        const evs = await peerEvents(h, seqs[i]);
        return evs.some((e) => e.type === 'peer.member.left' && e.data['host'] === 'h3') && evs.some((e) => e.type === 'peer.endpoint.removed' && e.data['host'] === 'h3');
      }, { timeoutMs: (TIMEOUT_S + 30) * 1000, intervalMs: 200, what: `h3 and c3 to leave ${h.name}'s log` }));
      await waitFor(async () => !(await tables(h)).includes(c3.mac), { timeoutMs: 3_000, intervalMs: 100, what: `c3's MAC gone from ${h.name}'s tables` });
    }
    const took = (Date.now() - t0) / 1000;
    await stopping;
    // Its last heartbeat may have been up to an interval (1 s) before it stopped.
    assert.ok(took >= TIMEOUT_S - 1.5, `removed after ${took} s`);
    console.log(`h3 (stopped for good) removed from h1's and h2's logs ${took.toFixed(1)} s after its ledgernet stopped`);
    await reaches(h1, 'c1', addr['c2']?.ip ?? '', 3_000);
  });

  test("h3 gone for good: 'ledgernet cluster forget h3' on h1 takes it out of blue and gives its blocks back, recorded with who ran it; a live host is refused; h3 started again with its old state stays out", { timeout: 90_000 }, async () => {
    const cli = (h: Host, args: readonly string[]) => h.exec(process.execPath, [CLI_PATH, ...args, '--state-dir', h.stateDir]);
    // The metrics say what happened: h1 and h2 in touch, each hearing only the other; h3 expired by one of them.
    const metric = async (h: Host, name: string) => {
      const scrape = await h.exec(process.execPath, ['-e', `fetch('http://${METRICS}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`]);
      return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(scrape.stdout)?.[1] ?? NaN);
    };
    for (const h of [h1, h2]) {
      assert.equal(await metric(h, 'ledgernet_cluster_in_touch'), 1, h.name);
      assert.equal(await metric(h, 'ledgernet_cluster_hosts_heard'), 1, h.name);
    }
    assert.ok((await metric(h1, 'ledgernet_cluster_hosts_expired_total')) + (await metric(h2, 'ledgernet_cluster_hosts_expired_total')) >= 1, 'h1 or h2 counted h3 expired');
    const live = await cli(h1, ['cluster', 'forget', 'h2']);
    assert.equal(live.exitCode, 1);
    assert.match(live.stderr, /host h2 is still in the cluster \(its record was last written at .*\); a host is forgotten only once the others expired it/);
    const since = await lastSeq(h1);
    const preview = await cli(h1, ['cluster', 'forget', 'h3', '--dry-run']);
    assert.equal(preview.exitCode, 2, preview.stderr);
    assert.match(preview.stdout, /^would forget cluster host h3: would take it out of blue; [1-9]\d* address block\(s\) would be given back$/);
    // (It recorded nothing: one cluster.host.forgotten since `since` below, the real one's.)
    const r = await cli(h1, ['cluster', 'forget', 'h3', '--reason', 'h3 decommissioned']);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /^forgot cluster host h3: taken out of blue; [1-9]\d* address block\(s\) given back$/);
    const { events } = await readLog(h1.stateDir);
    const rec = events.filter((e) => e.seq > since && e.type === 'cluster.host.forgotten');
    assert.equal(rec.length, 1);
    assert.deepEqual({ ...rec[0]?.data, blocks: 0 }, { host: 'h3', networks: ['blue'], retired: [], blocks: 0 });
    assert.equal(rec[0]?.cause?.by, 'operator');
    assert.match(JSON.stringify(rec[0]?.cause), /"command":"cluster forget".*"reason":"h3 decommissioned"/);
    // Forgotten: asked again, nothing is left of it.
    const again = await cli(h1, ['cluster', 'forget', 'h3']);
    assert.match(again.stderr, /host h3 is not in the cluster: no network lists it and it holds no address block/);
    await reaches(h1, 'c1', addr['c2']?.ip ?? '', 3_000);
    // h3 started again with its old state dir (its log still has blue, whose blocks it gave back): it stays out.
    await h3.startLedgernet(ARGS);
    try {
      await waitFor(() => /was forgotten by the cluster/.test(h3.ledgernetLog()), { timeoutMs: 20_000, intervalMs: 200, what: "h3's ledgernet to say it was forgotten" });
      const st = await cli(h3, ['status']);
      assert.match(st.stdout, /cluster hosts: not known \(this host \(h3\) was forgotten by the cluster \(ledgernet cluster forget on host h1 at \S+ \(reason: h3 decommissioned\)\); its log still has cluster network\(s\) blue,/, st.stdout + st.stderr);
      await sleep(2_000); // two heartbeat intervals: h3 would have written its record by now
      const onH1 = await cli(h1, ['status']);
      assert.match(onH1.stdout, /^h1 \(this host\)/m, onH1.stdout);
      assert.match(onH1.stdout, /^forgotten: h3 \(by h1 at \S+; reason: h3 decommissioned\): refused if it comes back with its old cluster networks$/m, onH1.stdout);
      assert.doesNotMatch(onH1.stdout, /^h3\s/m, 'h3 wrote no record');
    } finally {
      await h3.stopLedgernet();
    }
  });
});

