// ledgernet as Docker's IPAM driver, IPv6, and the `docker network create` options, with the real
// dockerd: static and ranged addresses, automatic pools, exhaustion, overlap, bad options that
// create nothing, and a kill -9 between allocations that never leads to an address handed out twice.
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { rm } from 'node:fs/promises';
import { after, afterEach, before, describe, test } from 'node:test';
import { TEST_IMAGE, cleanupAll, containerEndpoint, containerIp, docker, ping, track, uniqueName, waitFor } from '../helpers/docker.ts';
import { ledgernetCli, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { assertNoLeaks, waitNoLeaks } from '../helpers/leaks.ts';

// The driver and IPAM names users type. dockerd activates a legacy plugin once per name and keeps
// its `Implements` until it restarts (protocol.md §1.2): on a dockerd that first met a ledgernet
// without IPAM, set LEDGERNET_E2E_PLUGIN to another name (the daemon is then served there too).
const PLUGIN = process.env['LEDGERNET_E2E_PLUGIN'] ?? 'ledgernet';
const SOCKET = `/run/docker/plugins/${PLUGIN}.sock`;

// Automatic pools come from a corner of 10.231/16 no other test here uses.
const AUTO_RANGE = '10.231.192.0/20';
const DAEMON_ARGS = ['--reconcile-interval', '1', '--default-pool', AUTO_RANGE, '--default-pool-size', '24'];

let daemon: DaemonHandle;
/** Host links a test made itself (dummy interfaces), removed after each test. */
const hostLinks = new Set<string>();

before(async () => {
  await assertNoLeaks();
  daemon = await startDaemon({ socket: SOCKET, extraArgs: DAEMON_ARGS });
});

afterEach(async () => {
  await cleanupAll();
  for (const l of hostLinks) await execa('ip', ['link', 'del', 'dev', l], { reject: false });
  hostLinks.clear();
});

after(async () => {
  await cleanupAll();
  await stopAllDaemons();
  // A socket nobody answers on would slow every plugin scan of dockerd by ~15 s.
  await rm(SOCKET, { force: true });
});

const logs = () => `\n--- daemon logs ---\n${daemon.logs().slice(-3000)}`;

async function createNetwork(args: readonly string[]): Promise<string> {
  const name = track.network(uniqueName('ln'));
  const r = await docker(['network', 'create', '--driver', PLUGIN, ...args, name]);
  assert.equal(r.exitCode, 0, `network create ${args.join(' ')} failed: ${r.stderr}${logs()}`);
  return name;
}

/** `docker network create` that must fail; returns stderr after checking nothing was kept. */
async function refusedNetwork(args: readonly string[]): Promise<string> {
  const name = track.network(uniqueName('ln'));
  const r = await docker(['network', 'create', '--driver', PLUGIN, ...args, name]);
  assert.notEqual(r.exitCode, 0, `network create ${args.join(' ')} should fail${logs()}`);
  assert.equal((await docker(['network', 'inspect', name])).exitCode, 1, `docker did not keep ${name}`);
  return r.stderr;
}

async function run(network: string, ...extra: string[]): Promise<string> {
  const name = track.container(uniqueName('c'));
  const r = await docker(['run', '-d', '--name', name, '--network', network, ...extra, TEST_IMAGE, 'sleep', '600']);
  assert.equal(r.exitCode, 0, `docker run ${extra.join(' ')} failed: ${r.stderr}${logs()}`);
  return name;
}

async function runFails(network: string, ...extra: string[]): Promise<string> {
  const name = track.container(uniqueName('c'));
  const r = await docker(['run', '-d', '--name', name, '--network', network, ...extra, TEST_IMAGE, 'sleep', '600']);
  assert.notEqual(r.exitCode, 0, `docker run ${extra.join(' ')} should fail${logs()}`);
  return r.stderr;
}

async function networkInfo(name: string): Promise<{ id: string; subnets: string[]; gateways: string[] }> {
  const r = await docker(['network', 'inspect', '-f', '{{json .}}', name], { check: true });
  const n = JSON.parse(r.stdout) as { Id: string; IPAM: { Config: { Subnet: string; Gateway?: string }[] } };
  return { id: n.Id, subnets: n.IPAM.Config.map((c) => c.Subnet), gateways: n.IPAM.Config.map((c) => c.Gateway ?? '') };
}

async function addrsOf(dev: string): Promise<string[]> {
  const r = await execa('ip', ['-j', 'addr', 'show', 'dev', dev]);
  const [l] = JSON.parse(r.stdout) as { addr_info: { local: string; prefixlen: number; scope: string }[] }[];
  return (l?.addr_info ?? []).filter((a) => a.scope !== 'link').map((a) => `${a.local}/${a.prefixlen}`);
}

async function removeAll(containers: readonly string[], networks: readonly string[]): Promise<void> {
  if (containers.length > 0) assert.equal((await docker(['rm', '-f', ...containers])).exitCode, 0);
  for (const n of networks) assert.equal((await docker(['network', 'rm', n])).exitCode, 0);
  await waitNoLeaks();
  await assertNoPluginNetworks();
}

/** No network of the driver under test is left (leaks.ts only knows the name ledgernet). */
async function assertNoPluginNetworks(): Promise<void> {
  const r = await docker(['network', 'ls', '--filter', `driver=${PLUGIN}`, '--format', '{{.Name}}'], { check: true });
  assert.equal(r.stdout.trim(), '', `networks of driver ${PLUGIN} left: ${r.stdout}`);
}

describe('ledgernet IPAM with the real dockerd', () => {
  test('--ip-range, --gateway, --aux-address and static --ip', async () => {
    const n = await createNetwork([
      '--ipam-driver', PLUGIN, '--subnet', '10.231.40.0/24', '--ip-range', '10.231.40.128/25',
      '--gateway', '10.231.40.1', '--aux-address', 'router=10.231.40.5',
    ]);
    const info = await networkInfo(n);
    assert.deepEqual(info.subnets, ['10.231.40.0/24']);
    assert.deepEqual(info.gateways, ['10.231.40.1']);
    const c1 = await run(n);
    const ip1 = await containerIp(c1, n);
    assert.match(ip1, /^10\.231\.40\.(1[2-9]\d|2\d\d)$/, `a dynamic address comes from the ip-range, got ${ip1}`);
    const c2 = await run(n, '--ip', '10.231.40.77');
    assert.equal(await containerIp(c2, n), '10.231.40.77', 'the static --ip is honoured (outside the range is fine)');
    assert.ok(await ping(c1, '10.231.40.77'), 'c1 reaches the static address');

    const taken = await runFails(n, '--ip', '10.231.40.77');
    // Docker before 29 sends no container name: the holder comes from the log (its endpoint, named once docker-sync has read it).
    assert.match(taken, new RegExp(`address 10\\.231\\.40\\.77 in pool 10\\.231\\.40\\.0/24 is already in use by (container ${c2}|the container of endpoint [0-9a-f]{12});`));
    const aux = await runFails(n, '--ip', '10.231.40.5');
    assert.match(aux, /10\.231\.40\.5 .*already in use by --aux-address router=10\.231\.40\.5 of network/, 'an aux address is never handed out');
    const gw = await runFails(n, '--ip', '10.231.40.1');
    assert.match(gw, /already in use by the gateway/);
    await removeAll([c1, c2], [n]);
  });

  test('ledgernet status shows each pool\'s usage, and the numbers move as containers start and stop', async () => {
    // A /28 (14 usable), --ip-range a /29 (.8-.14 usable), gateway and aux outside the range.
    const n = await createNetwork([
      '--ipam-driver', PLUGIN, '--subnet', '10.231.45.0/28', '--ip-range', '10.231.45.8/29',
      '--gateway', '10.231.45.1', '--aux-address', 'router=10.231.45.2',
    ]);
    const id = (await networkInfo(n)).id;
    type Pool = { pool: string; subPool: string | null; networkId: string | null; size: number; inUse: number; reserved: number; available: number };
    const usage = async (): Promise<Pool | undefined> => {
      const r = await ledgernetCli(['status', '--json', '--state-dir', daemon.stateDir]);
      assert.equal(r.exitCode, 0, r.stderr);
      return (JSON.parse(r.stdout) as { pools: Pool[] }).pools.find((p) => p.pool === '10.231.45.0/28');
    };
    const counts = async () => {
      const p = await usage();
      return p ? `in use ${p.inUse}, free ${p.available}, reserved ${p.reserved}` : 'no pool';
    };
    const expect = async (want: string, what: string) =>
      waitFor(
        async () => {
          const now = await counts();
          if (now !== want) throw new Error(`status says ${now}`);
          return true;
        },
        { timeoutMs: 10_000, intervalMs: 500, what: `${what}: ${want}` },
      );

    const p0 = await usage();
    assert.deepEqual(
      { ...p0 },
      { pool: '10.231.45.0/28', subPool: '10.231.45.8/29', networkId: id, size: 14, inUse: 0, reserved: 2, available: 7, poolId: 'ledgernet/10.231.45.0/28', family: 4 },
    );
    const c1 = await run(n);
    const c2 = await run(n);
    await expect('in use 2, free 5, reserved 2', 'two containers started');
    const text = await ledgernetCli(['status', '--state-dir', daemon.stateDir]);
    assert.match(text.stdout, /POOL\s+NETWORK\s+IN USE\s+FREE\s+RESERVED/);
    assert.match(text.stdout, new RegExp(`10\\.231\\.45\\.0/28 \\(ip-range 10\\.231\\.45\\.8/29\\)\\s+${id.slice(0, 12)}\\s+2\\s+5\\s+2`));

    assert.equal((await docker(['stop', '-t', '0', c1])).exitCode, 0);
    await expect('in use 1, free 6, reserved 2', 'a container stopped');
    assert.equal((await docker(['start', c1])).exitCode, 0);
    await expect('in use 2, free 5, reserved 2', 'the container started again');
    const c3 = await run(n, '--ip', '10.231.45.3');
    await expect('in use 3, free 5, reserved 2', 'a static --ip outside the range is in use, the range keeps its free count');
    assert.equal((await docker(['rm', '-f', c1, c2, c3])).exitCode, 0);
    await expect('in use 0, free 7, reserved 2', 'all containers removed');
    assert.equal((await docker(['network', 'rm', n])).exitCode, 0);
    await waitFor(async () => ((await usage()) === undefined ? true : null), { timeoutMs: 10_000, intervalMs: 500, what: 'the pool to leave the status with its network' });
    await waitNoLeaks();
    await assertNoPluginNetworks();
  });

  test('automatic pools: different per network, never over a host address, containers ping', async () => {
    // An address and a route already on the host, inside the automatic range, must be skipped.
    // (A bare bridge of the test's own, not a dummy: this kernel has no dummy module.)
    const foreign = `lnt${process.pid % 100000}`;
    hostLinks.add(foreign);
    await execa('ip', ['link', 'add', foreign, 'type', 'bridge']);
    await execa('ip', ['link', 'set', foreign, 'up']);
    await execa('ip', ['addr', 'add', '10.231.192.1/24', 'dev', foreign]);
    await execa('ip', ['route', 'add', '10.231.193.0/24', 'dev', foreign]);

    const n1 = await createNetwork(['--ipam-driver', PLUGIN]);
    const n2 = await createNetwork(['--ipam-driver', PLUGIN]);
    const s1 = (await networkInfo(n1)).subnets;
    const s2 = (await networkInfo(n2)).subnets;
    assert.equal(s1.length, 1);
    assert.equal(s2.length, 1);
    assert.notEqual(s1[0], s2[0], 'two networks without --subnet get different pools');
    for (const s of [...s1, ...s2]) {
      assert.match(s ?? '', /^10\.231\.(19[2-9]|20[0-7])\.0\/24$/, `${s} comes from ${AUTO_RANGE}`);
      assert.ok(!['10.231.192.0/24', '10.231.193.0/24'].includes(s ?? ''), `${s}: the host's address and route are avoided`);
    }
    const c1 = await run(n1);
    const c2 = await run(n1);
    assert.ok(await ping(c1, await containerIp(c2, n1)));
    await removeAll([c1, c2], [n1, n2]);
  });

  test('IPv6: the bridge has the v6 gateway, Join returns it, containers ping over IPv6', async () => {
    const n = await createNetwork([
      '--ipam-driver', PLUGIN, '--ipv6', '--subnet', '10.231.41.0/24', '--subnet', 'fd00:231:41::/64',
    ]);
    const { id } = await networkInfo(n);
    assert.ok((await addrsOf(`lnb-${id.slice(0, 11)}`)).includes('fd00:231:41::1/64'), 'the bridge holds the v6 gateway');
    const c1 = await run(n);
    const c2 = await run(n);
    const e1 = await containerEndpoint(c1, n);
    const e2 = await containerEndpoint(c2, n);
    assert.match(e1.GlobalIPv6Address, /^fd00:231:41::/);
    assert.notEqual(e1.GlobalIPv6Address, e2.GlobalIPv6Address);
    assert.equal(e1.IPv6Gateway, 'fd00:231:41::1', 'Join answered GatewayIPv6');
    assert.ok(await ping(c1, e2.GlobalIPv6Address), `c1 pings ${e2.GlobalIPv6Address}`);
    assert.ok(await ping(c2, 'fd00:231:41::1'), 'a container pings the v6 gateway');
    // static --ip6: honoured, reachable, and refused once taken
    const c3 = await run(n, '--ip6', 'fd00:231:41::99');
    assert.equal((await containerEndpoint(c3, n)).GlobalIPv6Address, 'fd00:231:41::99');
    assert.ok(await ping(c1, 'fd00:231:41::99'), 'c1 reaches the static v6 address');
    const taken = await runFails(n, '--ip6', 'fd00:231:41::99');
    assert.match(taken, /fd00:231:41::99 .*already in use/);
    await removeAll([c1, c2, c3], [n]);
  });

  test('IPv6 with Docker default IPAM works the same', async () => {
    const n = await createNetwork(['--ipv6', '--subnet', '10.231.45.0/24', '--subnet', 'fd00:231:45::/64']);
    const c1 = await run(n);
    const c2 = await run(n);
    const e2 = await containerEndpoint(c2, n);
    assert.equal((await containerEndpoint(c1, n)).IPv6Gateway, 'fd00:231:45::1');
    assert.ok(await ping(c1, e2.GlobalIPv6Address), `c1 pings ${e2.GlobalIPv6Address}`);
    await removeAll([c1, c2], [n]);
  });

  test('a /29 fills up and the next container is refused with a message naming the pool and the network', async () => {
    const n = await createNetwork(['--ipam-driver', PLUGIN, '--subnet', '10.231.42.0/29']);
    const { id } = await networkInfo(n);
    const cs: string[] = [];
    for (let i = 0; i < 5; i++) cs.push(await run(n)); // .1 is the gateway, .2–.6 for containers
    const ips = await Promise.all(cs.map((c) => containerIp(c, n)));
    assert.equal(new Set(ips).size, 5);
    const err = await runFails(n);
    // By its name once docker-sync has read it from Docker's API, by its id before.
    assert.match(err, new RegExp(`pool 10\\.231\\.42\\.0/29 of network (${n} \\()?${id.slice(0, 12)}\\)? is exhausted`));
    await removeAll(cs, [n]);
  });

  test('a subnet overlapping another ledgernet network is refused, naming it, with either IPAM', async () => {
    const n1 = await createNetwork(['--ipam-driver', PLUGIN, '--subnet', '10.231.43.0/24']);
    const id = (await networkInfo(n1)).id.slice(0, 12);
    const viaIpam = await refusedNetwork(['--ipam-driver', PLUGIN, '--subnet', '10.231.43.128/25']);
    assert.match(viaIpam, new RegExp(`overlaps subnet 10\\.231\\.43\\.0/24 of ledgernet network ${id}`));
    const viaDefault = await refusedNetwork(['--subnet', '10.231.43.0/25']);
    assert.match(viaDefault, new RegExp(`overlaps subnet 10\\.231\\.43\\.0/24 of ledgernet network ${id}`));
    await removeAll([], [n1]);
  });

  test('a subnet on a Docker bridge network\'s subnet is refused, naming its bridge, and that network keeps working', async () => {
    const br = track.network(uniqueName('br'));
    await docker(['network', 'create', '--driver', 'bridge', '--subnet', '10.232.48.0/24', br], { check: true });
    const bridge = `br-${(await docker(['network', 'inspect', '-f', '{{.Id}}', br], { check: true })).stdout.trim().slice(0, 12)}`;
    const b1 = await run(br);
    const b2 = await run(br);
    const refused = await refusedNetwork(['--ipam-driver', PLUGIN, '--subnet', '10.232.48.0/24']);
    assert.match(refused, new RegExp(`overlaps subnet 10\\.232\\.48\\.0/24 of interface ${bridge} .*nothing was created`));
    // The host's address alone (a /32 inside it) is refused the same way.
    assert.match(await refusedNetwork(['--ipam-driver', PLUGIN, '--subnet', '10.232.48.1/32']), new RegExp(`interface ${bridge}`));
    assert.ok(await ping(b1, await containerIp(b2, br)), `the bridge network's containers still reach each other${logs()}`);
    await removeAll([b1, b2], [br]);
  });

  test('every bad option is refused with a message naming it, and nothing is created', async () => {
    const cases: [string[], RegExp][] = [
      [['-o', 'ledgernet.bogus=1'], /unknown option ledgernet\.bogus/],
      [['-o', 'ledgernet.mtu=9'], /ledgernet\.mtu=9 is invalid: expected an integer from 68 to 65535/],
      [['-o', 'com.docker.network.driver.mtu=abc'], /com\.docker\.network\.driver\.mtu=abc is invalid/],
      [['-o', 'ledgernet.bridge=a-name-far-too-long'], /ledgernet\.bridge=a-name-far-too-long is invalid: expected an interface name of 1 to 15 bytes/],
      [['-o', 'com.docker.network.bridge.name=bad/name'], /com\.docker\.network\.bridge\.name=bad\/name is invalid/],
      [['-o', 'ledgernet.bridge=lnv-x'], /ledgernet\.bridge=lnv-x is invalid/],
      [['-o', 'ledgernet.bridge=lo'], /bridge name lo .* is already an interface on this host that ledgernet does not own/],
      [['-o', 'ledgernet.mtu=1400', '-o', 'com.docker.network.driver.mtu=1500'], /say different things/],
      [['--ipam-driver', PLUGIN, '--ipam-opt', 'foo=bar'], /ledgernet IPAM takes only --ipam-opt ledgernet.cluster=NAME, got foo/],
      // Issue 9: conflicting aliases, Docker options ledgernet would ignore, reserved prefixes, subnets that capture the host.
      [['-o', 'ledgernet.icc=true', '-o', 'com.docker.network.bridge.enable_icc=false'], /options ledgernet\.icc=true and com\.docker\.network\.bridge\.enable_icc=false say different things/],
      [['-o', 'com.docker.network.bridge.default_bridge=true'], /option com\.docker\.network\.bridge\.default_bridge is not supported by ledgernet/],
      // (::1 is accepted since the in-daemon proxy serves it: test/unit/reconciler/proxies.test.ts)
      [['-o', 'com.docker.network.bridge.host_binding_ipv4=224.0.0.1'], /com\.docker\.network\.bridge\.host_binding_ipv4=224\.0\.0\.1 is invalid: expected an IP address/],
      [['-o', 'ledgernet.bridge=lni-x'], /ledgernet\.bridge=lni-x is invalid/],
      [['--ipam-driver', PLUGIN, '--subnet', '127.77.0.0/24'], /--subnet 127\.77\.0\.0\/24 is refused: it overlaps loopback/],
      [['--subnet', '169.254.77.0/24'], /IPv4Data\[0\]\.Pool 169\.254\.77\.0\/24 is refused: it overlaps link-local/],
    ];
    for (const [extra, want] of cases) {
      const ipam = extra.includes('--ipam-driver') || extra.includes('--subnet') ? [] : ['--ipam-driver', PLUGIN];
      const subnet = extra.includes('--subnet') ? [] : ['--subnet', '10.231.46.0/24'];
      const err = await refusedNetwork([...ipam, ...subnet, ...extra]);
      assert.match(err, want, `${extra.join(' ')}: ${err}`);
      await assertNoLeaks();
      await assertNoPluginNetworks();
    }
    // The pool was given back each time: the same subnet works now.
    const n = await createNetwork(['--ipam-driver', PLUGIN, '--subnet', '10.231.46.0/24']);
    await removeAll([], [n]);
  });

  test('a custom bridge name (Docker bridge-driver option) carries the ownership alias', async () => {
    const bridge = `lntb${process.pid % 100000}`;
    const n = await createNetwork(['--subnet', '10.231.47.0/24', '-o', `com.docker.network.bridge.name=${bridge}`, '-o', 'ledgernet.mtu=1400']);
    const { id } = await networkInfo(n);
    const r = await execa('ip', ['-j', '-d', 'link', 'show', 'dev', bridge]);
    const [l] = JSON.parse(r.stdout) as { ifalias?: string; mtu: number }[];
    assert.equal(l?.ifalias, `ledgernet:network:${id}`);
    assert.equal(l?.mtu, 1400);
    const c1 = await run(n);
    const c2 = await run(n);
    assert.ok(await ping(c1, await containerIp(c2, n)));
    await removeAll([c1, c2], [n]);
    const gone = await execa('ip', ['link', 'show', 'dev', bridge], { reject: false });
    assert.notEqual(gone.exitCode, 0, `${bridge} was removed`);
  });

  test('kill -9 between allocations: new containers get fresh, unique addresses', async () => {
    const n = await createNetwork(['--ipam-driver', PLUGIN, '--subnet', '10.231.44.0/24']);
    const c1 = await run(n);
    const c2 = await run(n);
    await daemon.kill9();
    daemon = await startDaemon({ socket: SOCKET, stateDir: daemon.stateDir, keepStateDir: false, extraArgs: DAEMON_ARGS });
    const c3 = await run(n);
    const c4 = await run(n);
    const ips = await Promise.all([c1, c2, c3, c4].map((c) => containerIp(c, n)));
    assert.equal(new Set([...ips, '10.231.44.1']).size, 5, `unique addresses, none the gateway: ${ips.join(' ')}`);
    // Released addresses are not handed straight back.
    assert.equal((await docker(['rm', '-f', c1])).exitCode, 0);
    const c5 = await run(n);
    const ip5 = await containerIp(c5, n);
    assert.ok(!ips.includes(ip5), `${ip5} is fresh, not c1's just-released ${ips[0]}`);
    assert.ok(await ping(c5, ips[3] ?? ''), 'containers across the restart reach each other');
    await removeAll([c2, c3, c4, c5], [n]);
  });
});
