// The driver end to end with the real dockerd: a user creates a ledgernet network, runs
// containers that reach each other, connects and disconnects, removes everything, and nothing
// of ledgernet is left on the host.
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { stat } from 'node:fs/promises';
import { after, afterEach, before, describe, test } from 'node:test';
import { TEST_IMAGE, cleanupAll, containerEndpoint, containerIp, docker, ping, track, uniqueName, waitFor } from '../helpers/docker.ts';
import { ledgernetCli, pluginCall, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { assertNoLeaks, waitNoLeaks } from '../helpers/leaks.ts';

let daemon: DaemonHandle;

before(async () => {
  await assertNoLeaks();
  daemon = await startDaemon({ extraArgs: ['--reconcile-interval', '1'] });
});

afterEach(async () => {
  await cleanupAll();
});

after(async () => {
  await cleanupAll();
  await stopAllDaemons();
});

async function links(): Promise<{ ifname: string; ifindex: number; master?: string; ifalias?: string }[]> {
  const r = await execa('ip', ['-j', '-d', 'link', 'show']);
  return JSON.parse(r.stdout) as { ifname: string; ifindex: number; master?: string; ifalias?: string }[];
}

async function createNetwork(subnet: string, ...extra: string[]): Promise<string> {
  const name = track.network(uniqueName('ln'));
  const r = await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', subnet, ...extra, name]);
  assert.equal(r.exitCode, 0, `network create failed: ${r.stderr}\n${daemon.logs().slice(-2000)}`);
  return name;
}

async function runContainer(network: string): Promise<string> {
  const name = track.container(uniqueName('c'));
  const r = await docker(['run', '-d', '--name', name, '--network', network, TEST_IMAGE, 'sleep', '600']);
  assert.equal(r.exitCode, 0, `docker run failed: ${r.stderr}\n${daemon.logs().slice(-2000)}`);
  return name;
}

async function dryRun(): Promise<{ code: number; out: string }> {
  const r = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', daemon.stateDir]);
  return { code: r.exitCode, out: r.stdout + r.stderr };
}

describe('ledgernet with the real dockerd', () => {
  test('containers on one network ping each other; connect, disconnect, stop, rm, network rm leave nothing', async () => {
    const n1 = await createNetwork('10.231.7.0/24');
    const netId = (await docker(['network', 'inspect', '-f', '{{.Id}}', n1], { check: true })).stdout.trim();
    const bridge = `lnb-${netId.slice(0, 11)}`;
    const br = (await links()).find((l) => l.ifname === bridge);
    assert.ok(br, `bridge ${bridge} exists`);
    assert.equal(br.ifalias, `ledgernet:network:${netId}`);

    const c1 = await runContainer(n1);
    const c2 = await runContainer(n1);
    const ip1 = await containerIp(c1, n1);
    const ip2 = await containerIp(c2, n1);
    assert.ok(await ping(c1, ip2), `${c1} pings ${c2} at ${ip2}`);
    assert.ok(await ping(c2, ip1), `${c2} pings ${c1} at ${ip1}`);
    assert.ok(await ping(c1, '10.231.7.1'), 'a container pings its gateway (the bridge address)');

    const ep1 = await containerEndpoint(c1, n1);
    const veth1 = `lnv-${ep1.EndpointID.slice(0, 11)}`;
    assert.equal((await links()).find((l) => l.ifname === veth1)?.master, bridge, 'the host-side veth is on the bridge');
    const dr = await dryRun();
    assert.equal(dr.code, 0, dr.out);
    assert.match(dr.out, /no changes/);

    // connect c1 to a second network: it reaches a container there through eth1
    const n2 = await createNetwork('10.231.8.0/24');
    const c3 = await runContainer(n2);
    assert.equal((await docker(['network', 'connect', n2, c1])).exitCode, 0);
    const ip3 = await containerIp(c3, n2);
    assert.ok(await ping(c1, ip3), 'after connect, c1 reaches c3 on the second network');
    const ep1n2 = await containerEndpoint(c1, n2);
    const veth1n2 = `lnv-${ep1n2.EndpointID.slice(0, 11)}`;
    assert.ok((await links()).some((l) => l.ifname === veth1n2));

    // disconnect: the endpoint's veth goes, c1 no longer reaches n2
    assert.equal((await docker(['network', 'disconnect', n2, c1])).exitCode, 0);
    await waitFor(async () => !(await links()).some((l) => l.ifname === veth1n2), { what: `${veth1n2} to be removed` });
    assert.equal(await ping(c1, ip3, 1), false, 'after disconnect, c1 cannot reach c3');

    // containers on different ledgernet networks do not reach each other (no route, no forward)
    assert.equal(await ping(c2, ip3, 1), false);

    // stop and rm: veths go away
    const veth2 = `lnv-${(await containerEndpoint(c2, n1)).EndpointID.slice(0, 11)}`;
    assert.ok((await links()).some((l) => l.ifname === veth2));
    assert.equal((await docker(['stop', '-t', '1', c2])).exitCode, 0);
    await waitFor(async () => !(await links()).some((l) => l.ifname === veth2), { what: `${veth2} to go after docker stop` });
    assert.equal((await docker(['rm', '-f', c1, c2, c3])).exitCode, 0);
    assert.equal((await docker(['network', 'rm', n1, n2])).exitCode, 0);
    await waitNoLeaks();
    const after = await dryRun();
    assert.equal(after.code, 0, after.out);

    const events = await ledgernetCli(['events', '--json', '--state-dir', daemon.stateDir]);
    const types = events.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { type: string }).type);
    for (const t of ['network.created', 'endpoint.created', 'endpoint.joined', 'endpoint.left', 'endpoint.deleted', 'network.deleted']) {
      assert.ok(types.includes(t), `the log holds ${t}`);
    }
    const verify = await ledgernetCli(['events', 'verify', '--state-dir', daemon.stateDir]);
    assert.equal(verify.exitCode, 0, verify.stderr);
  });

  test('drift: a forward rule deleted by hand shows in the dry-run and is restored by the loop', async () => {
    const n = await createNetwork('10.231.10.0/24');
    const c1 = await runContainer(n);
    const c2 = await runContainer(n);
    const ip2 = await containerIp(c2, n);
    await execa('iptables', ['-D', 'FORWARD', '-m', 'comment', '--comment', 'ledgernet:hook', '-j', 'LEDGERNET-FORWARD']);
    const dr = await dryRun();
    // The loop runs every second: either we caught the drift, or it was already repaired.
    if (dr.code === 2) assert.match(dr.out, /hook\.add filter\/FORWARD/);
    else assert.equal(dr.code, 0, dr.out);
    await waitFor(async () => (await dryRun()).code === 0, { what: 'the loop to restore the hook', timeoutMs: 10_000 });
    assert.ok(await ping(c1, ip2), 'traffic flows again after the repair');
    const save = await execa('iptables-save', ['-t', 'filter']);
    assert.equal(save.stdout.split('\n').filter((l) => l.includes('ledgernet:hook')).length, 1, 'exactly one hook');
  });

  test('a joined endpoint whose veth vanished is recorded as lost, not recreated', async () => {
    const n = await createNetwork('10.231.13.0/24');
    const c1 = await runContainer(n);
    const ep = await containerEndpoint(c1, n);
    const veth = `lnv-${ep.EndpointID.slice(0, 11)}`;
    await execa('ip', ['link', 'del', 'dev', veth]);
    await waitFor(
      async () => {
        const r = await ledgernetCli(['status', '--json', '--state-dir', daemon.stateDir]);
        const st = JSON.parse(r.stdout) as { endpoints: { endpointId: string; state: string }[] };
        return st.endpoints.find((e) => e.endpointId === ep.EndpointID)?.state === 'lost';
      },
      { what: `endpoint ${ep.EndpointID.slice(0, 12)} to be recorded lost` },
    );
    assert.equal((await links()).some((l) => l.ifname === veth), false, 'the veth was not recreated');
    const events = await ledgernetCli(['events', '--json', '--state-dir', daemon.stateDir]);
    assert.match(events.stdout, /"type":"endpoint\.lost"/);
    const dr = await dryRun();
    assert.equal(dr.code, 0, dr.out);
    assert.equal((await docker(['rm', '-f', c1])).exitCode, 0);
    assert.equal((await docker(['network', 'rm', n])).exitCode, 0);
    await waitNoLeaks();
  });

  test('inhibit_ipv4: the bridge gets no IPv4 address, the containers reach each other; an address the operator adds stays, and they reach the host at it', async () => {
    const bad = await docker(['network', 'create', '--driver', 'ledgernet', '-o', 'com.docker.network.bridge.inhibit_ipv4=maybe', track.network(uniqueName('ln'))]);
    assert.notEqual(bad.exitCode, 0);
    assert.match(bad.stderr, /com\.docker\.network\.bridge\.inhibit_ipv4.*maybe.*true or false/);
    const n = await createNetwork('10.231.9.0/24', '-o', 'com.docker.network.bridge.inhibit_ipv4=true');
    const netId = (await docker(['network', 'inspect', '-f', '{{.Id}}', n], { check: true })).stdout.trim();
    const bridge = `lnb-${netId.slice(0, 11)}`;
    const c1 = await runContainer(n);
    const c2 = await runContainer(n);
    const v4 = async () => (await execa('ip', ['-4', '-o', 'addr', 'show', 'dev', bridge])).stdout.trim();
    assert.equal(await v4(), '', 'no IPv4 address on the bridge');
    assert.ok(await ping(c1, await containerIp(c2, n)), 'the containers reach each other');
    assert.equal(await ping(c1, '10.231.9.1', 1), false, 'nothing answers at the gateway address yet');
    assert.equal((await dryRun()).code, 0);
    // The operator gives the bridge the gateway address: ledgernet keeps it (the loop runs every second).
    await execa('ip', ['addr', 'add', '10.231.9.1/24', 'dev', bridge]);
    await new Promise((r) => setTimeout(r, 2_500));
    assert.match(await v4(), /inet 10\.231\.9\.1\/24/, 'the address added by hand is still there after the passes');
    const dr = await dryRun();
    assert.equal(dr.code, 0, dr.out);
    assert.ok(await ping(c1, '10.231.9.1'), 'the containers reach the host at it, their default gateway');
  });

  test('network connect --driver-opt ledgernet.mac=…: the container\'s interface has that MAC and is reached at it; a MAC taken and an unknown ledgernet.* option are refused by name, nothing left', async () => {
    const n1 = await createNetwork('10.231.8.0/24');
    const n2 = await createNetwork('10.231.6.0/24');
    const c1 = await runContainer(n1);
    const c2 = await runContainer(n2);
    const mac = '02:00:00:31:08:01';
    const r = await docker(['network', 'connect', '--driver-opt', `ledgernet.mac=${mac}`, n2, c1]);
    assert.equal(r.exitCode, 0, `${r.stderr}\n${daemon.logs().slice(-2000)}`);
    assert.equal((await docker(['exec', c1, 'cat', '/sys/class/net/eth1/address'], { check: true })).stdout.trim(), mac);
    assert.equal((await docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${n2}").MacAddress}}`, c1], { check: true })).stdout.trim(), mac);
    const ip1 = await containerIp(c1, n2);
    assert.ok(await ping(c2, ip1), 'reached on the connected network');
    assert.match((await docker(['exec', c2, 'ip', 'neigh', 'show', ip1], { check: true })).stdout, new RegExp(`lladdr ${mac}`), 'at that MAC');
    const c3 = await runContainer(n1);
    const taken = await docker(['network', 'connect', '--driver-opt', `ledgernet.mac=${mac}`, n2, c3]);
    assert.notEqual(taken.exitCode, 0);
    assert.match(taken.stderr, /ledgernet\.mac=02:00:00:31:08:01 is already the MAC address of endpoint [0-9a-f]{12} on network [0-9a-f]{12}; give another/);
    const unknown = await docker(['network', 'connect', '--driver-opt', 'ledgernet.macaddress=02:00:00:31:08:02', n2, c3]);
    assert.notEqual(unknown.exitCode, 0);
    assert.match(unknown.stderr, /endpoint option ledgernet\.macaddress is not one ledgernet takes/);
    // Docker 20.10 keeps a failed connect's network in the container's settings, with no endpoint
    // (its bridge driver too); the container has no interface on it.
    const ep3 = (await docker(['inspect', '-f', `{{with index .NetworkSettings.Networks "${n2}"}}{{.EndpointID}}{{end}}`, c3], { check: true })).stdout.trim();
    assert.equal(ep3, '', 'c3 has no endpoint on the network');
    assert.doesNotMatch((await docker(['exec', c3, 'cat', '/proc/net/dev'], { check: true })).stdout, /eth1:/, 'c3 has no second interface');
    const st = JSON.parse((await ledgernetCli(['status', '--json', '--state-dir', daemon.stateDir])).stdout) as { endpoints: unknown[] };
    assert.equal(st.endpoints.length, 4, 'c1 twice, c2, c3: nothing of the refused connects');
    assert.equal((await dryRun()).code, 0);
  });

  test('a second daemon on the same state dir is refused with a clear message', async () => {
    const r = await ledgernetCli(['serve', '--state-dir', daemon.stateDir, '--socket', '/run/ledgernet-test-second.sock']);
    assert.equal(r.exitCode, 1);
    assert.match(r.stderr, /another ledgernet process \(pid \d+\) is using the state directory/);
  });
});

describe('bad requests to the plugin socket', () => {
  const NET = 'f'.repeat(64);
  const EP = 'e'.repeat(64);

  async function logLength(): Promise<number> {
    const r = await ledgernetCli(['events', '--json', '--state-dir', daemon.stateDir]);
    return r.stdout.trim() === '' ? 0 : r.stdout.trim().split('\n').length;
  }

  test('the socket is a 0660 unix socket', async () => {
    const st = await stat(daemon.socket);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o660);
  });

  test('malformed JSON, an empty body and an unknown network get a clear Err and change nothing', async () => {
    const before = await logLength();
    const linksBefore = (await links()).map((l) => l.ifname).sort();

    const bad = await pluginCall('NetworkDriver.CreateNetwork', '{"NetworkID": "abc", ');
    assert.equal(bad.status, 400);
    assert.match((bad.json as { Err: string }).Err, /not valid JSON/);

    const empty = await pluginCall('NetworkDriver.CreateEndpoint', undefined);
    assert.equal(empty.status, 400);
    assert.match((empty.json as { Err: string }).Err, /request body is empty/);

    const unknown = await pluginCall('NetworkDriver.CreateEndpoint', {
      NetworkID: NET,
      EndpointID: EP,
      Interface: { Address: '10.231.11.2/24', AddressIPv6: '', MacAddress: '' },
      Options: {},
    });
    assert.equal(unknown.status, 500);
    assert.match((unknown.json as { Err: string }).Err, new RegExp(`network ${NET.slice(0, 12)} is not known to ledgernet`));

    const badOpt = await pluginCall('NetworkDriver.CreateNetwork', {
      NetworkID: NET,
      Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': { 'ledgernet.bogus': '1' } },
      IPv4Data: [{ AddressSpace: 'LocalDefault', Gateway: '10.231.11.1/24', Pool: '10.231.11.0/24' }],
      IPv6Data: [],
    });
    assert.equal(badOpt.status, 500);
    assert.match((badOpt.json as { Err: string }).Err, /unknown option ledgernet\.bogus/);

    assert.equal(await logLength(), before, 'no event was appended');
    assert.deepEqual((await links()).map((l) => l.ifname).sort(), linksBefore, 'no link was created');
  });

  test('docker network create with a bad option fails with the message and creates nothing', async () => {
    const name = track.network(uniqueName('ln'));
    const r = await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.12.0/24', '-o', 'ledgernet.mtu=9', name]);
    assert.notEqual(r.exitCode, 0);
    assert.match(r.stderr, /ledgernet\.mtu=9 is invalid/);
    assert.equal((await docker(['network', 'inspect', name])).exitCode, 1, 'docker did not keep the network');
    await assertNoLeaks();
  });
});
