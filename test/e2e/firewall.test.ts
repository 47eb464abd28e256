// The firewall and traffic options with the real dockerd and real traffic: isolation, --internal,
// icc=false, masquerade, published ports (outside, host, 127.0.0.1, hairpin, ranges, -P), the
// ingress allow-list, drift repair, switching backends, and Docker's/the operator's rules left
// byte for byte as they were. Every scenario runs once per firewall backend (`serve --firewall`;
// LEDGERNET_TEST_FIREWALLS=iptables runs one). "Outside" is a namespace made here
// (10.231.250.0/30); no traffic goes anywhere else.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { TEST_IMAGE, cleanupAll, containerEndpoint, containerIp, docker, ping, track, uniqueName, waitFor, waitServing } from '../helpers/docker.ts';
import { notOurs, rulesSave } from '../helpers/rules.ts';
import { ledgernetCli, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { assertNoLeaks, waitNoLeaks } from '../helpers/leaks.ts';
import { createOutside, type Outside } from '../helpers/outside.ts';
import { iptablesDrift, nftablesDrift } from '../helpers/firewall-drift.ts';
import { FIREWALLS } from '../helpers/backend-suite.ts';

let daemon: DaemonHandle;
let outside: Outside;
let rulesBefore: string;

const iptablesSave = () => rulesSave('iptables-save');
/** `nft list table inet ledgernet`, '' when there is none. */
const nftList = async () => (await execa('nft', ['list', 'table', 'inet', 'ledgernet'], { reject: false, stdin: 'ignore' })).stdout;

before(async () => {
  await assertNoLeaks();
  rulesBefore = await iptablesSave();
});

afterEach(async () => {
  await cleanupAll();
});

after(async () => {
  await cleanupAll();
  await stopAllDaemons();
  await outside?.remove();
});

async function createNetwork(subnet: string, ...extra: string[]): Promise<{ name: string; id: string; bridge: string }> {
  const name = track.network(uniqueName('lnfw'));
  const r = await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', subnet, ...extra, name]);
  assert.equal(r.exitCode, 0, `network create failed: ${r.stderr}\n${daemon.logs().slice(-2000)}`);
  const id = (await docker(['network', 'inspect', '-f', '{{.Id}}', name], { check: true })).stdout.trim();
  return { name, id, bridge: `lnb-${id.slice(0, 11)}` };
}

const SERVE = 'mkdir -p /www && echo ok >/www/index.html && httpd -p 80 -h /www && httpd -p 81 -h /www && httpd -p 82 -h /www && exec sleep 600';

/** A container serving "ok" over HTTP on ports 80, 81 and 82. */
async function runServer(network: string, ...extra: string[]): Promise<string> {
  const name = track.container(uniqueName('srv'));
  const r = await docker(['run', '-d', '--name', name, '--network', network, ...extra, TEST_IMAGE, 'sh', '-c', SERVE]);
  assert.equal(r.exitCode, 0, `docker run failed: ${r.stderr}\n${daemon.logs().slice(-2000)}`);
  await waitServing(name, 82);
  return name;
}

async function runClient(network: string, ...extra: string[]): Promise<string> {
  const name = track.container(uniqueName('cli'));
  const r = await docker(['run', '-d', '--name', name, '--network', network, ...extra, TEST_IMAGE, 'sleep', '600']);
  assert.equal(r.exitCode, 0, `docker run failed: ${r.stderr}\n${daemon.logs().slice(-2000)}`);
  return name;
}

/** `wget` from inside a container; busybox wget has no -T, so `timeout` bounds it. */
async function fetchFrom(container: string, url: string): Promise<boolean> {
  const r = await docker(['exec', container, 'timeout', '5', 'wget', '-q', '-O', '-', url], { timeoutMs: 15_000 });
  return r.exitCode === 0 && /ok/.test(r.stdout);
}

async function fetchFromHost(url: string): Promise<boolean> {
  const r = await execa('/bin/busybox', ['timeout', '5', '/bin/busybox', 'wget', '-q', '-O', '-', url], { reject: false, stdin: 'ignore' });
  return r.exitCode === 0 && /ok/.test(r.stdout);
}

/**
 * Sends N bytes to ip:port from the host and prints the seconds until the peer has acknowledged
 * every byte (the send queue, TIOCOUTQ, is empty): the time the data took through the shaper.
 * Not the peer's close: busybox nc half-closes at once when its stdin is empty.
 */
const SEND = `
import fcntl, socket, struct, sys, termios, time
ip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
deadline = time.time() + 10
while True:
    try:
        s = socket.create_connection((ip, port), timeout=2); break
    except OSError:
        if time.time() > deadline: raise
        time.sleep(0.1)
s.settimeout(60)
t0 = time.time()
chunk = b'x' * 65536
sent = 0
while sent < n:
    sent += s.send(chunk[: min(len(chunk), n - sent)])
while struct.unpack('i', fcntl.ioctl(s, termios.TIOCOUTQ, b'\\0' * 4))[0] > 0:
    if time.time() - t0 > 60: raise SystemExit('not acknowledged within 60 s')
    time.sleep(0.005)
print(time.time() - t0)
s.close()
`;

/** Accepts one connection on ip:port, reads to EOF, prints the seconds from the first byte and the byte count. */
const RECV = `
import socket, sys, time
ip, port = sys.argv[1], int(sys.argv[2])
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((ip, port)); srv.listen(1); srv.settimeout(30)
c, _ = srv.accept(); c.settimeout(60)
n = 0; t0 = None
while True:
    b = c.recv(65536)
    if not b: break
    if t0 is None: t0 = time.time()
    n += len(b)
c.close()
print(time.time() - t0, n)
`;

async function dryRun(): Promise<{ code: number; out: string }> {
  const r = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', daemon.stateDir]);
  return { code: r.exitCode, out: r.stdout + r.stderr };
}

async function converged(): Promise<void> {
  await waitFor(async () => (await dryRun()).code === 0, { what: 'the kernel to converge', timeoutMs: 10_000 });
}

for (const fw of FIREWALLS) describe(`firewall with the real dockerd (--firewall ${fw})`, () => {
  // Each backend gets its own outside: the routes a test adds there would otherwise carry over.
  before(async () => {
    outside = await createOutside();
    daemon = await startDaemon({ extraArgs: ['--reconcile-interval', '1', '--firewall', fw] });
  });
  after(async () => {
    await cleanupAll();
    await stopAllDaemons();
    await outside?.remove();
  });

  test('isolation: ledgernet networks and Docker bridge networks do not reach each other, both ways', async () => {
    const a = await createNetwork('10.231.101.0/24');
    const b = await createNetwork('10.231.102.0/24');
    const d = track.network(uniqueName('dbr'));
    assert.equal((await docker(['network', 'create', '--driver', 'bridge', '--subnet', '10.231.103.0/24', d])).exitCode, 0);
    const a1 = await runClient(a.name);
    const a2 = await runClient(a.name);
    const b1 = await runClient(b.name);
    const d1 = await runClient(d);
    const [ipA2, ipB1, ipD1, ipA1] = await Promise.all([containerIp(a2, a.name), containerIp(b1, b.name), containerIp(d1, d), containerIp(a1, a.name)]);
    assert.ok(await ping(a1, ipA2), 'same network: reachable');
    assert.ok(await ping(a1, '10.231.101.1'), 'the gateway is reachable');
    assert.equal(await ping(a1, ipB1, 1), false, 'ledgernet → other ledgernet network: blocked');
    assert.equal(await ping(b1, ipA1, 1), false, 'and back: blocked');
    assert.equal(await ping(a1, ipD1, 1), false, 'ledgernet → Docker bridge network: blocked');
    assert.equal(await ping(d1, ipA1, 1), false, 'Docker bridge network → ledgernet: blocked');
    assert.ok(await ping(a1, outside.ip), 'but the outside is reachable');
    const dr = await dryRun();
    assert.equal(dr.code, 0, dr.out);
    if (fw === 'nftables') assert.match(daemon.logs(), /nftables commands run through libnftables, in-process/, 'nft commands go to the library, no process each');
    else assert.doesNotMatch(daemon.logs(), /libnftables/, 'the iptables backend never loads the nftables library (its thread costs ~13 MB)');
  });

  test('--internal: nothing in or out, no masquerade, no gateway; host and containers still talk over the bridge', async () => {
    const n = await createNetwork('10.231.104.0/24', '--internal');
    const c1 = await runServer(n.name);
    const c2 = await runClient(n.name);
    const ip1 = await containerIp(c1, n.name);
    assert.ok(await fetchFrom(c2, `http://${ip1}/`), 'inside the network: reachable');
    assert.equal(await ping(c2, outside.ip, 1), false, 'to the outside: blocked');
    await outside.addRoute('10.231.104.0/24');
    assert.equal(await outside.ping(ip1), false, 'from the outside: blocked');
    assert.ok(await fetchFromHost(`http://${ip1}/`), 'the host reaches a container through the bridge');
    assert.ok(await ping(c2, '10.231.104.1'), 'a container reaches the host at the bridge address');
    const route = await docker(['exec', c2, 'ip', 'route'], { check: true });
    assert.doesNotMatch(route.stdout, /default/, 'Join gave no gateway');
    if (fw === 'iptables') assert.doesNotMatch(await iptablesSave(), new RegExp(`-s 10\\.231\\.104\\.0/24 .*MASQUERADE`), 'no masquerade for an internal network');
    else assert.doesNotMatch(await nftList(), /10\.231\.104\.0\/24 : jump/, 'no masquerade for an internal network');
  });

  test('icc=false: containers of a network cannot reach each other, but reach the gateway and the outside', async () => {
    const n = await createNetwork('10.231.105.0/24', '-o', 'ledgernet.icc=false');
    const on = await createNetwork('10.231.106.0/24', '-o', 'com.docker.network.bridge.enable_icc=true');
    const c1 = await runClient(n.name);
    const c2 = await runServer(n.name);
    const ip2 = await containerIp(c2, n.name);
    assert.equal(await ping(c1, ip2, 1), false, 'icc=false: blocked');
    assert.equal(await fetchFrom(c1, `http://${ip2}/`), false, 'icc=false: tcp blocked too');
    assert.ok(await ping(c1, '10.231.105.1'), 'the gateway is reachable');
    assert.ok(await ping(c1, outside.ip), 'the outside is reachable');
    const d1 = await runClient(on.name);
    const d2 = await runServer(on.name);
    assert.ok(await fetchFrom(d1, `http://${await containerIp(d2, on.name)}/`), 'enable_icc=true: reachable');
  });

  test('a custom bridge name gets the same protection: replies come back, isolation holds both ways', async () => {
    const custom = await createNetwork('10.231.117.0/24', '-o', 'ledgernet.bridge=lnfwcustom0');
    const other = await createNetwork('10.231.118.0/24');
    const c1 = await runClient(custom.name);
    const o1 = await runClient(other.name);
    const [ipC1, ipO1] = await Promise.all([containerIp(c1, custom.name), containerIp(o1, other.name)]);
    assert.ok(await ping(c1, outside.ip), 'egress from the custom bridge is answered (replies are accepted)');
    assert.equal(await ping(c1, ipO1, 1), false, 'custom bridge → other ledgernet network: blocked');
    assert.equal(await ping(o1, ipC1, 1), false, 'other ledgernet network → custom bridge: blocked');
    if (fw === 'iptables') assert.match(await iptablesSave(), /-A LEDGERNET-FORWARD -o lnfwcustom0 -m conntrack --ctstate RELATED,ESTABLISHED .*-j ACCEPT/);
    else assert.match(await nftList(), /set bridges \{[^}]*"lnfwcustom0"/);
  });

  test('masquerade: on by default, off with ledgernet.masquerade=false', async () => {
    const on = await createNetwork('10.231.107.0/24');
    const off = await createNetwork('10.231.108.0/24', '-o', 'ledgernet.masquerade=false');
    const c1 = await runClient(on.name);
    const c2 = await runClient(off.name);
    // The outside has no route to the container subnets: only masqueraded traffic gets answers.
    assert.ok(await ping(c1, outside.ip), 'masqueraded: the outside answers');
    assert.equal(await ping(c2, outside.ip, 1), false, 'not masqueraded: no way back');
    await outside.addRoute('10.231.108.0/24');
    assert.ok(await ping(c2, outside.ip), 'not masqueraded, with a route back: answers');
    if (fw === 'iptables') {
      const save = await iptablesSave();
      assert.match(save, /-A LEDGERNET-POSTROUTING-\S -s 10\.231\.107\.0\/24 ! -o lnb-\S+ -m comment --comment "ledgernet:network:\S+:masquerade" -j MASQUERADE/);
      assert.doesNotMatch(save, /-s 10\.231\.108\.0\/24 ! -o/);
    } else {
      const list = await nftList();
      assert.match(list, /10\.231\.107\.0\/24 : jump net-\S+-masq/);
      assert.doesNotMatch(list, /10\.231\.108\.0\/24 : jump net-\S+-masq/);
    }
  });

  test('published ports: outside, host, 127.0.0.1, hairpin, other networks, ranges in one rule, -P; gone on rm', async () => {
    const n = await createNetwork('10.231.109.0/24');
    const other = await createNetwork('10.231.110.0/24');
    const srv = await runServer(n.name, '-p', '18080:80', '-p', '127.0.0.1:18443:81', '-p', '18090-18092:80-82');
    const auto = await runServer(n.name, '--expose', '80', '-P');
    const peer = await runClient(n.name);
    const stranger = await runClient(other.name);
    const host = outside.hostIp;
    assert.ok(await outside.fetch(`http://${host}:18080/`), 'from outside the host');
    assert.ok(await fetchFromHost(`http://${host}:18080/`), 'from the host, at its address');
    assert.ok(await fetchFromHost('http://127.0.0.1:18080/'), 'from the host, on 127.0.0.1');
    assert.ok(await fetchFromHost('http://127.0.0.1:18443/'), 'published on 127.0.0.1: from the host');
    assert.equal(await outside.fetch(`http://${host}:18443/`), false, 'published on 127.0.0.1: not from outside');
    assert.ok(await fetchFrom(peer, `http://${host}:18080/`), 'hairpin: a container of the same network');
    assert.ok(await fetchFrom(stranger, `http://${host}:18080/`), 'a container of another network, at the host address');
    for (const port of [18090, 18091, 18092]) assert.ok(await outside.fetch(`http://${host}:${port}/`), `range port ${port}`);
    assert.equal(await outside.fetch(`http://${host}:18093/`), false, 'outside the range: nothing');

    const ip = await containerIp(srv, n.name);
    if (fw === 'iptables') {
      const save = await iptablesSave();
      const rangeRules = save.split('\n').filter((l) => l.includes('--dport 18090'));
      assert.deepEqual(rangeRules.length, 1, `one rule for the range:\n${save}`);
      assert.match(rangeRules[0] ?? '', new RegExp(`--dport 18090:18092 .* -j DNAT --to-destination ${ip.replaceAll('.', '\\.')}:80-82/18090$`));
    } else {
      // A range is one map element per port, in the address map and the port map.
      const list = await nftList();
      for (const [host, port] of [[18090, 80], [18091, 81], [18092, 82]]) {
        assert.match(list, new RegExp(`tcp \\. ${host} : ${ip.replaceAll('.', '\\.')}[,\\s]`));
        assert.match(list, new RegExp(`tcp \\. ${host} : ${port}[,\\s]`));
      }
    }

    // -P: HostPort 0; the port chosen is recorded in the log.
    const events = await ledgernetCli(['events', '--json', '--state-dir', daemon.stateDir]);
    const autoEp = (await docker(['inspect', '-f', `{{(index .NetworkSettings.Networks "${n.name}").EndpointID}}`, auto], { check: true })).stdout.trim();
    const programmed = events.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; data: { endpointId?: string; portmap?: { hostPort: number; port: number }[] } })
      .find((e) => e.type === 'endpoint.external.programmed' && e.data.endpointId === autoEp);
    const chosen = programmed?.data.portmap?.[0]?.hostPort ?? 0;
    assert.ok(chosen >= 49153, `-P chose port ${chosen} and recorded it`);
    assert.ok(await outside.fetch(`http://${host}:${chosen}/`), '-P port from outside');

    assert.equal((await docker(['rm', '-f', srv])).exitCode, 0);
    await converged();
    assert.equal(await outside.fetch(`http://${host}:18080/`), false, 'after rm: gone');
    assert.doesNotMatch(fw === 'iptables' ? await iptablesSave() : await nftList(), fw === 'iptables' ? /--dport 18080/ : /tcp \. 18080 :/);
  });

  test('host_binding_ipv4=127.0.0.1: -p 8080:80 binds only on 127.0.0.1; an explicit address keeps its own', async () => {
    const n = await createNetwork('10.231.111.0/24', '-o', 'com.docker.network.bridge.host_binding_ipv4=127.0.0.1');
    await runServer(n.name, '-p', '18380:80', '-p', '0.0.0.0:18381:81');
    const host = outside.hostIp;
    assert.ok(await fetchFromHost('http://127.0.0.1:18380/'), 'from the host, on 127.0.0.1');
    assert.equal(await outside.fetch(`http://${host}:18380/`), false, 'not from outside: bound to 127.0.0.1 only');
    assert.ok(await outside.fetch(`http://${host}:18381/`), 'an explicit 0.0.0.0 is on every address');
    if (fw === 'iptables') assert.match(await iptablesSave(), /-A LEDGERNET-DNAT -d 127\.0\.0\.1\/32 -p tcp -m tcp --dport 18380 /);
    else assert.match(await nftList(), /127\.0\.0\.1 \. tcp \. 18380 : 80/);
  });

  test('one host port on two host addresses is two containers\' (as with the bridge driver); on an overlapping one it is refused by name', async () => {
    const n = await createNetwork('10.231.112.0/24');
    const [a, b] = [await runServer(n.name, '-p', '127.0.0.1:18497:80'), await runServer(n.name, '-p', '127.0.0.2:18497:80')];
    for (const [c, text] of [[a, 'from a'], [b, 'from b']] as const) await docker(['exec', c, 'sh', '-c', `echo ${text} > /www/who.html`], { check: true });
    const get = async (url: string) => (await execa('/bin/busybox', ['timeout', '5', '/bin/busybox', 'wget', '-q', '-O', '-', url], { reject: false, stdin: 'ignore' })).stdout.trim();
    assert.equal(await get('http://127.0.0.1:18497/who.html'), 'from a');
    assert.equal(await get('http://127.0.0.2:18497/who.html'), 'from b');
    // Docker shows no ports for a remote driver: ledgernet status does, each with its container.
    const rows = await Promise.all(
      [[a, '127.0.0.1'], [b, '127.0.0.2']].map(async ([c, ip]) => new RegExp(`^${(ip ?? '').replaceAll('.', '\\.')}:18497/tcp +${(await containerIp(c ?? '', n.name)).replaceAll('.', '\\.')}:80 +${c} +[0-9a-f]{12}$`, 'm')),
    );
    let listed = '';
    await waitFor(async () => {
      listed = (await ledgernetCli(['status', '--state-dir', daemon.stateDir])).stdout;
      return rows.every((r) => r.test(listed));
    }, { what: 'both ports listed by ledgernet status with their containers', timeoutMs: 10_000 }).catch((e: unknown) => assert.fail(`${String(e)}\n${listed}`));
    const third = await docker(['run', '-d', '--name', track.container(uniqueName('srv')), '--network', n.name, '-p', '18497:80', TEST_IMAGE, 'sleep', '60']);
    assert.notEqual(third.exitCode, 0, 'every address overlaps both');
    assert.match(third.stderr, new RegExp(`host port tcp/18497 on 127\\.0\\.0\\.1 is already published by (container ${a}, )?endpoint [0-9a-f]{12}`));
    assert.equal(await get('http://127.0.0.1:18497/who.html'), 'from a', 'the first keeps its port');
    assert.equal((await docker(['rm', '-f', a])).exitCode, 0);
    await converged();
    assert.equal(await get('http://127.0.0.1:18497/who.html'), '', 'gone with its container');
    assert.equal(await get('http://127.0.0.2:18497/who.html'), 'from b', 'the other address keeps serving');
  });

  test('allow-list: from outside only listed ports reach the containers; inside the network is unaffected', async () => {
    const n = await createNetwork('10.231.111.0/24', '-o', 'ledgernet.allow=tcp/80,icmp');
    const srv = await runServer(n.name, '-p', '18180:80', '-p', '18181:81');
    const peer = await runClient(n.name);
    const ip = await containerIp(srv, n.name);
    assert.ok(await outside.fetch(`http://${outside.hostIp}:18180/`), 'published, listed: answers');
    assert.equal(await outside.fetch(`http://${outside.hostIp}:18181/`), false, 'published, not listed: times out');
    await outside.addRoute('10.231.111.0/24');
    assert.ok(await outside.fetch(`http://${ip}:80/`), 'routed, listed: answers');
    assert.equal(await outside.fetch(`http://${ip}:81/`), false, 'routed, not listed: times out');
    assert.ok(await outside.ping(ip), 'icmp listed: ping answers');
    assert.ok(await fetchFrom(peer, `http://${ip}:81/`), 'inside the network: unaffected');

    const plain = await createNetwork('10.231.112.0/24');
    const srv2 = await runServer(plain.name);
    await outside.addRoute('10.231.112.0/24');
    assert.equal(await outside.ping(await containerIp(srv2, plain.name)), false, 'no list: nothing routed comes in');
  });

  // tc, not the firewall: once is enough.
  test('bandwidth: ingress_rate and egress_rate of 8mbit hold transfers to at most 110% of the limit', { skip: fw !== FIREWALLS[0] }, async () => {
    const limited = await createNetwork('10.231.115.0/24', '-o', 'ledgernet.ingress_rate=8mbit', '-o', 'ledgernet.egress_rate=8mbit');
    const free = await createNetwork('10.231.116.0/24');
    const rate = 8_000_000;
    const bytes = 3_000_000;
    // Into the container: the host sends, busybox nc in the container sinks.
    const into = async (net: string): Promise<number> => {
      const sink = await runClient(net);
      const ip = await containerIp(sink, net);
      // busybox nc -l exits when the sender closes; it then closes, which ends the sender.
      const listen = docker(['exec', sink, 'sh', '-c', 'nc -l -p 5000 >/dev/null'], { timeoutMs: 60_000 });
      const r = await execa('python3', ['-c', SEND, ip, '5000', String(bytes)], { reject: false, timeout: 60_000 });
      await listen;
      assert.equal(r.exitCode, 0, r.stderr);
      return Number(r.stdout.trim());
    };
    // Out of the container: busybox nc piping dd output to a receiver on the host (the gateway).
    const out = async (net: string, gateway: string): Promise<number> => {
      const src = await runClient(net);
      const recv = execa('python3', ['-c', RECV, gateway, '5001'], { reject: false, timeout: 60_000 });
      // Listening before the container connects (a fixed 500 ms was too short on a loaded machine:
      // "Connection refused").
      await waitFor(async () => (await execa('ss', ['-Hltn', `src ${gateway}:5001`], { stdin: 'ignore' })).stdout.trim() !== '', {
        timeoutMs: 20_000,
        intervalMs: 50,
        what: `the receiver on ${gateway}:5001 to listen`,
      });
      const count = Math.ceil(bytes / 65536);
      const send = await docker(['exec', src, 'sh', '-c', `dd if=/dev/zero bs=65536 count=${count} 2>/dev/null | nc ${gateway} 5001`], { timeoutMs: 60_000 });
      const r = await recv;
      assert.equal(r.exitCode, 0, `${r.stderr} ${send.stderr}`);
      const [secs, got] = r.stdout.trim().split(' ').map(Number);
      assert.equal(got, count * 65536, 'every byte arrived');
      return secs ?? 0;
    };
    const mbit = (secs: number, n: number) => (n * 8) / secs / 1e6;
    const slowIn = await into(limited.name);
    assert.ok(mbit(slowIn, bytes) <= 8 * 1.1, `into the container: ${mbit(slowIn, bytes).toFixed(2)} Mbit/s, more than 110% of 8`);
    assert.ok(mbit(slowIn, bytes) >= 8 * 0.5, `into the container: ${mbit(slowIn, bytes).toFixed(2)} Mbit/s, far below the limit`);
    const outBytes = Math.ceil(bytes / 65536) * 65536;
    const slowOut = await out(limited.name, '10.231.115.1');
    assert.ok(mbit(slowOut, outBytes) <= 8 * 1.1, `out of the container: ${mbit(slowOut, outBytes).toFixed(2)} Mbit/s, more than 110% of 8`);
    assert.ok(mbit(slowOut, outBytes) >= 8 * 0.5, `out of the container: ${mbit(slowOut, outBytes).toFixed(2)} Mbit/s, far below the limit`);
    const fastIn = await into(free.name);
    const fastOut = await out(free.name, '10.231.116.1');
    assert.ok(fastIn < slowIn / 2 && fastOut < slowOut / 2, `unlimited: ${fastIn.toFixed(2)} s in, ${fastOut.toFixed(2)} s out`);
    assert.ok(rate);
  });

  test('options show in the dry-run; a bad option is refused', async () => {
    const name = track.network(uniqueName('lnfw'));
    const bad = await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.113.0/24', '-o', 'ledgernet.allow=tcp/99999', name]);
    assert.notEqual(bad.exitCode, 0);
    assert.match(bad.stderr, /ledgernet\.allow=tcp\/99999 is invalid/);
  });

  test("a Docker bridge network made later (custom bridge name): its rules go above the hook, and isolation holds at once, not at the next tick; removed, its isolation lines go at once", async () => {
    const a = await createNetwork('10.231.124.0/24');
    const a1 = await runClient(a.name);
    const ipA1 = await containerIp(a1, a.name);
    // A repair tick far away: only Docker's event can make ledgernet look again within the test.
    const stateDir = daemon.stateDir;
    await daemon.kill9();
    daemon = await startDaemon({ stateDir, keepStateDir: false, extraArgs: ['--reconcile-interval', '60', '--firewall', fw] });
    try {
      await converged();
      const bridge = 'dkfwcustom0';
      const d = track.network(uniqueName('dbr'));
      assert.equal((await docker(['network', 'create', '--driver', 'bridge', '--subnet', '10.231.125.0/24', '-o', `com.docker.network.bridge.name=${bridge}`, d])).exitCode, 0);
      // Docker inserted its accepts for the new bridge at the top of FORWARD; the hook is back
      // right after DOCKER-USER (only Docker's isolation jump between), and the bridge is isolated.
      const hookPlaced = async () => {
        const rules = (await execa('iptables', ['-S', 'FORWARD'])).stdout.split('\n');
        const user = rules.indexOf('-A FORWARD -j DOCKER-USER');
        const hook = rules.findIndex((r) => r.includes('-j LEDGERNET-FORWARD'));
        return user >= 0 && hook > user && rules.slice(user + 1, hook).every((r) => r === '-A FORWARD -j DOCKER-ISOLATION-STAGE-1');
      };
      const isolated = async () =>
        fw === 'iptables' ? (await iptablesSave()).includes(`-A LEDGERNET-FORWARD -i lnb-+ -o ${bridge} -m conntrack ! --ctstate DNAT`) : /set docker_bridges \{[^}]*"dkfwcustom0"/.test(await nftList());
      await waitFor(async () => (await hookPlaced()) && (await isolated()), { what: `the hook back after DOCKER-USER and ${bridge} isolated`, timeoutMs: 5_000 });
      const d1 = await runClient(d);
      const ipD1 = await containerIp(d1, d);
      assert.equal(await ping(a1, ipD1, 1), false, 'ledgernet → the custom-named Docker bridge: blocked');
      assert.equal(await ping(d1, ipA1, 1), false, 'the custom-named Docker bridge → ledgernet: blocked');
      assert.ok(await ping(a1, outside.ip), 'the outside is still reachable');
      const dr = await dryRun();
      assert.equal(dr.code, 0, dr.out);
      // Docker removes the network: its isolation lines go with it, within moments too (the
      // dry-run shows nothing pending, not the removal until the next tick).
      await docker(['rm', '-f', d1], { check: true });
      await docker(['network', 'rm', d], { check: true });
      await waitFor(async () => !(await isolated()), { what: `${bridge}'s isolation lines gone`, timeoutMs: 5_000 });
      const after = await dryRun();
      assert.equal(after.code, 0, after.out);
    } finally {
      await daemon.kill9();
      daemon = await startDaemon({ stateDir, keepStateDir: false, extraArgs: ['--reconcile-interval', '1', '--firewall', fw] });
    }
  });

  test('drift: each kind of rule and sysctl removed by hand shows in the dry-run and is restored', async () => {
    const n = await createNetwork('10.231.114.0/24', '-o', 'ledgernet.allow=tcp/80', '-o', 'ledgernet.ingress_rate=100mbit');
    const srv = await runServer(n.name, '-p', '18280:80');
    const veth = `lnv-${(await containerEndpoint(srv, n.name)).EndpointID.slice(0, 11)}`;
    await converged();
    // A daemon that does not repair on a timer, so the dry-run sees the drift for sure.
    // kill9 keeps the state dir (stop() would remove it); the new daemon replays the same log.
    const stateDir = daemon.stateDir;
    await daemon.kill9();
    daemon = await startDaemon({ stateDir, keepStateDir: false, extraArgs: ['--reconcile-interval', '0', '--firewall', fw] });
    const expected = fw === 'iptables' ? await iptablesDrift() : await nftablesDrift(n);
    await execa('sysctl', ['-q', '-w', `net.ipv4.conf.${n.bridge}.route_localnet=0`]);
    await execa('tc', ['qdisc', 'del', 'dev', veth, 'root']);
    const dr = await dryRun();
    assert.equal(dr.code, 2, dr.out);
    for (const line of [
      ...expected,
      /~ bridge\.localnet \S+ \(drifted: route_localnet 1 expected, 0 found\)/,
      // A veth whose tbf was deleted falls back to the kernel's default root qdisc (noqueue).
      new RegExp(`~ qdisc\\.set ${veth} \\(drifted: tbf 100000000 bit/s expected, (none|noqueue) found\\)`),
    ]) {
      assert.match(dr.out, line);
    }
    const fix = await ledgernetCli(['reconcile', '--state-dir', daemon.stateDir]);
    assert.equal(fix.exitCode, 0, fix.stdout + fix.stderr);
    assert.equal((await dryRun()).code, 0);
    assert.ok(await outside.fetch(`http://${outside.hostIp}:18280/`), 'published port works again');
    assert.ok(await fetchFromHost('http://127.0.0.1:18280/'), 'and on 127.0.0.1');
    assert.match((await execa('tc', ['-j', 'qdisc', 'show', 'dev', veth])).stdout, /"kind":"tbf"/, 'the tbf is back');

    // Back to a daemon with the repair loop: a deleted rule (nftables: the whole table) comes back by itself.
    await daemon.kill9();
    daemon = await startDaemon({ stateDir, keepStateDir: false, extraArgs: ['--reconcile-interval', '1', '--firewall', fw] });
    if (fw === 'iptables') await execa('iptables', ['-t', 'nat', '-F', 'LEDGERNET-DNAT']);
    else await execa('nft', ['delete', 'table', 'inet', 'ledgernet']);
    await converged();
    assert.ok(await outside.fetch(`http://${outside.hostIp}:18280/`), 'restored by the loop');
    assert.ok(srv);
  });

  test('switching backends: a restart with the other --firewall removes what the old one wrote and writes the new', async () => {
    const n = await createNetwork('10.231.119.0/24');
    await runServer(n.name, '-p', '18480:80');
    assert.ok(await outside.fetch(`http://${outside.hostIp}:18480/`));
    const stateDir = daemon.stateDir;
    const other = FIREWALLS.find((f) => f !== fw) ?? (fw === 'iptables' ? 'nftables' : 'iptables');
    for (const next of [other, fw]) {
      await daemon.kill9();
      daemon = await startDaemon({ stateDir, keepStateDir: false, extraArgs: ['--reconcile-interval', '1', '--firewall', next] });
      await converged();
      const [save, list] = [await iptablesSave(), await nftList()];
      if (next === 'nftables') {
        assert.doesNotMatch(save, /LEDGERNET-(DNAT|INPUT|POSTROUTING)/, 'the iptables policy is gone');
        assert.match(save, /-A LEDGERNET-FORWARD -i lnb-\+ -m comment --comment "ledgernet:nftables" -j ACCEPT/, 'only the accept for our bridges stays');
        assert.match(list, /tcp \. 18480 : 80/);
      } else {
        assert.equal(list, '', 'the nftables table is gone');
        assert.match(save, /--dport 18480 /);
      }
      assert.ok(await outside.fetch(`http://${outside.hostIp}:18480/`), `published port works under ${next}`);
    }
  });

  test('after everything is removed, iptables outside LEDGERNET-* is byte-identical to before', async () => {
    await cleanupAll();
    await waitNoLeaks();
    assert.equal(notOurs(await iptablesSave()), notOurs(rulesBefore));
    assert.equal(await iptablesSave(), rulesBefore);
  });
});
