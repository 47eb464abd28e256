// IPv6 NAT and IPv6 published ports (Docker 27+'s defaults for `--ipv6` networks) and the host
// address options, with the real dockerd and real traffic, once per firewall backend
// (LEDGERNET_TEST_FIREWALLS=iptables runs one). "Outside" is a namespace made here
// (10.231.250.0/30 and fd00:231:250::/64) running a server that answers with the client's
// address; the host end also holds 10.231.251.44 and fd00:231:251::44 for host_ipv4/host_ipv6.
// IPv6 forwarding is turned on for the test (as Docker does for IPv6) and restored after.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { execa } from 'execa';
import { TEST_IMAGE, containerEndpoint, docker, track, uniqueName, waitFor, waitServing } from '../helpers/docker.ts';
import { describeEachBackend } from '../helpers/backend-suite.ts';

const SNAT4 = '10.231.251.44';
const SNAT6 = 'fd00:231:251::44';
/** Answers every request with `from <the client's address>` (IPv4 clients as ::ffff:a.b.c.d). */
const WHOAMI = "require('http').createServer((q, r) => r.end('from ' + q.socket.remoteAddress + '\\n')).listen(8000, '::')";

let server: ChildProcess | undefined;

async function createNetwork(n: number, ...extra: string[]): Promise<{ name: string; id: string; bridge: string }> {
  const v6 = extra.includes('--no-ipv6') ? [] : ['--ipv6', '--subnet', `fd00:231:${n}::/64`];
  const { name, id } = await suite.createNetwork('lnnat6', ['--subnet', `10.231.${n}.0/24`, ...v6, ...extra.filter((e) => e !== '--no-ipv6')]);
  return { name, id, bridge: `lnb-${id.slice(0, 11)}` };
}

const SERVE = 'mkdir -p /www && echo ok >/www/index.html && httpd -p 80 -h /www && httpd -p 81 -h /www && httpd -p 82 -h /www && exec sleep 600';

/** A container (an HTTP server on 80-82 answering "ok" when `serve`); the docker run result. */
async function run(network: string, serve: boolean, ...extra: string[]): Promise<{ name: string; exitCode: number; stderr: string }> {
  const name = track.container(uniqueName('nat6'));
  const r = await docker(['run', '-d', '--name', name, '--network', network, ...extra, TEST_IMAGE, ...(serve ? ['sh', '-c', SERVE] : ['sleep', '600'])]);
  return { name, exitCode: r.exitCode, stderr: r.stderr };
}

async function started(network: string, serve: boolean, ...extra: string[]): Promise<string> {
  const r = await run(network, serve, ...extra);
  assert.equal(r.exitCode, 0, `docker run failed: ${r.stderr}\n${suite.daemon.logs().slice(-2000)}`);
  if (serve) await waitServing(r.name, 82);
  return r.name;
}

/** What `wget` from inside a container reads ('' when it fails); busybox wget has no -T, so `timeout` bounds it. */
async function bodyFrom(container: string, url: string): Promise<string> {
  const r = await docker(['exec', container, 'timeout', '5', 'wget', '-q', '-O', '-', url], { timeoutMs: 15_000 });
  return r.exitCode === 0 ? r.stdout.trim() : '';
}

async function fetchFromHost(url: string): Promise<boolean> {
  const r = await execa('/bin/busybox', ['timeout', '5', '/bin/busybox', 'wget', '-q', '-O', '-', url], { reject: false, stdin: 'ignore' });
  return r.exitCode === 0 && /ok/.test(r.stdout);
}

const ip6Of = async (container: string, network: string) => (await containerEndpoint(container, network)).GlobalIPv6Address;

/** The outside's addresses for host_ipv4/host_ipv6, its routes to them, and its server. */
async function setUpOutside(): Promise<void> {
  const outside = suite.outside;
  for (const a of [`${SNAT4}/32`, `${SNAT6}/128`]) await execa('ip', ['addr', 'add', a, 'dev', outside.hostIf, ...(a.includes(':') ? ['nodad'] : [])]);
  await outside.addRoute('10.231.251.0/24');
  await outside.addRoute('fd00:231:251::/64');
  server = spawn('ip', ['netns', 'exec', outside.netns, process.execPath, '-e', WHOAMI], { stdio: 'ignore' });
  await waitFor(async () => (await outside.exec(['/bin/busybox', 'wget', '-q', '-O', '-', 'http://[::1]:8000/'])).exitCode === 0, { what: 'the outside server', timeoutMs: 10_000 });
}

async function stopServer(): Promise<void> {
  if (server && server.exitCode === null) {
    const gone = once(server, 'exit');
    server.kill();
    await gone;
  }
}

const suite = describeEachBackend({
  title: (fw) => `IPv6 NAT with the real dockerd (--firewall ${fw})`,
  ipv6Forwarding: true,
  noLeaksAfter: { backend: true },
  outside: { prefix: '10.231.250', v6: 'fd00:231:250' },
  backendSetUp: setUpOutside,
  backendTearDown: stopServer,
}, (fw) => {
  test('egress: IPv6 is masqueraded; host_ipv4/host_ipv6 SNAT to their address; enable_ip_masquerade=false keeps the container\'s', async () => {
    const masq = await createNetwork(141);
    const snat = await createNetwork(142, '-o', `com.docker.network.host_ipv4=${SNAT4}`, '-o', `com.docker.network.host_ipv6=${SNAT6}`);
    const plain = await createNetwork(143, '-o', 'com.docker.network.bridge.enable_ip_masquerade=false');
    const [c1, c2, c3] = [await started(masq.name, false), await started(snat.name, false), await started(plain.name, false)];
    assert.equal(await bodyFrom(c1, `http://[${suite.outside.ip6}]:8000/`), `from ${suite.outside.hostIp6}`, 'masqueraded behind the host');
    assert.equal(await bodyFrom(c2, `http://[${suite.outside.ip6}]:8000/`), `from ${SNAT6}`, 'SNATed to host_ipv6');
    assert.equal(await bodyFrom(c2, `http://${suite.outside.ip}:8000/`), `from ::ffff:${SNAT4}`, 'SNATed to host_ipv4');
    assert.equal(await bodyFrom(c3, `http://[${suite.outside.ip6}]:8000/`), '', 'not masqueraded: the outside has no route back yet');
    await suite.outside.addRoute('fd00:231:143::/64');
    assert.equal(await bodyFrom(c3, `http://[${suite.outside.ip6}]:8000/`), `from ${await ip6Of(c3, plain.name)}`, 'the container\'s own address');
    assert.equal((await suite.dryRun()).code, 0, 'converged');
  });

  test('published ports over IPv6: no address is both families, 0.0.0.0 IPv4 only, [::] IPv6 only; hairpin; from the host; host_binding_ipv4', async () => {
    const n = await createNetwork(144);
    const srv = await started(n.name, true, '-p', '18480:80', '-p', '[::]:18481:81', '-p', '0.0.0.0:18482:82');
    const [h4, h6] = [suite.outside.hostIp, `[${suite.outside.hostIp6}]`];
    assert.ok(await suite.outside.fetch(`http://${h6}:18480/`), '-p 18480:80 over IPv6');
    assert.ok(await suite.outside.fetch(`http://${h4}:18480/`), '-p 18480:80 over IPv4');
    assert.ok(await suite.outside.fetch(`http://${h6}:18481/`), '-p [::]:18481:81 over IPv6');
    assert.equal(await suite.outside.fetch(`http://${h4}:18481/`), false, '-p [::]:18481:81 not over IPv4');
    assert.ok(await suite.outside.fetch(`http://${h4}:18482/`), '-p 0.0.0.0:18482:82 over IPv4');
    assert.equal(await suite.outside.fetch(`http://${h6}:18482/`), false, '-p 0.0.0.0:18482:82 not over IPv6');
    const peer = await started(n.name, false);
    assert.equal(await bodyFrom(peer, `http://${h6}:18480/`), 'ok', 'hairpin: a container of the network through the host\'s IPv6 address');
    assert.ok(await fetchFromHost(`http://${h6}:18480/`), 'from the host itself, on its IPv6 address');

    const bound = await createNetwork(145, '-o', `com.docker.network.bridge.host_binding_ipv4=${suite.outside.hostIp6}`);
    await started(bound.name, true, '-p', '18485:80');
    assert.ok(await suite.outside.fetch(`http://${h6}:18485/`), 'host_binding_ipv4 (an IPv6 address): bound there');
    assert.equal(await suite.outside.fetch(`http://${h4}:18485/`), false, 'and nowhere over IPv4');
    assert.equal((await suite.dryRun()).code, 0, 'converged');
  });

  test('refused by name, nothing left: sctp on [::1] (the proxy speaks tcp and udp), -p [::]:… on an IPv4-only network, host_ipv6 without --ipv6', async () => {
    const n = await createNetwork(146);
    const lo = await run(n.name, true, '-p', '[::1]:18486:80/sctp');
    assert.notEqual(lo.exitCode, 0);
    assert.match(lo.stderr, /port sctp\/80 cannot be published on \[::1\]:18486: the IPv6 loopback is served by ledgernet's userland proxy, which forwards tcp and udp only/);
    const v4 = await createNetwork(147, '--no-ipv6');
    const r = await run(v4.name, true, '-p', '[::]:18487:80');
    assert.notEqual(r.exitCode, 0);
    assert.match(r.stderr, /published on the IPv6 address ::, but the container has no IPv6 address on this network/);
    const bad = await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.148.0/24', '-o', `com.docker.network.host_ipv6=${SNAT6}`, track.network(uniqueName('lnnat6'))]);
    assert.notEqual(bad.exitCode, 0);
    assert.match(bad.stderr, /host_ipv6=fd00:231:251::44 would be ignored: the network has no IPv6 subnet/);
    assert.equal((await suite.dryRun()).code, 0, 'nothing half-applied');
  });

  test('a deleted IPv6 NAT rule: egress breaks, reconcile --dry-run shows it, reconcile repairs it', async () => {
    const n = await createNetwork(149);
    const c = await started(n.name, false);
    assert.equal(await bodyFrom(c, `http://[${suite.outside.ip6}]:8000/`), `from ${suite.outside.hostIp6}`);
    if (fw === 'iptables') {
      const rule = `-s fd00:231:149::/64 ! -o ${n.bridge} -m comment --comment ledgernet:network:${n.id}:masquerade -j MASQUERADE`;
      await execa('ip6tables', ['-t', 'nat', '-D', 'LEDGERNET-POSTROUTING', ...rule.split(' ')]);
    } else await execa('nft', ['delete', 'element', 'inet', 'ledgernet', 'masq6', '{ fd00:231:149::/64 }']);
    assert.equal(await bodyFrom(c, `http://[${suite.outside.ip6}]:8000/`), '', 'without the rule, replies have no way back');
    const drift = await suite.dryRun();
    assert.notEqual(drift.code, 0);
    const want = fw === 'iptables'
      ? new RegExp(`\\+ -s fd00:231:149::/64 ! -o ${n.bridge} -m comment --comment "ledgernet:network:${n.id}:masquerade" -j MASQUERADE`)
      : new RegExp(`\\+ nft\\.element\\.add inet ledgernet/masq6 fd00:231:149::/64 : jump net-${n.id}-masq6`);
    assert.match(drift.out, want);
    await suite.reconcile();
    assert.equal((await suite.dryRun()).code, 0);
    assert.equal(await bodyFrom(c, `http://[${suite.outside.ip6}]:8000/`), `from ${suite.outside.hostIp6}`, 'repaired');
  });
});
