// A published port that a program on the host already listens on, with the real dockerd: Docker's
// bridge driver refuses it (its docker-proxy cannot bind: "address already in use"), and so must
// ledgernet, or its DNAT rules take the program's traffic. A real host program (python3 -m
// http.server, started and stopped here) listens on 127.0.0.1 and on 0.0.0.0; `docker run -p` on
// a ledgernet network fails naming the port, the protocol and the address; the program still
// answers its own connections; no DNAT rule, no endpoint and no programmed-ports event is left.
// The bridge driver's answer to the same run is printed for comparison.
// And the other way round: a port a ledgernet container publishes is held by the daemon (a
// listening TCP socket, a bound UDP one, as Docker's bridge driver holds its own), so a bridge
// container or a host program that asks for it later is refused, across a restart of the worker
// and of the whole daemon, until the container is removed; and a port a program takes where the
// check cannot see it (as between the check and the bind) fails the run naming it, nothing kept.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { after, afterEach, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { TEST_IMAGE, cleanupAll, docker, track, uniqueName, waitFor } from '../helpers/docker.ts';
import { kill9AndRestart, ledgernetCli, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { assertNoLeaks, waitNoLeaks } from '../helpers/leaks.ts';

let daemon: DaemonHandle;
const programs: ChildProcess[] = [];

before(async () => {
  await assertNoLeaks();
  daemon = await startDaemon({ extraArgs: ['--reconcile-interval', '1'] });
});

afterEach(async () => {
  for (const p of programs.splice(0)) p.kill('SIGKILL');
  await cleanupAll();
});

after(async () => {
  await cleanupAll();
  await stopAllDaemons();
});

/** python3's http.server on `bind`:`port`, a program of the host; resolves once it answers. */
async function hostProgram(bind: string, port: number): Promise<void> {
  const p = spawn('python3', ['-m', 'http.server', String(port), '--bind', bind], { stdio: 'ignore', cwd: '/tmp' });
  programs.push(p);
  await waitFor(async () => (await answers(port)) || null, { timeoutMs: 10_000, what: `python3 http.server on ${bind}:${port}` });
}

/** Whether the host program (not a container) answers on 127.0.0.1:port: http.server lists a directory. */
async function answers(port: number): Promise<boolean> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(3_000) });
    return r.status === 200 && (await r.text()).includes('Directory listing');
  } catch {
    return false;
  }
}

/** Rules of either firewall backend that name the port. */
async function rulesNaming(port: number): Promise<string[]> {
  const texts = await Promise.all([
    execa('iptables-save', ['-t', 'nat'], { reject: false, stdin: 'ignore' }).then((r) => r.stdout),
    execa('nft', ['list', 'ruleset'], { reject: false, stdin: 'ignore' }).then((r) => r.stdout),
  ]);
  return texts.flatMap((t) => t.split('\n')).filter((l) => new RegExp(`dport ${port}\\b|to[: -]+[\\d.]*:${port}\\b`).test(l) && /ledgernet|LEDGERNET|lnb-/i.test(l));
}

async function eventTypes(): Promise<string[]> {
  const r = await ledgernetCli(['events', '--json', '--state-dir', daemon.stateDir]);
  assert.equal(r.exitCode, 0, r.stderr);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => (JSON.parse(l) as { type: string }).type);
}

describe('a published port a program on the host listens on', () => {
  for (const [bind, port, publish] of [
    ['127.0.0.1', 18701, '18701:80'],
    ['0.0.0.0', 18702, '127.0.0.1:18702:80'],
  ] as const) {
    test(`host program on ${bind}:${port}, docker run -p ${publish}: refused naming the port, the program keeps its traffic, nothing is left`, async () => {
      await hostProgram(bind, port);
      const net = track.network(uniqueName('lnhp'));
      const created = await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.77.0/24', net]);
      assert.equal(created.exitCode, 0, created.stderr);
      const netId = (await docker(['network', 'inspect', '-f', '{{.Id}}', net], { check: true })).stdout.trim();
      const bridge = `lnb-${netId.slice(0, 11)}`;

      const name = track.container(uniqueName('hp'));
      const r = await docker(['run', '-d', '--name', name, '--network', net, '-p', publish, TEST_IMAGE, 'sleep', '600']);
      assert.notEqual(r.exitCode, 0, `docker run must fail: the port is the host program's\n${daemon.logs().slice(-2000)}`);
      assert.match(r.stderr, new RegExp(`NetworkDriver\\.ProgramExternalConnectivity: host port tcp/${port} on (every host address|\\S+) is in use: a program on the host listens on tcp ${bind.replace(/\./g, '\\.')}:${port}\\b`));
      assert.doesNotMatch(r.stderr, /ProgramExternalConnectivity: (NetworkDriver\.)?ProgramExternalConnectivity/, 'the method is named once');
      console.log(`ledgernet: ${r.stderr.trim().split('\n')[0]}`);

      assert.ok(await answers(port), 'the host program still gets its own connections');
      assert.deepEqual(await rulesNaming(port), [], 'no DNAT rule for the port');
      const types = await eventTypes();
      assert.ok(!types.includes('endpoint.external.programmed'), `no ports were recorded as published: ${types.join(', ')}`);
      // Docker removes the endpoint of the failed run; ledgernet keeps none and no veth on the bridge.
      await waitFor(
        async () => {
          const links = JSON.parse((await execa('ip', ['-j', 'link', 'show', 'master', bridge])).stdout || '[]') as unknown[];
          return links.length === 0 || null;
        },
        { timeoutMs: 15_000, what: `no veth left on ${bridge}` },
      );
      assert.equal((await docker(['network', 'inspect', '-f', '{{len .Containers}}', net], { check: true })).stdout.trim(), '0');

      // Docker's own bridge driver on the same run, for comparison.
      const b = track.container(uniqueName('hpbr'));
      const br = await docker(['run', '-d', '--name', b, '-p', publish, TEST_IMAGE, 'sleep', '600']);
      console.log(`bridge driver: exit ${br.exitCode}: ${br.stderr.trim().split('\n')[0]}`);
      assert.notEqual(br.exitCode, 0, 'the bridge driver refuses it too');
      assert.ok(await answers(port), 'the host program still answers');
    });
  }

  test('with the program gone, the same port is published and reaches the container', async () => {
    const net = track.network(uniqueName('lnhp'));
    assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.77.0/24', net])).exitCode, 0);
    const name = track.container(uniqueName('hp'));
    const serve = 'mkdir -p /www && echo ok >/www/index.html && httpd -p 80 -h /www && exec sleep 600';
    const r = await docker(['run', '-d', '--name', name, '--network', net, '-p', '18701:80', TEST_IMAGE, 'sh', '-c', serve]);
    assert.equal(r.exitCode, 0, r.stderr);
    const body = await waitFor(
      async () => {
        const w = await execa('/bin/busybox', ['timeout', '5', '/bin/busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:18701/'], { reject: false, stdin: 'ignore' });
        return w.exitCode === 0 ? w.stdout.trim() : null;
      },
      { timeoutMs: 15_000, what: 'the container answers on 127.0.0.1:18701' },
    );
    assert.equal(body, 'ok');
    await cleanupAll();
    await waitNoLeaks();
  });
});

/** What a bind of `proto` `0.0.0.0:port` by this process gets: 'ok' (then closed again) or the error code. */
async function nodeBind(proto: 'tcp' | 'udp', port: number): Promise<string> {
  if (proto === 'tcp') {
    const server = createServer();
    return new Promise((resolve) => {
      server.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      server.listen({ host: '0.0.0.0', port }, () => server.close(() => resolve('ok')));
    });
  }
  const socket = createSocket('udp4');
  return new Promise((resolve) => {
    socket.once('error', (e: NodeJS.ErrnoException) => {
      socket.close();
      resolve(e.code ?? e.message);
    });
    socket.bind({ address: '0.0.0.0', port }, () => socket.close(() => resolve('ok')));
  });
}

/** The same from python3 (SO_REUSEADDR set, TCP listening): 'ok' or the errno's name. */
async function pythonBind(proto: 'tcp' | 'udp', port: number): Promise<string> {
  const script = [
    'import errno, socket, sys',
    `s = socket.socket(socket.AF_INET, socket.${proto === 'tcp' ? 'SOCK_STREAM' : 'SOCK_DGRAM'})`,
    's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
    'try:',
    `    s.bind(('0.0.0.0', ${port}))`,
    ...(proto === 'tcp' ? ['    s.listen(16)'] : []),
    "    print('ok')",
    'except OSError as e:',
    '    print(errno.errorcode.get(e.errno, str(e)))',
  ].join('\n');
  return (await execa('python3', ['-c', script], { stdin: 'ignore' })).stdout.trim();
}

/** Every bind of `ports` from Node and from python3: `tcp/18731 node EADDRINUSE`, one line each. */
async function binds(ports: readonly (readonly ['tcp' | 'udp', number])[]): Promise<string[]> {
  const out: string[] = [];
  for (const [proto, port] of ports) {
    out.push(`${proto}/${port} node ${await nodeBind(proto, port)}`, `${proto}/${port} python3 ${await pythonBind(proto, port)}`);
  }
  return out;
}

const refusedAll = (ports: readonly (readonly ['tcp' | 'udp', number])[]) => ports.flatMap(([proto, port]) => ['node', 'python3'].map((by) => `${proto}/${port} ${by} EADDRINUSE`));
const allowedAll = (ports: readonly (readonly ['tcp' | 'udp', number])[]) => ports.flatMap(([proto, port]) => ['node', 'python3'].map((by) => `${proto}/${port} ${by} ok`));

describe('a port a ledgernet container publishes is held by the daemon', () => {
  test('a bridge container and host programs cannot take it, across a worker and a daemon restart, until the container is removed', async () => {
    const net = track.network(uniqueName('lnhp'));
    assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.78.0/24', net])).exitCode, 0);
    const br = track.network(uniqueName('brhp'));
    assert.equal((await docker(['network', 'create', '--driver', 'bridge', '--subnet', '10.231.79.0/24', br])).exitCode, 0);
    const name = track.container(uniqueName('hp'));
    const serve = 'mkdir -p /www && echo held >/www/index.html && httpd -p 80 -h /www && exec sleep 600';
    // 18731/tcp and 18732/udp fixed; container port 82 on a host port ledgernet chooses (49153 up).
    const r = await docker(['run', '-d', '--name', name, '--network', net, '-p', '18731:80', '-p', '18732:81/udp', '-p', '82', TEST_IMAGE, 'sh', '-c', serve]);
    assert.equal(r.exitCode, 0, r.stderr);
    const st = await ledgernetCli(['status', '--json', '--state-dir', daemon.stateDir]);
    const rows = (JSON.parse(st.stdout) as { ports: { proto: string; port: number; hostPorts: [number, number] }[] }).ports;
    const chosen = rows.find((p) => p.proto === 'tcp' && p.port === 82)?.hostPorts[0];
    assert.ok(chosen !== undefined && chosen >= 49153, `a host port chosen for 82/tcp: ${st.stdout}`);
    const ports = [['tcp', 18731], ['udp', 18732], ['tcp', chosen]] as const;
    const reservations = (JSON.parse(st.stdout) as { reservations: { name: string; state: string }[] }).reservations;
    assert.deepEqual(reservations.map((x) => `${x.name} ${x.state}`).sort(), ['tcp 0.0.0.0:18731 held', `tcp 0.0.0.0:${chosen} held`, 'udp 0.0.0.0:18732 held'].sort(), 'status --json lists them held');
    const dry = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', daemon.stateDir]);
    assert.equal(dry.exitCode, 0, `nothing pending while they are held: ${dry.stdout}`);

    const page = async () => {
      const w = await execa('/bin/busybox', ['timeout', '5', '/bin/busybox', 'wget', '-q', '-O', '-', 'http://127.0.0.1:18731/'], { reject: false, stdin: 'ignore' });
      return w.exitCode === 0 ? w.stdout.trim() : null;
    };
    assert.equal(await waitFor(page, { timeoutMs: 15_000, what: 'the container to answer on 127.0.0.1:18731' }), 'held');

    const other = track.container(uniqueName('hpbr'));
    const taken = await docker(['run', '-d', '--name', other, '--network', br, '-p', '18731:80', TEST_IMAGE, 'sleep', '600']);
    console.log(`bridge driver on a port ledgernet publishes: exit ${taken.exitCode}: ${taken.stderr.trim().split('\n')[0]}`);
    assert.notEqual(taken.exitCode, 0, 'the bridge driver cannot bind a port ledgernet publishes');
    assert.match(taken.stderr, /address already in use/);
    await docker(['rm', '-f', other]);
    assert.deepEqual(await binds(ports), refusedAll(ports), 'host programs cannot bind the published ports');

    // The worker dies (the supervisor starts another), then the whole daemon: each holds them again.
    const old = await daemon.kill9Worker();
    await daemon.waitWorker(old);
    await waitFor(async () => JSON.stringify(await binds(ports)) === JSON.stringify(refusedAll(ports)), { timeoutMs: 10_000, what: 'the new worker to hold the ports' });
    daemon = await kill9AndRestart(daemon);
    await waitFor(async () => JSON.stringify(await binds(ports)) === JSON.stringify(refusedAll(ports)), { timeoutMs: 10_000, what: 'the restarted daemon to hold the ports' });
    assert.equal(await waitFor(page, { timeoutMs: 15_000, what: 'the container to answer on 127.0.0.1:18731 after the restart' }), 'held', 'the published port still reaches the container');

    assert.equal((await docker(['rm', '-f', name])).exitCode, 0);
    await waitFor(async () => JSON.stringify(await binds(ports)) === JSON.stringify(allowedAll(ports)), { timeoutMs: 10_000, what: 'the ports to be free once the container is gone' });
    const later = await docker(['run', '-d', '--name', track.container(uniqueName('hpbr')), '--network', br, '-p', '18731:80', TEST_IMAGE, 'sleep', '600']);
    assert.equal(later.exitCode, 0, `the bridge driver gets the port now: ${later.stderr}`);
    await cleanupAll();
    await waitNoLeaks();
  });

  test('a port a program takes after the check (bound, not listening: the check cannot see it): docker run fails naming it, nothing is kept', async () => {
    // python3 holds 0.0.0.0:18741 with a TCP socket that is bound and not listening, as a program
    // would in the instant between the check of the host's listeners and the daemon's bind.
    const holder = spawn('python3', ['-c', "import socket, sys\ns = socket.socket()\ns.bind(('0.0.0.0', 18741))\nprint('bound', flush=True)\nsys.stdin.read()"], { stdio: ['pipe', 'pipe', 'ignore'] });
    programs.push(holder);
    let said = '';
    holder.stdout?.on('data', (d: Buffer) => (said += d.toString()));
    await waitFor(() => said.includes('bound'), { what: 'python3 to bind 18741' });
    const net = track.network(uniqueName('lnhp'));
    assert.equal((await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', '10.231.80.0/24', net])).exitCode, 0);
    const r = await docker(['run', '-d', '--name', track.container(uniqueName('hp')), '--network', net, '-p', '18742:80', '-p', '18741:81', TEST_IMAGE, 'sleep', '600']);
    assert.notEqual(r.exitCode, 0, `docker run must fail: the port could not be held\n${daemon.logs().slice(-2000)}`);
    console.log(`ledgernet: ${r.stderr.trim().split('\n')[0]}`);
    assert.match(r.stderr, /NetworkDriver\.ProgramExternalConnectivity: could not publish the ports of endpoint [0-9a-f]{12}: port\.reserve tcp 0\.0\.0\.0:18741 \(missing: published to 10\.231\.80\.\d+:81\): another program already listens on that host address and port; nothing was kept/);
    assert.deepEqual([...(await rulesNaming(18741)), ...(await rulesNaming(18742))], [], 'no DNAT rule is left for either port');
    const types = await eventTypes();
    assert.ok(types.lastIndexOf('endpoint.external.revoked') > types.lastIndexOf('endpoint.external.programmed'), `the ports were revoked: ${types.join(', ')}`);
    assert.deepEqual(await binds([['tcp', 18742]]), allowedAll([['tcp', 18742]]), 'the port that was held for the call is released');
    await cleanupAll();
    await waitNoLeaks();
  });
});
