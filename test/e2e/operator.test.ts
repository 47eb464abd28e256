// Operator experience with the real dockerd: Prometheus metrics after a real scenario, status
// exit codes, a graceful SIGTERM that leaves the kernel as it is, and Docker's names for networks
// and containers in the log, `status` and `events`.
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { createServer } from 'node:net';
import { after, afterEach, describe, test } from 'node:test';
import { TEST_IMAGE, cleanupAll, containerIp, docker, ping, track, uniqueName, waitFor } from '../helpers/docker.ts';
import { ledgernetCli, loggedEvents as eventsOf, pluginCall, startDaemon, stopAllDaemons } from '../helpers/daemon.ts';
import { waitNoLeaks } from '../helpers/leaks.ts';
import { createOutside, type Outside } from '../helpers/outside.ts';

afterEach(async () => {
  // Each test starts its own daemon: a failed test must not leave its daemon to the next one.
  await cleanupAll();
  await stopAllDaemons();
});
after(async () => {
  await cleanupAll();
  await stopAllDaemons();
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Waits for the daemon's log to match `re` (a line written just before a metric moved may reach the pipe a moment after). */
function logged(daemon: { logs(): string }, re: RegExp, timeoutMs = 5_000): Promise<true> {
  return waitFor(() => re.test(daemon.logs()), { what: `the daemon to log ${String(re)}`, timeoutMs });
}

function sample(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name}{`) === false && l.startsWith(`${name} `)));
  return line ? Number(line.split(' ').at(-1)) : Number.NaN;
}

interface StatusJson {
  networks: { networkId: string; name: string | null }[];
  endpoints: { endpointId: string; networkId: string; container: { id: string; name: string } | null }[];
}

describe('operator experience', () => {
  test('metrics scraped after a real scenario show non-zero counts', async () => {
    const port = await freePort();
    const daemon = await startDaemon({ extraArgs: ['--reconcile-interval', '1', '--metrics', `127.0.0.1:${port}`] });
    const net = track.network(uniqueName('ln'));
    assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.20.0/24', net])).exitCode, 0);
    const c1 = track.container(uniqueName('c'));
    const c2 = track.container(uniqueName('c'));
    for (const c of [c1, c2]) assert.equal((await docker(['run', '-d', '--name', c, '--network', net, TEST_IMAGE, 'sleep', '300'])).exitCode, 0);
    assert.ok(await ping(c1, await containerIp(c2, net)));
    // drift nobody asked for: the loop repairs it and counts it
    await execa('iptables', ['-D', 'FORWARD', '-m', 'comment', '--comment', 'ledgernet:hook', '-j', 'LEDGERNET-FORWARD']);
    const scrape = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const text = await waitFor(async () => {
      const t = await scrape();
      // (not any drift kind: another may come first, and the hook's repair would be missed)
      return sample(t, 'ledgernet_drift_repaired_total', '{kind="hook.add"}') >= 1 ? t : null;
    }, { what: 'ledgernet_drift_repaired_total{kind="hook.add"} >= 1', timeoutMs: 10_000 });
    // Docker's own changes (its containers' links, its rules) are not drift: only the hook deleted above.
    const drifted = text.split('\n').filter((l) => l.startsWith('ledgernet_drift_repaired_total{'));
    assert.deepEqual(drifted, ['ledgernet_drift_repaired_total{kind="hook.add"} 1'], drifted.join('\n'));

    assert.ok(sample(text, 'ledgernet_request_duration_seconds_count', '{method="NetworkDriver.CreateNetwork",outcome="ok"}') >= 1, text);
    assert.ok(sample(text, 'ledgernet_request_duration_seconds_count', '{method="NetworkDriver.Join",outcome="ok"}') >= 2);
    assert.ok(sample(text, 'ledgernet_reconcile_pass_duration_seconds_count') > 0);
    assert.ok(sample(text, 'ledgernet_reconcile_actions_applied_total', '{kind="veth.create"}') >= 2);
    assert.ok(sample(text, 'ledgernet_log_fsync_duration_seconds_count') > 0);
    assert.ok(sample(text, 'ledgernet_log_size_bytes') > 0);
    assert.ok(sample(text, 'ledgernet_log_last_seq') > 0);
    assert.equal(sample(text, 'ledgernet_nats_backlog_events'), 0);
    for (const line of text.split('\n')) {
      if (line && !line.startsWith('#')) assert.match(line, /^ledgernet_/, `every metric is prefixed: ${line}`);
    }

    const status = await ledgernetCli(['status', '--state-dir', daemon.stateDir]);
    assert.equal(status.exitCode, 0, status.stderr);
    // The supervisor (the one to stop: it holds the socket) and the worker behind it.
    assert.match(status.stdout, new RegExp(`^daemon: running \\(supervisor pid ${daemon.proc.pid}, worker pid ${daemon.workerPid()}\\)$`, 'm'));
    assert.match(status.stdout, /converged/);
    // Docker's API as the daemon reaches it, and the name Docker knows it by (the socket's).
    assert.match(status.stdout, /^docker: API \/var\/run\/docker\.sock answering; driver name ledgernet \(the plugin socket\)$/m);

    await cleanupAll();
    await daemon.stop();
    await waitNoLeaks();
  });

  test('icc=false on a host whose bridges are not filtered: turned on at creation as Docker does (and the bridge takes no router advertisement); turned off again, status, the dry-run, the log and the metric name it, and its fix closes it', async () => {
    const port = await freePort();
    const KEY = 'net.bridge.bridge-nf-call-iptables';
    const found = (await execa('sysctl', ['-n', KEY])).stdout.trim();
    const setTo = (v: string) => execa('sysctl', ['-q', '-w', `${KEY}=${v}`]);
    // As a host tuned for VMs has it.
    await setTo('0');
    try {
      const daemon = await startDaemon({ extraArgs: ['--reconcile-interval', '1', '--metrics', `127.0.0.1:${port}`] });
      const net = track.network(uniqueName('ln'));
      assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.29.0/24', '-o', 'com.docker.network.bridge.enable_icc=false', net])).exitCode, 0);
      assert.equal((await execa('sysctl', ['-n', KEY])).stdout.trim(), '1', 'set to 1 when the icc=false network was made');
      assert.match(daemon.logs(), new RegExp(`turned ${KEY.replaceAll('.', '\\.')} on \\(it was 0\\) for network `));
      const bridge = `lnb-${(await docker(['network', 'inspect', '-f', '{{.Id}}', net])).stdout.trim().slice(0, 11)}`;
      assert.equal((await execa('sysctl', ['-n', `net.ipv6.conf.${bridge}.accept_ra`])).stdout, '0', 'the bridge takes no router advertisement from its containers (CVE-2020-13401)');
      const [c1, c2] = [track.container(uniqueName('c')), track.container(uniqueName('c'))];
      for (const c of [c1, c2]) assert.equal((await docker(['run', '-d', '--name', c, '--network', net, TEST_IMAGE, 'sleep', '300'])).exitCode, 0);
      const ip2 = await containerIp(c2, net);
      assert.equal(await ping(c1, ip2, 1), false, 'icc=false enforced');

      await setTo('0');
      assert.ok(await ping(c1, ip2), 'bridge filtering off: the containers reach each other');
      const scrape = async () => sample(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), 'ledgernet_icc_unenforced_networks');
      await waitFor(async () => (await scrape()) === 1, { what: 'ledgernet_icc_unenforced_networks 1', timeoutMs: 10_000 });
      await logged(daemon, new RegExp(`icc: containers of ${net} \\(icc=false\\) reach each other`));
      const status = await ledgernetCli(['status', '--state-dir', daemon.stateDir]);
      assert.equal(status.exitCode, 0, status.stderr);
      const fix = /^icc: containers of .*Turn it on: (sysctl -w \S+=1), and keep it/m.exec(status.stdout)?.[1] ?? '';
      assert.equal(fix, `sysctl -w ${KEY}=1`, status.stdout);
      const dry = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', daemon.stateDir]);
      assert.equal(dry.exitCode, 0, 'not a change the reconciler makes: nothing pending');
      assert.match(dry.stderr, new RegExp(`^ledgernet: warning: containers of ${net} \\(icc=false\\) reach each other`, 'm'));
      const [cmd, ...args] = fix.split(' ');
      await execa(cmd ?? '', ['-q', ...args]);
      assert.equal(await ping(c1, ip2, 1), false, 'the fix as given closes it again');
      await waitFor(async () => (await scrape()) === 0, { what: 'ledgernet_icc_unenforced_networks 0', timeoutMs: 10_000 });
      await logged(daemon, /icc: icc=false is enforced again/);
      await cleanupAll();
      await daemon.stop();
      await waitNoLeaks();
    } finally {
      await setTo(found);
    }
  });

  test('IPv6 forwarding off (net.ipv6.conf.all) under an --ipv6 network: status, the dry-run, the log and the metric name it, and its fix brings the outside back over IPv6', async () => {
    const port = await freePort();
    await withIpv6ForwardingOff(async (outside) => {
      const daemon = await startDaemon({ extraArgs: ['--reconcile-interval', '1', '--metrics', `127.0.0.1:${port}`] });
      const net = track.network(uniqueName('ln'));
      assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--ipv6', '--subnet', '10.231.28.0/24', '--subnet', 'fd00:231:28::/64', net])).exitCode, 0);
      const c1 = track.container(uniqueName('c'));
      assert.equal((await docker(['run', '-d', '--name', c1, '--network', net, TEST_IMAGE, 'sleep', '300'])).exitCode, 0);
      assert.ok(await ping(c1, outside.ip), 'IPv4 reaches the outside');
      assert.equal(await ping(c1, outside.ip6, 1), false, 'IPv6 forwarding off: cut off over IPv6');
      const scrape = async () => sample(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), 'ledgernet_ipv6_forwarding_off');
      await waitFor(async () => (await scrape()) === 1, { what: 'ledgernet_ipv6_forwarding_off 1', timeoutMs: 10_000 });
      await logged(daemon, new RegExp(`forwarding: IPv6 forwarding is off \\(net\\.ipv6\\.conf\\.all\\.forwarding = 0\\): what containers of ${net} send over IPv6`));
      const status = await ledgernetCli(['status', '--state-dir', daemon.stateDir]);
      assert.equal(status.exitCode, 0, status.stderr);
      const fix = /^forwarding: IPv6 forwarding is off .*Turn it on: (sysctl -w [^,]*?), and keep it/m.exec(status.stdout)?.[1] ?? '';
      assert.match(fix, /^sysctl -w net\.ipv6\.conf\.all\.forwarding=1 /, status.stdout);
      assert.equal((JSON.parse((await ledgernetCli(['status', '--json', '--state-dir', daemon.stateDir])).stdout) as { forwarding: { ipv6Off: boolean } }).forwarding.ipv6Off, true);
      const dry = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', daemon.stateDir]);
      assert.equal(dry.exitCode, 0, 'not a change ledgernet makes: nothing pending');
      assert.match(dry.stderr, /^ledgernet: warning: IPv6 forwarding is off /m);
      // The fix, run as status gives it.
      const [cmd, ...args] = fix.split(' ');
      await execa(cmd ?? '', ['-q', ...args]);
      assert.ok(await ping(c1, outside.ip6), 'the fix brings the outside back over IPv6');
      await waitFor(async () => (await scrape()) === 0, { what: 'ledgernet_ipv6_forwarding_off 0', timeoutMs: 10_000 });
      await logged(daemon, /forwarding: IPv6 forwarding is on again/);
      await cleanupAll();
      await daemon.stop();
      await waitNoLeaks();
    });
  });

  test('serve --ipv6-forwarding: an --ipv6 network turns IPv6 forwarding on as Docker does; turned off later, the dry-run shows it and a pass puts it back', async () => {
    const read = async (k: string) => (await readFile(`/proc/sys/net/ipv6/conf/${k}/forwarding`, 'utf8')).trim();
    await withIpv6ForwardingOff(async (outside) => {
      // No repair timer: what turns it on at creation is the CreateNetwork itself, and the dry-run
      // below sees it off (a timer pass could put it back first on a slow machine).
      const daemon = await startDaemon({ extraArgs: ['--ipv6-forwarding', '--reconcile-interval', '0'] });
      const net = track.network(uniqueName('ln'));
      assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--ipv6', '--subnet', '10.231.29.0/24', '--subnet', 'fd00:231:29::/64', net])).exitCode, 0);
      assert.deepEqual([await read('all'), await read('default')], ['1', '1'], 'on once the network is created');
      assert.match(daemon.logs(), /turned net\.ipv6\.conf\.default\.forwarding and net\.ipv6\.conf\.all\.forwarding on \(it was 0\) for network [0-9a-f]{12} \(serve --ipv6-forwarding\)/);
      const c1 = track.container(uniqueName('c'));
      assert.equal((await docker(['run', '-d', '--name', c1, '--network', net, TEST_IMAGE, 'sleep', '300'])).exitCode, 0);
      assert.ok(await ping(c1, outside.ip6), 'the container reaches the outside over IPv6');
      // Turned off by hand (a reload of /etc/sysctl.d; writing `all` sets `default` too): the dry-run plans it back, a pass does it.
      await execa('sysctl', ['-q', '-w', 'net.ipv6.conf.all.forwarding=0']);
      assert.equal(await ping(c1, outside.ip6, 1), false, 'off: cut off over IPv6');
      const dry = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', daemon.stateDir]);
      assert.equal(dry.exitCode, 2, `a change ledgernet makes: pending\n${dry.stdout}`);
      assert.match(dry.stdout, new RegExp(`^  ~ sysctl\\.ipv6_forwarding net\\.ipv6\\.conf\\.all\\.forwarding \\(drifted: on expected \\(serve --ipv6-forwarding: ${net} reach beyond the host over IPv6\\), found net\\.ipv6\\.conf\\.default\\.forwarding = 0, net\\.ipv6\\.conf\\.all\\.forwarding = 0\\)$`, 'm'));
      const pass = await ledgernetCli(['reconcile', '--state-dir', daemon.stateDir]);
      assert.equal(pass.exitCode, 0, pass.stderr);
      assert.match(pass.stdout, /^applied sysctl\.ipv6_forwarding net\.ipv6\.conf\.all\.forwarding /m);
      assert.equal(await read('all'), '1');
      assert.ok(await ping(c1, outside.ip6), 'back over IPv6');
      assert.equal((await ledgernetCli(['reconcile', '--dry-run', '--state-dir', daemon.stateDir])).exitCode, 0, 'nothing pending');
      await cleanupAll();
      await daemon.stop();
      await waitNoLeaks();
    });
  });

  test("IPv4 forwarding turned off on a network's bridge: status, the daemon's log and the metric name it and its fix, which brings the outside back", async () => {
    const port = await freePort();
    const outside = await createOutside('10.231.251');
    try {
      const daemon = await startDaemon({ extraArgs: ['--reconcile-interval', '1', '--metrics', `127.0.0.1:${port}`] });
      const net = track.network(uniqueName('ln'));
      assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.27.0/24', net])).exitCode, 0);
      const c1 = track.container(uniqueName('c'));
      assert.equal((await docker(['run', '-d', '--name', c1, '--network', net, TEST_IMAGE, 'sleep', '300'])).exitCode, 0);
      assert.ok(await ping(c1, outside.ip), 'forwarding on: the container reaches the outside');
      const bridge = (JSON.parse((await ledgernetCli(['status', '--json', '--state-dir', daemon.stateDir])).stdout) as { networks: { name: string; bridge: string }[] }).networks.find((n) => n.name === net)?.bridge ?? '';
      assert.match(bridge, /^lnb-/);
      const key = `net.ipv4.conf.${bridge}.forwarding`;
      await execa('sysctl', ['-q', '-w', `${key}=0`]);
      try {
        assert.equal(await ping(c1, outside.ip, 1), false, 'cut off');
        const scrape = async () => sample(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text(), 'ledgernet_ipv4_forwarding_off_links');
        await waitFor(async () => (await scrape()) === 1, { what: 'ledgernet_ipv4_forwarding_off_links 1', timeoutMs: 10_000 });
        await logged(daemon, new RegExp(`forwarding: IPv4 forwarding is off on ${bridge} .*what containers of ${net} send goes no further than the host`));
        const status = await ledgernetCli(['status', '--state-dir', daemon.stateDir]);
        assert.equal(status.exitCode, 0, status.stderr);
        const line = new RegExp(`^forwarding: IPv4 forwarding is off on ${bridge} .*Turn it on: sysctl -w ${key.replaceAll('.', '\\.')}=1 `, 'm');
        assert.match(status.stdout, line);
        const dry = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', daemon.stateDir]);
        assert.equal(dry.exitCode, 0, 'not a change ledgernet makes: nothing pending');
        assert.match(dry.stderr, /^ledgernet: warning: IPv4 forwarding is off on /m);
      } finally {
        await execa('sysctl', ['-q', '-w', `${key}=1`]);
      }
      assert.ok(await ping(c1, outside.ip), 'the fix brings the outside back');
      const after = await ledgernetCli(['status', '--json', '--state-dir', daemon.stateDir]);
      assert.equal((JSON.parse(after.stdout) as { forwarding: unknown }).forwarding, null);
      await logged(daemon, /forwarding: IPv4 forwarding is on again/, 10_000);
      await cleanupAll();
      await daemon.stop();
      await waitNoLeaks();
    } finally {
      await outside.remove();
    }
  });

  test('SIGTERM: the daemon exits 0, removes its socket, leaves the kernel as it is; status then exits non-zero', async () => {
    const daemon = await startDaemon({ keepStateDir: true });
    const net = track.network(uniqueName('ln'));
    assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.21.0/24', net])).exitCode, 0);
    const id = (await docker(['network', 'inspect', '-f', '{{.Id}}', net], { check: true })).stdout.trim();
    daemon.proc.kill('SIGTERM');
    const exit = await daemon.waitExit(10_000);
    assert.equal(exit.code, 0, daemon.logs());
    assert.equal(existsSync(daemon.socket), false, 'the plugin socket is removed');
    const link = await execa('ip', ['link', 'show', `lnb-${id.slice(0, 11)}`], { reject: false });
    assert.equal(link.exitCode, 0, 'the bridge is left in place');

    const status = await ledgernetCli(['status', '--state-dir', daemon.stateDir]);
    assert.equal(status.exitCode, 1, 'status exits non-zero when the daemon cannot be reached');
    assert.match(status.stdout, /NOT REACHABLE/);

    // the next daemon on the same state dir takes over; then clean up through Docker
    const again = await startDaemon({ stateDir: daemon.stateDir, keepStateDir: false });
    const dr = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', again.stateDir]);
    assert.equal(dr.exitCode, 0, dr.stdout);
    await cleanupAll();
    await again.stop();
    await waitNoLeaks();
  });

  test('status with a stopped daemon (SIGSTOP: its socket still accepts) gives up within seconds, exit 1; so with a socket file left by kill -9', async () => {
    const daemon = await startDaemon({ keepStateDir: true });
    const pids = [daemon.proc.pid!, daemon.workerPid()].filter((p): p is number => p !== null);
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    let status;
    const t0 = Date.now();
    try {
      status = await ledgernetCli(['status', '--state-dir', daemon.stateDir]);
    } finally {
      for (const pid of pids) process.kill(pid, 'SIGCONT');
    }
    assert.ok(Date.now() - t0 < 20_000, `status took ${Date.now() - t0} ms`);
    assert.equal(status.exitCode, 1, status.stdout + status.stderr);
    assert.match(status.stdout, /daemon: NOT ANSWERING: the daemon on .*control\.sock does not answer within 5 s/);

    await daemon.kill9();
    assert.ok(existsSync(join(daemon.stateDir, 'control.sock')), 'kill -9 leaves the control socket file');
    const t1 = Date.now();
    const after9 = await ledgernetCli(['status', '--state-dir', daemon.stateDir]);
    assert.ok(Date.now() - t1 < 20_000);
    assert.equal(after9.exitCode, 1);
    assert.match(after9.stdout, /NOT REACHABLE/);
    await rm(daemon.stateDir, { recursive: true, force: true });
  });

  test('kernel change notices: a bridge deleted by hand is back at once, long before the timer', async () => {
    const daemon = await startDaemon({ extraArgs: ['--reconcile-interval', '3600'] });
    const net = track.network(uniqueName('ln'));
    assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.22.0/24', net])).exitCode, 0);
    const id = (await docker(['network', 'inspect', '-f', '{{.Id}}', net], { check: true })).stdout.trim();
    const bridge = `lnb-${id.slice(0, 11)}`;
    await execa('ip', ['link', 'del', 'dev', bridge]);
    await waitFor(async () => (await execa('ip', ['-j', 'addr', 'show', 'dev', bridge], { reject: false })).stdout.includes('10.231.22.1'), {
      what: `${bridge} to be recreated with its gateway address`,
      timeoutMs: 5_000,
    });
    await cleanupAll();
    await daemon.stop();
    await waitNoLeaks();
  });

  test('ledgernet reconcile applies once: through the running daemon, and alone when none runs', async () => {
    // No background repair: only `ledgernet reconcile` may fix the drift.
    const daemon = await startDaemon({ keepStateDir: true, extraArgs: ['--reconcile-interval', '0'] });
    const net = track.network(uniqueName('ln'));
    assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.23.0/24', net])).exitCode, 0);
    const hook = ['FORWARD', '-m', 'comment', '--comment', 'ledgernet:hook', '-j', 'LEDGERNET-FORWARD'];
    const dryRun = () => ledgernetCli(['reconcile', '--dry-run', '--state-dir', daemon.stateDir]);

    await execa('iptables', ['-D', ...hook]);
    assert.equal((await dryRun()).exitCode, 2, 'the drift is pending');
    const viaDaemon = await ledgernetCli(['reconcile', '--state-dir', daemon.stateDir]);
    assert.equal(viaDaemon.exitCode, 0, viaDaemon.stderr);
    assert.match(viaDaemon.stdout, /applied hook\.add filter\/FORWARD/);
    assert.equal((await dryRun()).exitCode, 0);

    // The daemon stops (the kernel stays); a reconcile without it takes the lock and repairs alone.
    daemon.proc.kill('SIGTERM');
    assert.equal((await daemon.waitExit(10_000)).code, 0);
    await execa('iptables', ['-D', ...hook]);
    const alone = await ledgernetCli(['reconcile', '--json', '--state-dir', daemon.stateDir]);
    assert.equal(alone.exitCode, 0, alone.stderr);
    assert.match((JSON.parse(alone.stdout) as { applied: string[] }).applied.join('\n'), /hook\.add filter\/FORWARD/);
    const events = await ledgernetCli(['events', '--json', '--state-dir', daemon.stateDir]);
    // Records are stored with sorted keys: compare fields, not their order in the line.
    const last = JSON.parse(events.stdout.trim().split('\n').at(-1) ?? '{}') as { type?: string; data?: { trigger?: string } };
    assert.deepEqual([last.type, last.data?.trigger], ['reconcile.applied', 'cli']);

    const again = await startDaemon({ stateDir: daemon.stateDir, keepStateDir: false });
    await cleanupAll();
    await again.stop();
    await waitNoLeaks();
  });

  test('ledgernet release forgets a network and a pool Docker never got (crash between fsync and answer)', async () => {
    // Not asking Docker: it would collect the ghost network by itself (restarts.test.ts).
    const daemon = await startDaemon({ env: { LEDGERNET_DOCKER_SOCKET: '' } });
    // A network and a pool the log holds but Docker does not: as if ledgernet died after the
    // fsync and before its answer reached Docker.
    const ghost = 'ab'.repeat(32);
    const created = await pluginCall('NetworkDriver.CreateNetwork', {
      NetworkID: ghost,
      Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': {} },
      IPv4Data: [{ AddressSpace: 'LocalDefault', Gateway: '10.231.24.1/24', Pool: '10.231.24.0/24' }],
      IPv6Data: [],
    });
    assert.equal(created.status, 200, created.text);
    const pool = await pluginCall('IpamDriver.RequestPool', { AddressSpace: 'ledgernet', Pool: '10.231.25.0/24', SubPool: '', Options: {}, V6: false });
    assert.equal(pool.status, 200, pool.text);

    const net = track.network(uniqueName('ln'));
    const refused = await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.24.0/24', net]);
    assert.notEqual(refused.exitCode, 0);
    assert.match(refused.stderr, /overlaps .* ledgernet network abababababab;.*ledgernet release abababababab/);

    // A reason the log cannot hold is refused by name before anything is recorded.
    const seqBefore = (await eventsOf(daemon.stateDir)).length;
    const badReason = await ledgernetCli(['release', ghost.slice(0, 12), '--reason', 'two\nlines', '--state-dir', daemon.stateDir]);
    assert.equal(badReason.exitCode, 1);
    assert.match(badReason.stderr, /--reason holds a control character/);
    assert.equal((await eventsOf(daemon.stateDir)).length, seqBefore, 'nothing recorded for a refused --reason');

    const reason = 'ticket NET-42: Docker never got this network';
    const r1 = await ledgernetCli(['release', ghost.slice(0, 12), '--reason', reason, '--state-dir', daemon.stateDir]);
    assert.equal(r1.exitCode, 0, r1.stderr);
    // Who did what: Docker's call made the network, the operator (uid and pid from the kernel,
    // the login name the command stated, the reason) removed it.
    const log = await eventsOf(daemon.stateDir);
    const made = log.find((e) => e.type === 'network.created' && e.data['networkId'] === ghost);
    assert.deepEqual(made?.cause, { by: 'docker', call: 'NetworkDriver.CreateNetwork' });
    const gone = log.find((e) => e.type === 'network.deleted' && e.data['networkId'] === ghost);
    const { pid, ...who } = (gone?.cause ?? {}) as { pid?: unknown };
    assert.deepEqual(who, { by: 'operator', command: 'release', uid: 0, user: process.env['SUDO_USER'] || userInfo().username, reason });
    assert.ok(typeof pid === 'number' && pid > 0, `the CLI's pid as the kernel gave it: ${String(pid)}`);
    const text = await ledgernetCli(['events', '--state-dir', daemon.stateDir]);
    assert.match(text.stdout, new RegExp(`network\\.deleted +abababababab  by operator ${String(who['user'])} \\(uid 0, pid ${String(pid)}\\) release: "${reason}"$`, 'm'));
    assert.match(r1.stdout, /recorded network\.deleted/);
    assert.match(r1.stdout, /applied +link\.delete lnb-ababababab/);
    assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.24.0/24', net])).exitCode, 0);

    const net2 = track.network(uniqueName('ln'));
    const refused2 = await docker(['network', 'create', '--driver', 'ledgernet', '--ipam-driver', 'ledgernet', '--subnet', '10.231.25.0/24', net2]);
    assert.notEqual(refused2.exitCode, 0);
    assert.match(refused2.stderr, /ledgernet release 10\.231\.25\.0\/24/);
    const r2 = await ledgernetCli(['release', '10.231.25.0/24', '--state-dir', daemon.stateDir]);
    assert.equal(r2.exitCode, 0, r2.stderr);
    assert.match(r2.stdout, /recorded pool\.released/);
    const released = (await eventsOf(daemon.stateDir)).findLast((e) => e.type === 'pool.released');
    assert.deepEqual([released?.cause?.['by'], released?.cause?.['command'], released?.cause?.['reason']], ['operator', 'release', undefined]);
    const requested = (await eventsOf(daemon.stateDir)).findLast((e) => e.type === 'network.created');
    assert.deepEqual(requested?.cause, { by: 'docker', call: 'NetworkDriver.CreateNetwork' }, 'docker network create');
    assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--ipam-driver', 'ledgernet', '--subnet', '10.231.25.0/24', net2])).exitCode, 0);

    const bad = await ledgernetCli(['release', 'cafecafecafe', '--state-dir', daemon.stateDir]);
    assert.equal(bad.exitCode, 1);
    assert.match(bad.stderr, /no ledgernet network id starts with cafecafecafe/);

    await cleanupAll();
    await daemon.stop();
    await waitNoLeaks();
  });

  test('ledgernet release refuses what Docker still holds, by name, and changes nothing', async () => {
    const daemon = await startDaemon();
    const net = track.network(uniqueName('ln'));
    assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--ipam-driver', 'ledgernet', '--subnet', '10.231.26.0/24', net])).exitCode, 0);
    const [c1, c2] = [track.container(uniqueName('c')), track.container(uniqueName('c'))];
    for (const c of [c1, c2]) assert.equal((await docker(['run', '-d', '--name', c, '--network', net, TEST_IMAGE, 'sleep', '300'])).exitCode, 0);
    const netId = (await docker(['network', 'inspect', '-f', '{{.Id}}', net])).stdout.trim();
    const epId = (await docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").EndpointID}}`, c1])).stdout.trim();
    const ip = await containerIp(c1, net);
    // The network and both endpoints named from Docker's API first (the daemon records that by itself).
    const named = async () => (await eventsOf(daemon.stateDir)).filter((e) => e.type === 'endpoint.named' || e.type === 'network.named').length === 3;
    await waitFor(named, { what: 'the network and both endpoints named' });
    const seqBefore = (await eventsOf(daemon.stateDir)).length;
    const cases: [string, RegExp][] = [
      [netId.slice(0, 12), new RegExp(`Docker still has network ${netId.slice(0, 12)} \\(${net}; attached: (${c1}, ${c2}|${c2}, ${c1})\\): remove it with \`docker network rm ${net}\``)],
      [epId.slice(0, 12), new RegExp(`Docker still holds endpoint ${epId.slice(0, 12)} for container ${c1} on network ${net}: \`docker network disconnect ${net} ${c1}\``)],
      ['10.231.26.0/24', new RegExp(`Docker's network ${net} still uses pool 10\\.231\\.26\\.0/24`)],
      [ip, new RegExp(`Docker still holds ${ip.replaceAll('.', '\\.')} in pool 10\\.231\\.26\\.0/24`)],
    ];
    for (const [target, why] of cases) {
      for (const dry of [[], ['--dry-run']]) {
        const r = await ledgernetCli(['release', ...dry, target, '--state-dir', daemon.stateDir]);
        assert.equal(r.exitCode, 1, `release ${dry.join(' ')} ${target}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, /not released, nothing recorded or changed: /);
        assert.match(r.stderr, why);
        assert.match(r.stderr, /--force releases it anyway \(LN_ERR_DOCKER_HOLDS\)/);
      }
    }
    const since = (await eventsOf(daemon.stateDir)).slice(seqBefore);
    assert.deepEqual(since.map((e) => `${e.type} ${JSON.stringify(e.cause)}`), [], 'nothing recorded');
    assert.ok(await ping(c2, ip), 'the containers still reach each other');
    // --force does not ask: the dry run shows the release it would make.
    const forced = await ledgernetCli(['release', '--dry-run', '--force', epId.slice(0, 12), '--state-dir', daemon.stateDir]);
    assert.equal(forced.exitCode, 2, forced.stderr);
    assert.match(forced.stdout, new RegExp(`^would record endpoint\\.deleted .*${epId.slice(0, 12)}`, 'm'));

    await cleanupAll();
    await daemon.stop();
    await waitNoLeaks();
  });

  test("Docker's names: a network and its container are named in the log, status and events; a rename is recorded", async () => {
    // A repair tick every 2 s: a rename (no plugin call) is read at the next one.
    const daemon = await startDaemon({ extraArgs: ['--reconcile-interval', '2'] });
    const net = track.network(uniqueName('names'));
    const create = await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.163.0/24', net]);
    assert.equal(create.exitCode, 0, create.stderr);
    const networkId = create.stdout.trim();
    const c = track.container(uniqueName('c'));
    assert.equal((await docker(['run', '-d', '--name', c, '--network', net, TEST_IMAGE, 'sleep', '300'])).exitCode, 0);
    const containerId = (await docker(['inspect', '-f', '{{.Id}}', c])).stdout.trim();
    const endpointId = (await docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${net}").EndpointID}}`, c])).stdout.trim();

    const status = async () => JSON.parse((await ledgernetCli(['status', '--json', '--state-dir', daemon.stateDir])).stdout) as StatusJson;
    const named = await waitFor(async () => {
      const s = await status();
      const n = s.networks.find((x) => x.networkId === networkId);
      const e = s.endpoints.find((x) => x.endpointId === endpointId);
      return n?.name && e?.container ? { n, e } : null;
    }, { what: 'the network and its container named in status', timeoutMs: 15_000 });
    assert.equal(named.n.name, net);
    assert.deepEqual(named.e.container, { id: containerId, name: c });

    const events = await eventsOf(daemon.stateDir);
    const networkNamed = events.filter((e) => e.type === 'network.named');
    assert.deepEqual(networkNamed.map((e) => [e.data, e.cause]), [[{ networkId, name: net }, { by: 'ledgernet', what: 'docker-sync' }]], 'named once, by docker-sync');
    assert.deepEqual(events.filter((e) => e.type === 'endpoint.named').map((e) => e.data), [{ networkId, endpointId, containerId, name: c }]);

    const text = (await ledgernetCli(['events', '--state-dir', daemon.stateDir])).stdout;
    assert.match(text, new RegExp(`network\\.created +${networkId.slice(0, 12)}\\(${net}\\)  10\\.231\\.163\\.0/24  by docker NetworkDriver\\.CreateNetwork`));
    assert.match(text, new RegExp(`endpoint\\.joined +${networkId.slice(0, 12)}\\(${net}\\)/${endpointId.slice(0, 12)}\\(${c}\\)  by docker NetworkDriver\\.Join`));
    // One network's history by the name users know it by: every line of it, none of another.
    const history = (await ledgernetCli(['events', '--network', net, '--json', '--state-dir', daemon.stateDir])).stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; data: { networkId?: string } });
    assert.ok(history.every((e) => e.data.networkId === networkId), 'only this network');
    for (const t of ['network.created', 'network.named', 'endpoint.created', 'endpoint.joined', 'endpoint.named']) assert.ok(history.some((e) => e.type === t), `its history holds ${t}`);
    const table = (await ledgernetCli(['status', '--state-dir', daemon.stateDir])).stdout;
    assert.match(table, new RegExp(`^${networkId.slice(0, 12)} +${net} +lnb-`, 'm'));
    assert.match(table, new RegExp(`^${endpointId.slice(0, 12)} +${networkId.slice(0, 12)} +${c} +lnv-`, 'm'));

    const renamed = `${c}-renamed`;
    assert.equal((await docker(['rename', c, renamed])).exitCode, 0);
    track.container(renamed);
    await waitFor(async () => ((await status()).endpoints.find((x) => x.endpointId === endpointId)?.container?.name === renamed ? true : null), {
      what: 'the rename recorded',
      timeoutMs: 15_000,
    });
    const again = (await eventsOf(daemon.stateDir)).filter((e) => e.type === 'endpoint.named').map((e) => e.data['name']);
    assert.deepEqual(again, [c, renamed]);
    assert.equal((await eventsOf(daemon.stateDir)).filter((e) => e.type === 'network.named').length, 1, 'the network is not named twice');
  });

  test("a container that lives less than a second is named from Docker's event stream; containers started together are never given another's endpoint", async () => {
    const daemon = await startDaemon({ extraArgs: ['--reconcile-interval', '0'] });
    const net = track.network(uniqueName('brief'));
    assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.164.0/24', net])).exitCode, 0);
    // Each prints its address and exits; --cidfile gives its id.
    const brief = async (): Promise<{ id: string; name: string; ip: string }> => {
      const name = uniqueName('brief');
      const cidfile = join(daemon.stateDir, `${name}.cid`);
      const r = await docker(['run', '--rm', '--cidfile', cidfile, '--name', name, '--network', net, TEST_IMAGE, 'sh', '-c', 'ip -o -4 addr show eth0']);
      assert.equal(r.exitCode, 0, r.stderr);
      const ip = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(r.stdout)?.[1] ?? '';
      return { id: (await readFile(cidfile, 'utf8')).trim(), name, ip };
    };
    /** Each endpoint.named of these containers: the container it names, and the address its endpoint had. */
    const namedOf = async (ids: ReadonlySet<string>) => {
      const events = await eventsOf(daemon.stateDir);
      const address = new Map(events.filter((e) => e.type === 'endpoint.created').map((e) => [e.data['endpointId'], String(e.data['address']).split('/')[0]]));
      return events
        .filter((e) => e.type === 'endpoint.named' && ids.has(String(e.data['containerId'])))
        .map((e) => ({ containerId: String(e.data['containerId']), name: String(e.data['name']), ip: address.get(e.data['endpointId']), cause: e.cause }));
    };

    const one = await brief();
    const [named] = await waitFor(async () => {
      const n = await namedOf(new Set([one.id]));
      return n.length > 0 ? n : null;
    }, { what: 'the brief container named', timeoutMs: 10_000 });
    assert.deepEqual(named, { containerId: one.id, name: one.name, ip: one.ip, cause: { by: 'ledgernet', what: 'docker-sync' } });
    assert.equal((await docker(['inspect', one.id])).exitCode, 1, 'it was gone before the inspect path could read it');

    const together = await Promise.all(Array.from({ length: 6 }, () => brief()));
    await new Promise((r) => setTimeout(r, 2_000));
    const byId = new Map(together.map((c) => [c.id, c]));
    const names = await namedOf(new Set(byId.keys()));
    for (const n of names) {
      const c = byId.get(n.containerId);
      assert.deepEqual([n.name, n.ip], [c?.name, c?.ip], `the endpoint named for ${n.name} is its own (address ${c?.ip})`);
    }
    process.stderr.write(`brief containers started together: ${names.length} of ${together.length} named (by the inspect of each one still there; the others stay unnamed)\n`);
    // Those gone, the next ones, one after another, are each named again.
    const later = [await brief(), await brief()];
    const laterNamed = await waitFor(async () => {
      const n = await namedOf(new Set(later.map((c) => c.id)));
      return n.length === later.length ? n : null;
    }, { what: 'the containers after the burst named', timeoutMs: 10_000 });
    assert.deepEqual(laterNamed.map((n) => [n.name, n.ip]), later.map((c) => [c.name, c.ip]));

    // A rename is recorded from its event at once (no repair tick runs: --reconcile-interval 0).
    const c = track.container(uniqueName('kept'));
    assert.equal((await docker(['run', '-d', '--name', c, '--network', net, TEST_IMAGE, 'sleep', '300'])).exitCode, 0);
    const cid = (await docker(['inspect', '-f', '{{.Id}}', c])).stdout.trim();
    const lastName = async () => (await namedOf(new Set([cid]))).at(-1)?.name ?? null;
    await waitFor(async () => ((await lastName()) === c ? true : null), { what: 'the long-lived container named', timeoutMs: 10_000 });
    // Past the background inspect that its Join scheduled (a second after), which would read the new name too.
    await new Promise((r) => setTimeout(r, 2_000));
    const renamed = `${c}-renamed`;
    assert.equal((await docker(['rename', c, renamed])).exitCode, 0);
    track.container(renamed);
    await waitFor(async () => ((await lastName()) === renamed ? true : null), { what: 'the rename recorded from its event', timeoutMs: 5_000 });
  });
});

/**
 * Runs `fn` with the host's IPv6 forwarding off (`all` and `default`, as on a host without an IPv6
 * network of Docker's own bridge driver) and an outside namespace reachable over both families;
 * removes the namespace and puts both settings back as found.
 */
async function withIpv6ForwardingOff(fn: (outside: Outside) => Promise<void>): Promise<void> {
  const found = (await readFile('/proc/sys/net/ipv6/conf/all/forwarding', 'utf8')).trim();
  await execa('sysctl', ['-q', '-w', 'net.ipv6.conf.all.forwarding=0', 'net.ipv6.conf.default.forwarding=0']);
  const outside = await createOutside('10.231.251', 'fd00:231:251');
  try {
    await fn(outside);
  } finally {
    await outside.remove();
    // `all` sets every link and `default` too: put both back as found.
    await execa('sysctl', ['-q', '-w', `net.ipv6.conf.all.forwarding=${found}`, `net.ipv6.conf.default.forwarding=${found}`]);
  }
}
