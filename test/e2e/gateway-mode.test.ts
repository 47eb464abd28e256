// Docker 28's gateway modes and direct-access protection with the real dockerd and real traffic,
// once per firewall backend (LEDGERNET_TEST_FIREWALLS=iptables runs one). "Outside" is a namespace
// made here, linked to the host by a veth, with a route to the container subnets via the host: a
// router on the LAN sending packets straight to container addresses. What a user checks:
// - nat (default): the published port works through the host's address, but the container's own
//   address is not reachable from outside, not even its published container port, and not even
//   when the operator accepts it in DOCKER-USER; from a trusted interface
//   (trusted_host_interfaces) the published container port is reachable, an unpublished one not;
//   with `serve --allow-direct-routing` the same from every interface (the daemon is restarted
//   with the flag and without it again), and the dry-run shows the protection go and come back;
// - routed: no NAT either way: the published container port (and ping) is reachable at the
//   container's address, the host port is not, and the outside sees the container's own address;
//   routed for IPv6 only: the same over IPv6 (no IPv6 masquerade or DNAT), while IPv4 keeps its NAT;
// - nat-unprotected: NAT as usual, and every port of the container reachable directly;
// - isolated (--internal, both families): the bridge has no address (not even IPv6 link-local),
//   the host does not reach the containers,
//   they reach each other;
// - the dry-run shows a protection rule deleted by hand, and a reconcile puts it back.
// Traffic only between the outside namespace, the host and the containers made here (10.231.16x.0/24,
// fd00:231:167::/64). IPv6 forwarding is turned on for the run and put back as it was.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { execa } from 'execa';
import { TEST_IMAGE, cleanupAll, containerEndpoint, containerIp, docker, ping, track, uniqueName, waitFor, waitServing } from '../helpers/docker.ts';
import { ledgernetCli, startDaemon } from '../helpers/daemon.ts';
import { describeEachBackend } from '../helpers/backend-suite.ts';
import { waitNoLeaks } from '../helpers/leaks.ts';
import { notOurs, rulesSave } from '../helpers/rules.ts';

let rulesBefore: string;
before(async () => {
  rulesBefore = await rulesSave('iptables-save');
});

const GW4 = 'com.docker.network.bridge.gateway_mode_ipv4';
const GW6 = 'com.docker.network.bridge.gateway_mode_ipv6';
const SERVE = 'mkdir -p /www && echo ok >/www/index.html && httpd -p 80 -h /www && httpd -p 81 -h /www && exec sleep 600';

async function createNetwork(n: number, ...extra: string[]): Promise<{ name: string; id: string; bridge: string; subnet: string }> {
  const subnet = `10.231.${n}.0/24`;
  const { name, id } = await suite.createNetwork('lngw', ['--subnet', subnet, ...extra]);
  if (!extra.includes('--internal')) await suite.outside.addRoute(subnet);
  return { name, id, bridge: `lnb-${id.slice(0, 11)}`, subnet };
}

/** A container serving "ok" on ports 80 and 81, and its address. */
async function runServer(network: string, ...extra: string[]): Promise<{ name: string; ip: string }> {
  const name = track.container(uniqueName('gws'));
  const r = await docker(['run', '-d', '--name', name, '--network', network, ...extra, TEST_IMAGE, 'sh', '-c', SERVE]);
  assert.equal(r.exitCode, 0, `docker run failed: ${r.stderr}\n${suite.daemon.logs().slice(-2000)}`);
  await waitServing(name, 81);
  return { name, ip: await containerIp(name, network) };
}

async function fetchFrom(container: string, url: string): Promise<boolean> {
  const r = await docker(['exec', container, 'timeout', '5', 'wget', '-q', '-O', '-', url], { timeoutMs: 15_000 });
  return r.exitCode === 0 && /ok/.test(r.stdout);
}

const PEER = (v6: boolean) => `
import socket
s = socket.socket(socket.${v6 ? 'AF_INET6' : 'AF_INET'}); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('${v6 ? '::' : '0.0.0.0'}', 5555)); s.listen(1); s.settimeout(15)
c, a = s.accept(); print(a[0]); c.close()
`;

/** The source address the outside sees on a TCP connection the container opens to it (at `to`, its IPv4 address unless said). */
async function sourceSeenOutside(container: string, to = suite.outside.ip): Promise<string> {
  const v6 = to.includes(':');
  const server = execa('ip', ['netns', 'exec', suite.outside.netns, 'python3', '-c', PEER(v6)], { reject: false, stdin: 'ignore', timeout: 20_000 });
  // Listening before the container connects (a fixed 500 ms can be too short for python3 to start on a loaded machine).
  await waitFor(async () => server.exitCode === null && (await execa('ip', ['netns', 'exec', suite.outside.netns, 'ss', '-Hltn', 'sport = :5555'], { stdin: 'ignore' })).stdout.trim() !== '', {
    timeoutMs: 15_000,
    intervalMs: 50,
    what: `the peer in ${suite.outside.netns} to listen on port 5555`,
  });
  await docker(['exec', container, 'sh', '-c', `echo x | nc -w 2 ${to} 5555`], { timeoutMs: 15_000 });
  const r = await server;
  return r.stdout.trim();
}

const suite = describeEachBackend({
  title: (fw) => `gateway modes and direct-access protection (--firewall ${fw})`,
  ipv6Forwarding: true,
  outside: { prefix: '10.231.251', v6: 'fd00:231:251' },
}, (fw) => {
  test('nat (default): only the published host port comes in; the container address is not reachable from outside, even if DOCKER-USER accepts it', async () => {
    const n = await createNetwork(161);
    const srv = await runServer(n.name, '-p', '18561:80');
    assert.ok(await suite.outside.fetch(`http://${suite.outside.hostIp}:18561/`), 'the published port, at the host address');
    assert.equal(await suite.outside.fetch(`http://${srv.ip}:80/`), false, 'the published container port, addressed directly: dropped');
    assert.equal(await suite.outside.ping(srv.ip), false, 'ping to the container address: dropped');
    const accept = ['DOCKER-USER', '-d', n.subnet, '-j', 'ACCEPT'];
    await execa('iptables', ['-I', ...accept]);
    try {
      assert.equal(await suite.outside.fetch(`http://${srv.ip}:80/`), false, 'an operator accept in DOCKER-USER does not open it (the drop comes before filter)');
    } finally {
      await execa('iptables', ['-D', ...accept]);
    }
    const client = await runServer(n.name);
    assert.equal(await sourceSeenOutside(client.name), suite.outside.hostIp, 'egress is masqueraded behind the host');
  });

  test('trusted_host_interfaces: from a trusted interface the published container port is reachable directly, an unpublished one is not', async () => {
    const n = await createNetwork(162, '-o', `com.docker.network.bridge.trusted_host_interfaces=${suite.outside.hostIf}:lnt-none0`);
    const srv = await runServer(n.name, '-p', '18562:80');
    assert.ok(await suite.outside.fetch(`http://${srv.ip}:80/`), 'published container port, from the trusted interface');
    assert.equal(await suite.outside.fetch(`http://${srv.ip}:81/`), false, 'unpublished port: dropped');
    assert.ok(await suite.outside.fetch(`http://${suite.outside.hostIp}:18562/`), 'the host port still works');
  });

  test('serve --allow-direct-routing: the published container port is reachable directly from any interface, an unpublished one is not; the dry-run shows the protection go and come back', async () => {
    const n = await createNetwork(168);
    const srv = await runServer(n.name, '-p', '18568:80');
    assert.equal(await suite.outside.fetch(`http://${srv.ip}:80/`), false, 'without the flag: the published container port, addressed directly, is dropped');
    // iptables: the network's DROP goes (the whole chain, when no other network is guarded); nftables: its map element.
    const drop = `-d 10\\.231\\.168\\.0/24 ! -i ${n.bridge} .*-j DROP`;
    const gone = fw === 'iptables' ? new RegExp(`- (${drop}|chain\\.delete mangle/LEDGERNET-DIRECT)`) : /- nft\.element\.delete inet ledgernet\/direct4 10\.231\.168\.0\/24/;
    const back = fw === 'iptables' ? new RegExp(`\\+ ${drop}`) : /\+ nft\.element\.add inet ledgernet\/direct4 10\.231\.168\.0\/24/;
    const on = await ledgernetCli(['reconcile', '--dry-run', '--allow-direct-routing', '--state-dir', suite.daemon.stateDir]);
    assert.equal(on.exitCode, 2, on.stdout + on.stderr);
    assert.match(on.stdout, gone, 'the dry-run with the flag: the protection goes');
    const plain = suite.daemon.options;
    await suite.daemon.terminate();
    suite.daemon = await startDaemon({ ...plain, extraArgs: [...(plain.extraArgs ?? []), '--allow-direct-routing'] });
    try {
      await waitFor(async () => (await suite.dryRun()).code === 0, { what: 'serve --allow-direct-routing to converge', timeoutMs: 10_000 });
      assert.ok(await suite.outside.fetch(`http://${srv.ip}:80/`), 'with the flag: the published container port, addressed directly from an untrusted interface');
      assert.equal(await suite.outside.fetch(`http://${srv.ip}:81/`), false, 'an unpublished port: still dropped');
      assert.ok(await suite.outside.fetch(`http://${suite.outside.hostIp}:18568/`), 'the host port still works');
      const off = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', suite.daemon.stateDir], { LEDGERNET_ALLOW_DIRECT_ROUTING: '0' });
      assert.equal(off.exitCode, 2, off.stdout + off.stderr);
      assert.match(off.stdout, back, 'planned without the flag: the protection comes back');
    } finally {
      await suite.daemon.terminate();
      suite.daemon = await startDaemon(plain);
    }
    await waitFor(async () => (await suite.dryRun()).code === 0, { what: 'serve without the flag to converge', timeoutMs: 10_000 });
    assert.equal(await suite.outside.fetch(`http://${srv.ip}:80/`), false, 'without the flag again: dropped');
  });

  test('routed: no NAT; the published container port and ping reach the container address, the host port does not, egress keeps its address', async () => {
    const n = await createNetwork(163, '-o', `${GW4}=routed`);
    const srv = await runServer(n.name, '-p', '18563:80');
    assert.ok(await suite.outside.fetch(`http://${srv.ip}:80/`), 'published container port, addressed directly');
    assert.equal(await suite.outside.fetch(`http://${srv.ip}:81/`), false, 'unpublished port: dropped');
    assert.ok(await suite.outside.ping(srv.ip), 'ICMP is let in');
    assert.equal(await suite.outside.fetch(`http://${suite.outside.hostIp}:18563/`), false, 'no host port: nothing is mapped on the host');
    assert.equal(await sourceSeenOutside(srv.name), srv.ip, 'the outside sees the container address: no masquerade');
    const rules = fw === 'iptables' ? await rulesSave('iptables-save', ['-t', 'nat']) : (await execa('nft', ['list', 'table', 'inet', 'ledgernet'])).stdout;
    assert.doesNotMatch(rules, /18563/, 'no DNAT for the host port');
    assert.doesNotMatch(rules, new RegExp(n.subnet.replace(/\./g, '\\.').replace('/', '\\/') + '.*(MASQUERADE|masq)'), 'no masquerade');
  });

  test('routed for IPv6 only: the published container port and ping reach its IPv6 address, IPv6 egress keeps it; IPv4 stays NATed and protected', async () => {
    const n = await createNetwork(167, '--ipv6', '--subnet', 'fd00:231:167::/64', '-o', `${GW6}=routed`);
    await suite.outside.addRoute('fd00:231:167::/64');
    const srv = await runServer(n.name, '-p', '18567:80');
    const ip6 = (await containerEndpoint(srv.name, n.name)).GlobalIPv6Address;
    assert.ok(await suite.outside.fetch(`http://[${ip6}]:80/`), 'published container port, at its IPv6 address');
    assert.equal(await suite.outside.fetch(`http://[${ip6}]:81/`), false, 'unpublished port: dropped');
    assert.ok(await suite.outside.ping(ip6), 'ICMPv6 is let in');
    assert.equal(await suite.outside.fetch(`http://[${suite.outside.hostIp6}]:18567/`), false, 'no IPv6 DNAT of the host port');
    assert.equal(await sourceSeenOutside(srv.name, suite.outside.ip6), ip6, 'IPv6 egress: the container address, no masquerade');
    assert.ok(await suite.outside.fetch(`http://${suite.outside.hostIp}:18567/`), 'IPv4: the host port is published');
    assert.equal(await suite.outside.fetch(`http://${srv.ip}:80/`), false, 'IPv4: the container address is protected');
    assert.equal(await sourceSeenOutside(srv.name), suite.outside.hostIp, 'IPv4 egress is masqueraded');
  });

  test('nat-unprotected: NAT as usual, and every port of the container is reachable directly', async () => {
    const n = await createNetwork(164, '-o', `${GW4}=nat-unprotected`);
    const srv = await runServer(n.name, '-p', '18564:80');
    assert.ok(await suite.outside.fetch(`http://${suite.outside.hostIp}:18564/`), 'the host port');
    assert.ok(await suite.outside.fetch(`http://${srv.ip}:80/`), 'the published container port, directly');
    assert.ok(await suite.outside.fetch(`http://${srv.ip}:81/`), 'an unpublished port too: no per-port filtering');
    assert.equal(await sourceSeenOutside(srv.name), suite.outside.hostIp, 'egress is masqueraded');
  });

  test('isolated (--internal): the bridge has no address, the host does not reach the containers, they reach each other', async () => {
    const n = await createNetwork(165, '--internal', '--ipv6', '--subnet', 'fd00:231:165::/64', '-o', `${GW4}=isolated`, '-o', 'com.docker.network.bridge.gateway_mode_ipv6=isolated');
    const a = await runServer(n.name);
    const b = await runServer(n.name);
    const addrs = JSON.parse((await execa('ip', ['-j', 'addr', 'show', 'dev', n.bridge])).stdout) as { addr_info: { family: string; local: string }[] }[];
    assert.deepEqual(addrs[0]?.addr_info, [], 'no address on the bridge: no IPv4, no IPv6, not even link-local');
    assert.ok(await fetchFrom(b.name, `http://${a.ip}/`), 'containers of the network reach each other');
    // Checked on the host's routes, not by sending: without the bridge's route a packet would leave by the default route.
    const route = JSON.parse((await execa('ip', ['-j', 'route', 'get', a.ip])).stdout) as { dev?: string }[];
    assert.notEqual(route[0]?.dev, n.bridge, 'the host has no route to them through the bridge');
    const bound = await execa('/bin/busybox', ['ping', '-c', '1', '-W', '1', '-I', n.bridge, a.ip], { reject: false, stdin: 'ignore' });
    assert.notEqual(bound.exitCode, 0, 'the host does not reach them, even sending on the bridge itself');
    assert.equal(await ping(b.name, '10.231.165.1', 1), false, 'nothing answers at the gateway address');
    const refused = await docker(['network', 'create', '--driver', 'ledgernet', '-o', `${GW4}=isolated`, track.network(uniqueName('lngw'))]);
    assert.notEqual(refused.exitCode, 0);
    assert.match(refused.stderr, /gateway_mode_ipv4=isolated can only be used for an internal network/);
    const dr = await suite.dryRun();
    assert.equal(dr.code, 0, dr.out);
  });

  test('a protection rule deleted by hand shows in the dry-run and is put back', async () => {
    const n = await createNetwork(166);
    await runServer(n.name, '-p', '18566:80');
    assert.equal((await suite.dryRun()).code, 0);
    let expected: RegExp[];
    if (fw === 'iptables') {
      const rule = ['-d', n.subnet, '!', '-i', n.bridge, '-m', 'comment', '--comment', `ledgernet:network:${n.id}:direct`, '-j', 'DROP'];
      // The network's rules stand in the bucket of its bridge name's first character (LEDGERNET-DIRECT-<c>).
      await execa('iptables', ['-t', 'mangle', '-D', `LEDGERNET-DIRECT-${n.bridge.charAt(4)}`, ...rule]);
      expected = [/~ chain\.write mangle\/LEDGERNET-DIRECT-\S \(drifted: \d+ rules expected, \d+ found \(1 missing/, new RegExp(`\\+ -d 10\\.231\\.166\\.0/24 ! -i ${n.bridge} .*-j DROP`)];
    } else {
      await execa('nft', ['delete', 'element', 'inet', 'ledgernet', 'direct4', `{ ${n.subnet} }`]);
      expected = [new RegExp(`\\+ nft\\.element\\.add inet ledgernet/direct4 10\\.231\\.166\\.0/24 : jump net-${n.id}-direct \\(missing\\)`)];
    }
    const dr = await suite.dryRun();
    assert.equal(dr.code, 2, dr.out);
    for (const line of expected) assert.match(dr.out, line);
    await suite.reconcile();
    await waitFor(async () => (await suite.dryRun()).code === 0, { what: 'the protection to be back', timeoutMs: 10_000 });
  });

  test('after everything is removed, iptables outside LEDGERNET-* is as it was', async () => {
    await cleanupAll();
    await waitNoLeaks();
    assert.equal(notOurs(await rulesSave('iptables-save')), notOurs(rulesBefore));
  });
});
