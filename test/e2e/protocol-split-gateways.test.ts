// Docker 28+ with a container's IPv4 and IPv6 gateways on two ledgernet endpoints, over the real
// socket of a running daemon (temp socket and state dir; this machine's Docker 20.10 never sends
// these calls, so the request bodies are fixtures/docker-protocol/, built from moby's wire structs)
// and with real traffic, once per firewall backend. The test plays Docker's part: it moves both
// veth peers into one namespace it makes (the "container", 10.231.244.2 on the IPv4-only network,
// 10.231.245.2 and fd00:231:245::2 on the dual-stack one) and runs a server there that answers
// with the address it was reached at. A client in an "outside" namespace (10.231.252.2,
// fd00:231:252::2, linked to the host by a veth) connects to the host's addresses. What a user sees:
// - the IPv4 gateway (flagged `no_proxy_6to4`) publishes the IPv4 side of the port, the IPv6
//   gateway the IPv6 side: host:18080 reaches 10.231.244.2, [host IPv6]:18080 reaches
//   fd00:231:245::2;
// - every repeat (v29's Program on each role change, v28's Revoke/Program flip) writes no event
//   for a repeat and leaves one DNAT rule per family;
// - when the IPv6 gateway leaves, the IPv6 side goes; when the IPv4 gateway leaves, the port
//   moves: both families to the other endpoint;
// - an IPv6 gateway without an IPv6 address is refused, naming why, and nothing is written;
// - after teardown no rule, link or namespace is left.
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { FIREWALLS, ipv6ForwardingOn } from '../helpers/backend-suite.ts';
import { readFixture } from '../helpers/fixtures.ts';
import { ledgernetCli, pluginCall, startDaemon, type DaemonHandle, type PluginReply } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/docker.ts';
import { createOutside, type Outside } from '../helpers/outside.ts';
import { rulesSave } from '../helpers/rules.ts';

const LINKS = ['lnb-28a0c0de28a', 'lnv-e28a0c0de28', 'lnp-e28a0c0de28', 'lnb-29b0c0de29b', 'lnv-e29b0c0de29', 'lnp-e29b0c0de29'];
const CTR = `lnctr-${process.pid}`;
// A dual-stack server on port 80 that answers with the (IPv4 or IPv6) address it was reached at.
const SERVER = `
import socket
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0); s.bind(('::', 80)); s.listen(16)
while True:
    c, a = s.accept()
    try:
        c.recv(4096); at = c.getsockname()[0].replace('::ffff:', ''); body = 'at ' + at + '\\n'
        c.sendall(('HTTP/1.0 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n%s' % (len(body), body)).encode())
    finally:
        c.close()
`;

let daemon: DaemonHandle | undefined;
let dir: string;
let outside: Outside | undefined;
let server: ReturnType<typeof startServer> | undefined;
let restoreForwarding: (() => Promise<void>) | undefined;

function send(method: string, name: string): Promise<PluginReply> {
  if (!daemon) throw new Error('no daemon');
  return pluginCall(`NetworkDriver.${method}`, readFixture(`docker-protocol/${name}.json`), daemon.socket);
}

async function ok(method: string, name: string): Promise<unknown> {
  const r = await send(method, name);
  assert.equal(r.status, 200, `${method} ${name}: ${r.text}\n${daemon?.logs().slice(-2000)}`);
  return r.json;
}

async function eventCount(): Promise<number> {
  const r = await ledgernetCli(['events', '--json', '--state-dir', join(dir, 'state')]);
  assert.equal(r.exitCode, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l.trim() !== '').length;
}

const startServer = () => execa('ip', ['netns', 'exec', CTR, 'python3', '-c', SERVER], { reject: false, stdin: 'ignore' });

const inCtr = (args: readonly string[]) => execa('ip', ['-n', CTR, ...args], { stdin: 'ignore' });

/** Docker's part after Join: the veth peer into the container's namespace, with its addresses and default routes. */
async function plugIn(peer: string, addrs: readonly string[], gw4: string, metric: number, gw6: string | null): Promise<void> {
  await execa('ip', ['link', 'set', peer, 'netns', CTR], { stdin: 'ignore' });
  for (const a of addrs) await inCtr(['addr', 'add', a, 'dev', peer, ...(a.includes(':') ? ['nodad'] : [])]);
  await inCtr(['link', 'set', peer, 'up']);
  await inCtr(['route', 'replace', 'default', 'via', gw4, 'metric', String(metric)]);
  if (gw6) await inCtr(['-6', 'route', 'replace', 'default', 'via', gw6]);
}

/** Where host port 18080 leads over IPv4 and over IPv6 from the outside namespace ('' : nowhere). */
async function reached(): Promise<{ v4: string; v6: string }> {
  const o = outside as Outside;
  const at = async (url: string) => {
    const r = await o.exec(['python3', '-c', `import urllib.request,sys\ntry: print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode().strip())\nexcept Exception: print('')`, url]);
    return r.stdout.trim().replace(/^at /, '');
  };
  return { v4: await at(`http://${o.hostIp}:18080/`), v6: await at(`http://[${o.hostIp6}]:18080/`) };
}

async function waitReached(want: { v4: string; v6: string }, what: string): Promise<void> {
  let last = { v4: '?', v6: '?' };
  await waitFor(async () => {
    last = await reached();
    return last.v4 === want.v4 && last.v6 === want.v6;
  }, { timeoutMs: 15_000, what: `${what} (last seen: ${JSON.stringify(last)})` }).catch(() => assert.deepEqual(last, want, what));
}

/** The DNAT rules (iptables backend) or map elements (nftables) for host port 18080, of both families. */
async function published(fw: string): Promise<string[]> {
  if (fw === 'iptables') {
    const lines = [...(await rulesSave('iptables-save', ['-t', 'nat'])).split('\n'), ...(await rulesSave('ip6tables-save', ['-t', 'nat'])).split('\n')];
    return lines.filter((l) => l.includes('--dport 18080') && l.includes('DNAT')).map((l) => /--to-destination (\S+)/.exec(l)?.[1] ?? l);
  }
  const r = await execa('nft', ['list', 'table', 'inet', 'ledgernet'], { reject: false, stdin: 'ignore' });
  return r.stdout.split('\n').filter((l) => l.includes('18080'));
}

async function linksLeft(): Promise<string[]> {
  const r = await execa('ip', ['-j', 'link', 'show'], { stdin: 'ignore' });
  return (JSON.parse(r.stdout || '[]') as { ifname: string }[]).map((l) => l.ifname).filter((n) => LINKS.includes(n));
}

async function teardown(): Promise<void> {
  if (daemon) {
    for (const [m, f] of [
      ['RevokeExternalConnectivity', 'revoke'],
      ['RevokeExternalConnectivity', 'revoke.v29-dual'],
      ['Leave', 'leave'],
      ['Leave', 'leave.v29-dual'],
      ['DeleteEndpoint', 'deleteendpoint'],
      ['DeleteEndpoint', 'deleteendpoint.v29-dual'],
      ['DeleteNetwork', 'deletenetwork'],
      ['DeleteNetwork', 'deletenetwork.v29-dual'],
    ] as const) {
      await send(m, f).catch(() => undefined);
    }
  }
  server?.kill('SIGKILL');
  await server?.catch(() => undefined);
  server = undefined;
  await execa('ip', ['netns', 'del', CTR], { reject: false });
  await waitFor(async () => (await linksLeft()).length === 0, { timeoutMs: 15_000, what: 'the test links to be gone' }).catch(async (e: unknown) => {
    for (const l of LINKS) await execa('ip', ['link', 'del', l], { reject: false });
    throw e;
  });
}

before(async () => {
  restoreForwarding = await ipv6ForwardingOn();
  outside = await createOutside('10.231.252', 'fd00:231:252');
});

after(async () => {
  try {
    await outside?.remove();
  } finally {
    await restoreForwarding?.();
  }
});

for (const fw of FIREWALLS) describe(`Docker 28+ split IPv4/IPv6 gateways publish each family's side (--firewall ${fw})`, () => {
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ln-split-'));
    daemon = await startDaemon({ socket: join(dir, 'plugin.sock'), stateDir: join(dir, 'state'), extraArgs: ['--reconcile-interval', '0', '--firewall', fw] });
  });
  afterEach(teardown);
  after(async () => {
    await teardown();
    await daemon?.stop();
    daemon = undefined;
    await rm(dir, { recursive: true, force: true });
    assert.deepEqual(await published(fw), [], 'no rule for the port is left');
  });

  test('v29: IPv4 side through the IPv4 gateway, IPv6 side through the IPv6 gateway; repeats idempotent; the port moves when gateways leave', async () => {
    await execa('ip', ['netns', 'add', CTR]);
    await inCtr(['link', 'set', 'lo', 'up']);
    await ok('CreateNetwork', 'createnetwork.v28');
    await ok('CreateEndpoint', 'createendpoint.v28');
    await ok('Join', 'join.v28');
    await plugIn('lnp-e28a0c0de28', ['10.231.244.2/24'], '10.231.244.1', 100, null);
    server = startServer();
    await ok('ProgramExternalConnectivity', 'program.v29');
    await waitReached({ v4: '10.231.244.2', v6: '' }, 'one IPv4-only gateway: IPv4 only');

    // The dual-stack network joins. Docker 29 updates the old gateway first (now IPv4 only: the
    // flag), then programs the new IPv6 gateway (no flag), with the same ports.
    await ok('CreateNetwork', 'createnetwork.v29-dual');
    await ok('CreateEndpoint', 'createendpoint.v29-dual');
    await ok('Join', 'join.v29-dual');
    await plugIn('lnp-e29b0c0de29', ['10.231.245.2/24', 'fd00:231:245::2/64'], '10.231.245.1', 200, 'fd00:231:245::1');
    await ok('ProgramExternalConnectivity', 'program.v29-no-proxy-6to4');
    await ok('ProgramExternalConnectivity', 'program.v29-dual');
    await waitReached({ v4: '10.231.244.2', v6: 'fd00:231:245::2' }, 'split: IPv4 to the IPv4 gateway, IPv6 to the IPv6 gateway');
    if (fw === 'iptables') assert.deepEqual((await published(fw)).sort(), ['10.231.244.2:80', '[fd00:231:245::2]:80'], 'one DNAT rule per family');
    const split = await published(fw);

    // Repeats, in every order Docker 28 and 29 send them: no event, nothing changes.
    const settled = await eventCount();
    for (const f of ['program.v29-dual', 'program.v29-no-proxy-6to4', 'program.v29', 'program.v28', 'program.v29-dual']) {
      await ok('ProgramExternalConnectivity', f);
    }
    assert.equal(await eventCount(), settled, 'repeats to either gateway write no event');
    assert.deepEqual(await published(fw), split);
    // v28's flip on the IPv4 gateway: Revoke, then Program with the flag.
    await ok('RevokeExternalConnectivity', 'revoke');
    await ok('ProgramExternalConnectivity', 'program.v28-no-proxy-6to4');
    await waitReached({ v4: '10.231.244.2', v6: 'fd00:231:245::2' }, 'after the v28 flip: as before');
    assert.deepEqual(await published(fw), split, 'the flip leaves the same rules');

    // The IPv6 gateway leaves: its side goes; the IPv4 gateway is programmed as the only one.
    await ok('RevokeExternalConnectivity', 'revoke.v29-dual');
    await ok('ProgramExternalConnectivity', 'program.v29');
    await waitReached({ v4: '10.231.244.2', v6: '' }, 'the IPv6 gateway left: IPv4 only');
    // It comes back as the IPv6 gateway, then the IPv4 gateway leaves: the port moves, both families.
    await ok('ProgramExternalConnectivity', 'program.v29-no-proxy-6to4');
    await ok('ProgramExternalConnectivity', 'program.v29-dual');
    await waitReached({ v4: '10.231.244.2', v6: 'fd00:231:245::2' }, 'split again');
    await ok('RevokeExternalConnectivity', 'revoke');
    await ok('Leave', 'leave');
    await ok('ProgramExternalConnectivity', 'program.v29-dual');
    await waitReached({ v4: '10.231.245.2', v6: 'fd00:231:245::2' }, 'the IPv4 gateway left: both families through the dual-stack endpoint');
    if (fw === 'iptables') assert.deepEqual((await published(fw)).sort(), ['10.231.245.2:80', '[fd00:231:245::2]:80']);
  });

  test('an IPv6 gateway without an IPv6 address is refused, naming why; nothing is written', async () => {
    await ok('CreateNetwork', 'createnetwork.v28');
    await ok('CreateEndpoint', 'createendpoint.v28');
    await ok('Join', 'join.v28');
    await ok('CreateNetwork', 'createnetwork.v29-dual');
    await ok('CreateEndpoint', 'createendpoint.v29-dual');
    await ok('Join', 'join.v29-dual');
    // The dual-stack endpoint holds the port; the IPv4-only one is then programmed without the flag
    // (as the IPv6 gateway), which it cannot be.
    await ok('ProgramExternalConnectivity', 'program.v29-dual');
    const before = await eventCount();
    const r = await send('ProgramExternalConnectivity', 'program.v29');
    assert.notEqual(r.status, 200, r.text);
    assert.match(String((r.json as { Err?: unknown } | undefined)?.Err), /is programmed as the container's IPv6 gateway .* but it has no IPv6 address: its network needs --ipv6/);
    assert.equal(await eventCount(), before, 'nothing is written');
  });
});
