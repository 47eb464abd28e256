// Name resolution on ledgernet networks, with the real dockerd: Docker's embedded DNS
// (127.0.0.11 inside each container) answers container names and network aliases of the
// networks a container shares, and nothing of the networks it does not. A ledgernet change that
// breaks it (a rule that drops the resolver's traffic in the container's namespace, an
// address Docker does not know about) fails here.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { TEST_IMAGE, cleanupAll, containerIp, docker, track, uniqueName } from '../helpers/docker.ts';
import { startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { assertNoLeaks, waitNoLeaks } from '../helpers/leaks.ts';

let daemon: DaemonHandle;
before(async () => {
  await assertNoLeaks();
  daemon = await startDaemon({ extraArgs: ['--reconcile-interval', '5'] });
});
// Containers and networks a test made are removed also when it fails half-way.
afterEach(() => cleanupAll());
after(() => cleanupAll().then(stopAllDaemons));

const logs = () => `\n--- daemon logs ---\n${daemon.logs().slice(-2000)}`;

async function network(subnet: string): Promise<string> {
  const name = track.network(uniqueName('ln'));
  const r = await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', subnet, name]);
  assert.equal(r.exitCode, 0, `network create failed: ${r.stderr}${logs()}`);
  return name;
}

async function run(net: string, name: string, ...extra: string[]): Promise<string> {
  track.container(name);
  const r = await docker(['run', '-d', '--name', name, '--network', net, ...extra, TEST_IMAGE, 'sleep', '600']);
  assert.equal(r.exitCode, 0, `docker run failed: ${r.stderr}${logs()}`);
  return name;
}

/** What `nslookup NAME` inside `from` answers: the addresses, or [] when the name is unknown. */
async function nslookup(from: string, name: string): Promise<string[]> {
  const r = await docker(['exec', from, 'nslookup', name], { timeoutMs: 20_000 });
  // busybox prints the server first, then "Name: …" and "Address: …" lines for the answer.
  const answer = r.stdout.split(/^Name:/m).slice(1).join('\n');
  return [...answer.matchAll(/Address(?: \d+)?:\s+([0-9a-f.:]+)/g)].map((m) => m[1] ?? '');
}

/** The address `ping -c1 NAME` inside `from` resolved NAME to, and whether it answered. */
async function pingName(from: string, name: string): Promise<{ ip: string | null; ok: boolean }> {
  const r = await docker(['exec', from, 'ping', '-c', '1', '-W', '2', name], { timeoutMs: 20_000 });
  const m = /^PING \S+ \(([0-9.]+)\)/m.exec(r.stdout);
  return { ip: m?.[1] ?? null, ok: r.exitCode === 0 };
}

describe('Docker embedded DNS on ledgernet networks', () => {
  test('a container name and its --network-alias resolve to its address from another container; ping by name works', async () => {
    const n = await network('10.231.46.0/24');
    const a = await run(n, uniqueName('a'), '--network-alias', 'x-alias');
    const b = await run(n, uniqueName('b'));
    const ipA = await containerIp(a, n);

    assert.deepEqual(await nslookup(b, a), [ipA], `nslookup ${a} from ${b}`);
    assert.deepEqual(await nslookup(b, 'x-alias'), [ipA], 'nslookup of the network alias');
    assert.deepEqual(await pingName(b, a), { ip: ipA, ok: true }, `ping -c1 ${a}`);
    assert.deepEqual(await pingName(b, 'x-alias'), { ip: ipA, ok: true }, 'ping -c1 x-alias');
    // And the other way round: a finds b by name.
    assert.deepEqual(await nslookup(a, b), [await containerIp(b, n)]);
  });

  test('names are per network: a container on another ledgernet network is not resolved; connect adds an alias, disconnect removes it', async () => {
    const n1 = await network('10.231.47.0/24');
    const n2 = await network('10.231.48.0/24');
    const a = await run(n1, uniqueName('a'));
    const c = await run(n2, uniqueName('c'));
    assert.deepEqual(await nslookup(a, c), [], `${c} (on another network) is not resolved from ${a}`);
    assert.equal((await pingName(a, c)).ip, null);

    assert.equal((await docker(['network', 'connect', '--alias', 'y-alias', n1, c])).exitCode, 0);
    const ipC = await containerIp(c, n1);
    assert.deepEqual(await nslookup(a, c), [ipC], 'after connect, its address on the shared network');
    assert.deepEqual(await pingName(a, 'y-alias'), { ip: ipC, ok: true });

    assert.equal((await docker(['network', 'disconnect', n1, c])).exitCode, 0);
    assert.deepEqual(await nslookup(a, 'y-alias'), [], 'after disconnect the alias is gone');
    assert.equal((await docker(['rm', '-f', a, c])).exitCode, 0);
    for (const n of [n1, n2]) assert.equal((await docker(['network', 'rm', n])).exitCode, 0);
    await waitNoLeaks();
  });
});
