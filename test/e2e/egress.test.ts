// The egress policy (ledgernet.egress_deny / egress_allow) with the real dockerd and real
// traffic. Two namespaces made here stand for the world: "the LAN" (10.231.249.2, the host's
// end 10.231.249.1) and "the internet" (203.0.113.2, also 2001:db8:231::2 for IPv6), each
// serving "ok" over HTTP on ports 80 and 81; the host serves on its gateway and LAN addresses.
// Checked: new connections to denied (or unlisted) destinations are refused at once (ICMP port
// unreachable: "Connection refused"), listed ones and ports pass, replies to inbound connections
// (a published port opened from the LAN) flow, the network's own subnet, its gateway and Docker's
// embedded DNS (container names) keep working, the dry-run shows a rule deleted by hand and
// `ledgernet reconcile` puts it back. Every scenario runs once per firewall backend (`serve
// --firewall`; LEDGERNET_TEST_FIREWALLS=iptables runs one). No traffic goes anywhere else.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { TEST_IMAGE, containerEndpoint, containerIp, docker, ping, track, uniqueName } from '../helpers/docker.ts';
import { FIREWALLS, describeEachBackend } from '../helpers/backend-suite.ts';
import { createOutside, type Outside } from '../helpers/outside.ts';

let lan: Outside;
let inet: Outside;
let www = '';
/** The httpd processes started here, killed in `after`, by address (a network made again reuses its gateway's). */
const servers = new Map<string, { kill(): void; done: Promise<unknown> }>();

/** `busybox httpd` in the foreground serving "ok" on `addr` (`[IP:]PORT`), in `netns` or on the host; killed in `after`. */
async function serve(netns: string | null, addr: string): Promise<void> {
  if (servers.has(`${netns}/${addr}`)) return;
  const inNs = (cmd: string[]): [string, string[]] => (netns === null ? [cmd[0] as string, cmd.slice(1)] : ['ip', ['netns', 'exec', netns, ...cmd]]);
  const p = execa(...inNs(['/bin/busybox', 'httpd', '-f', '-p', addr, '-h', www]), { reject: false, stdin: 'ignore' });
  servers.set(`${netns}/${addr}`, { kill: () => p.kill('SIGKILL'), done: p.then(() => undefined) });
  // Listening once a connection is answered (or refused for a while: the port is not bound yet).
  const url = `http://${addr.includes(':') ? addr : `127.0.0.1:${addr}`}/`;
  for (let i = 0; i < 50; i++) {
    const r = await execa(...inNs(['/bin/busybox', 'wget', '-q', '-O', '-', url]), { reject: false, timeout: 2000, stdin: 'ignore' });
    if (r.exitCode === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`httpd on ${addr} did not come up`);
}

/** "The LAN" and "the internet" (with its IPv6 address), each serving on ports 80 and 81, and the host on its LAN address. */
async function setUpWorld(): Promise<void> {
  www = await mkdtemp(join(tmpdir(), 'lnegress-'));
  await writeFile(join(www, 'index.html'), 'ok\n');
  lan = await createOutside('10.231.249');
  inet = await createOutside('203.0.113', '2001:db8:231');
  for (const ns of [lan, inet]) for (const port of ['80', '81']) await serve(ns.netns, port);
  // The host's own address on the LAN, serving: a refusal from it is the policy's, not a closed port.
  await serve(null, '10.231.249.1:18641');
}

async function tearDownWorld(): Promise<void> {
  for (const p of servers.values()) p.kill();
  await Promise.allSettled([...servers.values()].map((p) => p.done));
  await lan?.remove();
  await inet?.remove();
  if (www) await rm(www, { recursive: true, force: true });
}

async function createNetwork(subnets: readonly string[], ...extra: string[]): Promise<{ name: string; id: string }> {
  return suite.createNetwork('lneg', [...subnets.flatMap((s) => ['--subnet', s]), ...extra]);
}

const SERVE = 'mkdir -p /www && echo ok >/www/index.html && httpd -p 80 -h /www && exec sleep 600';

async function run(network: string, cmd: readonly string[], ...extra: string[]): Promise<string> {
  const name = track.container(uniqueName('eg'));
  const r = await docker(['run', '-d', '--name', name, '--network', network, ...extra, TEST_IMAGE, ...cmd]);
  assert.equal(r.exitCode, 0, `docker run failed: ${r.stderr}\n${suite.daemon.logs().slice(-2000)}`);
  return name;
}

/**
 * `wget` from inside a container: 'ok' (answered), 'refused' (connection refused: the policy's
 * reject, at once) or the error it printed (anything else, e.g. a timeout).
 */
async function fetchFrom(container: string, url: string): Promise<string> {
  const r = await docker(['exec', container, 'timeout', '5', 'wget', '-q', '-O', '-', url], { timeoutMs: 15_000 });
  if (r.exitCode === 0 && /ok/.test(r.stdout)) return 'ok';
  return /Connection refused/.test(r.stderr) ? 'refused' : `failed: ${r.stderr || r.stdout || `exit ${r.exitCode}`}`;
}

/** Deletes the rule that denies 10.0.0.0/8 by hand; returns what the dry-run must then show. */
async function deleteDenyRule(fw: string, id: string): Promise<RegExp> {
  if (fw === 'nftables') {
    const chain = `net-${id}-egress`;
    const listed = (await execa('nft', ['-a', 'list', 'chain', 'inet', 'ledgernet', chain])).stdout;
    const handle = /ct original ip daddr 10\.0\.0\.0\/8 reject # handle (\d+)/.exec(listed)?.[1];
    assert.ok(handle, listed);
    await execa('nft', ['delete', 'rule', 'inet', 'ledgernet', chain, 'handle', handle]);
    return new RegExp(`network ${id.slice(0, 12)}(?: \\([^)\\n]*\\))?\\n  ~ nft\\.chain\\.write inet ledgernet/${chain} \\(drifted[\\s\\S]*\\+ ct original ip daddr 10\\.0\\.0\\.0/8 reject\\n`);
  }
  const chain = `LEDGERNET-EG-${id.slice(0, 12)}`;
  const rule = ['-m', 'conntrack', '--ctorigdst', '10.0.0.0/8', '-m', 'comment', '--comment', `ledgernet:network:${id}:egress-deny`, '-j', 'REJECT', '--reject-with', 'icmp-port-unreachable'];
  await execa('iptables', ['-D', chain, ...rule]);
  return new RegExp(`network ${id.slice(0, 12)}(?: \\([^)\\n]*\\))?\\n  ~ chain\\.write filter/${chain} \\(drifted[\\s\\S]*\\+ -m conntrack --ctorigdst 10\\.0\\.0\\.0/8 .*egress-deny" -j REJECT`);
}

const suite = describeEachBackend({
  title: (fw) => `egress policy with the real dockerd and real traffic (--firewall ${fw})`,
  ipv6Forwarding: true,
  keepRules: [
    { cmd: 'iptables-save', what: "Docker's and the operator's rules are as they were" },
    { cmd: 'ip6tables-save', args: ['-t', 'filter'], what: 'and the IPv6 ones' },
  ],
  noLeaksAfter: { file: true },
  setUp: setUpWorld,
  tearDown: tearDownWorld,
}, (fw) => {
  test('egress_deny: the LAN and the host there are refused, the internet answers; subnet, gateway, names and inbound replies work; drift is repaired', async () => {
    const n = await createNetwork(['10.231.140.0/24'], '-o', 'ledgernet.egress_deny=10.0.0.0/8,203.0.113.2:tcp/81');
    const srv = await run(n.name, ['sh', '-c', SERVE], '-p', '18640:80');
    const cli = await run(n.name, ['sleep', '600']);
    const srvIp = await containerIp(srv, n.name);
    await serve(null, '10.231.140.1:18641');

    assert.equal(await fetchFrom(cli, 'http://203.0.113.2/'), 'ok', 'the internet answers');
    assert.equal(await fetchFrom(cli, 'http://203.0.113.2:81/'), 'refused', 'a denied port of it is refused');
    assert.equal(await fetchFrom(cli, 'http://10.231.249.2/'), 'refused', 'the LAN (10.0.0.0/8) is refused');
    assert.equal(await ping(cli, '10.231.249.2', 1), false, 'every protocol: no ping to the LAN either');
    assert.equal(await fetchFrom(cli, 'http://10.231.249.1:18641/'), 'refused', "the host's own address on the LAN is refused too");
    assert.equal(await fetchFrom(cli, `http://${srvIp}/`), 'ok', 'the own subnet (inside 10.0.0.0/8) stays reachable');
    assert.ok(await ping(cli, '10.231.140.1'), 'the gateway answers ping');
    assert.equal(await fetchFrom(cli, 'http://10.231.140.1:18641/'), 'ok', 'and serves on the gateway address');
    assert.equal(await fetchFrom(cli, `http://${srv}/`), 'ok', "Docker's embedded DNS resolves the container's name");
    assert.ok(await lan.fetch('http://10.231.249.1:18640/'), 'the LAN opens a connection to a published port: the replies flow');

    // A rule deleted by hand: the dry-run names it, traffic it refused passes, reconcile puts it back.
    assert.equal((await suite.dryRun()).code, 0, 'converged before');
    const shown = await deleteDenyRule(fw, n.id);
    const drift = await suite.dryRun();
    assert.equal(drift.code, 2, drift.out);
    assert.match(drift.out, shown);
    assert.equal(await fetchFrom(cli, 'http://10.231.249.2/'), 'ok', 'without the rule the LAN answers: the rule is what refused it');
    await suite.reconcile();
    assert.equal((await suite.dryRun()).code, 0, 'converged again');
    assert.equal(await fetchFrom(cli, 'http://10.231.249.2/'), 'refused', 'refused again');
  });

  test('egress_allow with egress_deny: only the listed protocol reaches the internet, deny wins; subnet, gateway, names and inbound replies work', async () => {
    const n = await createNetwork(['10.231.141.0/24'], '-o', 'ledgernet.egress_allow=203.0.113.0/30:tcp', '-o', 'ledgernet.egress_deny=203.0.113.2:tcp/81');
    const srv = await run(n.name, ['sh', '-c', SERVE], '-p', '18642:80');
    const cli = await run(n.name, ['sleep', '600']);
    await serve(null, '10.231.141.1:18643');

    assert.equal(await fetchFrom(cli, 'http://203.0.113.2/'), 'ok', 'listed: tcp to the internet passes');
    assert.equal(await fetchFrom(cli, 'http://203.0.113.2:81/'), 'refused', 'deny wins over allow');
    assert.equal(await ping(cli, '203.0.113.2', 1), false, 'not listed: icmp');
    assert.equal(await fetchFrom(cli, 'http://10.231.249.2/'), 'refused', 'not listed: the LAN');
    assert.equal(await fetchFrom(cli, 'http://10.231.249.1:18641/'), 'refused', "not listed: the host's LAN address");
    assert.equal(await fetchFrom(cli, `http://${await containerIp(srv, n.name)}/`), 'ok', 'the own subnet stays reachable');
    assert.ok(await ping(cli, '10.231.141.1'), 'the gateway answers ping');
    assert.equal(await fetchFrom(cli, 'http://10.231.141.1:18643/'), 'ok', 'and serves on the gateway address');
    assert.equal(await fetchFrom(cli, `http://${srv}/`), 'ok', "Docker's embedded DNS resolves the container's name (no upstream is listed)");
    assert.ok(await lan.fetch('http://10.231.249.1:18642/'), 'the LAN opens a connection to a published port: the replies flow');
    assert.equal((await suite.dryRun()).code, 0);
  });

  test('IPv6: a denied port is refused, others pass; an allow-list without IPv6 items refuses IPv6 whole, not IPv4', async () => {
    await inet.exec(['ip', '-6', 'route', 'replace', 'fd00:231::/32', 'via', inet.hostIp6]);
    const deny = await createNetwork(['10.231.142.0/24', 'fd00:231:142::/64'], '--ipv6', '-o', `ledgernet.egress_deny=2001:db8:231::/64:tcp/81`);
    const allow = await createNetwork(['10.231.143.0/24', 'fd00:231:143::/64'], '--ipv6', '-o', 'ledgernet.egress_allow=203.0.113.0/30');
    const d1 = await run(deny.name, ['sleep', '600']);
    const d2 = await run(deny.name, ['sh', '-c', SERVE]);
    const a1 = await run(allow.name, ['sleep', '600']);
    const peer6 = (await containerEndpoint(d2, deny.name)).GlobalIPv6Address;
    const url6 = (port: number) => `http://[${inet.ip6}]:${port}/`;

    assert.equal(await fetchFrom(d1, url6(80)), 'ok', 'IPv6 to the internet passes');
    assert.equal(await fetchFrom(d1, url6(81)), 'refused', 'the denied IPv6 port is refused');
    assert.equal(await fetchFrom(d1, `http://[${peer6}]/`), 'ok', 'the own IPv6 subnet stays reachable');
    assert.ok(await ping(d1, 'fd00:231:142::1'), 'the IPv6 gateway answers');
    assert.equal(await fetchFrom(a1, url6(80)), 'refused', 'allow-list with IPv4 items only: IPv6 is refused');
    assert.equal(await fetchFrom(a1, 'http://203.0.113.2/'), 'ok', 'IPv4 as listed passes');
    assert.ok(await ping(a1, 'fd00:231:143::1'), 'the IPv6 gateway answers');
    assert.equal((await suite.dryRun()).code, 0);
  });

  test('bad input is refused by docker network create, naming the item', { skip: fw !== FIREWALLS[0] && 'the same for every backend' }, async () => {
    const cases: [string[], RegExp][] = [
      [['--subnet', '10.231.144.0/24', '-o', 'ledgernet.egress_deny=10.0.0.0/8,lan'], /ledgernet\.egress_deny=10\.0\.0\.0\/8,lan is invalid: item "lan" is not an IPv4 or IPv6 address or CIDR/],
      [['--subnet', '10.231.144.0/24', '-o', 'ledgernet.egress_allow=203.0.113.0/24:tcp/99999'], /item "203\.0\.113\.0\/24:tcp\/99999" has port 99999/],
      [['--subnet', '10.231.144.0/24', '-o', 'ledgernet.egress_deny=fc00::/7'], /item fc00::\/7 is IPv6, but the network has no IPv6 subnet/],
      [['--subnet', '10.231.144.0/24', '--internal', '-o', 'ledgernet.egress_allow=203.0.113.0/24'], /cannot be used with --internal/],
    ];
    for (const [args, msg] of cases) {
      const name = track.network(uniqueName('lnegbad'));
      const r = await docker(['network', 'create', '--driver', 'ledgernet', ...args, name]);
      assert.notEqual(r.exitCode, 0, `accepted: ${args.join(' ')}`);
      assert.match(r.stderr, msg);
    }
  });
});
