// Ports published on the IPv6 loopback (`-p [::1]:H:C`) with the real dockerd: IPv6 has no
// route_localnet, so the kernel cannot DNAT them, and ledgernet serves them with its in-daemon
// userland proxy (as Docker does with docker-proxy). Reached from the host with busybox wget and
// node sockets; the container sees the host (its network's gateway) as the source; a second
// container on the same port and a port another program holds get a clear error with nothing
// kept; `docker rm -f` closes the port; after a SIGKILL of the daemon the next one serves it again.
// UDP goes through per-client flows, to an IPv4-only network too (6→4). Once per firewall backend
// (LEDGERNET_TEST_FIREWALLS=iptables runs one): the proxy is the same, the rules around it differ. Servers that report the
// client's address run in the container's network namespace (nsenter), started and stopped here.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { after, afterEach, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { TEST_IMAGE, cleanupAll, docker, track, uniqueName, waitFor, waitServing } from '../helpers/docker.ts';
import { kill9AndRestart, ledgernetCli, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { assertNoLeaks, waitNoLeaks } from '../helpers/leaks.ts';
import { FIREWALLS } from '../helpers/backend-suite.ts';

let daemon: DaemonHandle;
const servers: ChildProcess[] = [];

before(async () => {
  await assertNoLeaks();
});

afterEach(async () => {
  for (const s of servers.splice(0)) s.kill('SIGKILL');
  await cleanupAll();
});

after(async () => {
  await cleanupAll();
  await stopAllDaemons();
});

async function createNetwork(n: number, ipv6: boolean): Promise<string> {
  const name = track.network(uniqueName('lnproxy'));
  const v6 = ipv6 ? ['--ipv6', '--subnet', `fd00:231:${n}::/64`] : [];
  const r = await docker(['network', 'create', '--driver', 'ledgernet', '--subnet', `10.231.${n}.0/24`, ...v6, name]);
  assert.equal(r.exitCode, 0, `network create failed: ${r.stderr}\n${daemon.logs().slice(-2000)}`);
  return name;
}

const SERVE = 'mkdir -p /www && echo ok >/www/index.html && httpd -p 80 -h /www && exec sleep 600';

async function run(network: string, ...ports: string[]): Promise<{ name: string; exitCode: number; stderr: string }> {
  const name = track.container(uniqueName('proxy6'));
  const r = await docker(['run', '-d', '--name', name, '--network', network, ...ports.flatMap((p) => ['-p', p]), TEST_IMAGE, 'sh', '-c', SERVE]);
  return { name, exitCode: r.exitCode, stderr: r.stderr };
}

async function started(network: string, ...ports: string[]): Promise<string> {
  const r = await run(network, ...ports);
  assert.equal(r.exitCode, 0, `docker run failed: ${r.stderr}\n${daemon.logs().slice(-3000)}`);
  await waitServing(r.name, 80);
  return r.name;
}

/** busybox wget from the host; true when the container's httpd answered "ok". */
async function wgetFromHost(url: string): Promise<boolean> {
  const r = await execa('/bin/busybox', ['timeout', '5', '/bin/busybox', 'wget', '-q', '-O', '-', url], { reject: false, stdin: 'ignore' });
  return r.exitCode === 0 && r.stdout.trim() === 'ok';
}

/** Whether something accepts a TCP connection on [::1]:port. */
async function listening(port: number): Promise<boolean> {
  const s = connect({ host: '::1', port });
  return new Promise((resolve) => {
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** Runs node `code` in the container's network namespace (a server that reports its client). */
async function inContainer(container: string, code: string, ready: string): Promise<void> {
  const pid = (await docker(['inspect', '-f', '{{.State.Pid}}', container], { check: true })).stdout.trim();
  const p = spawn('nsenter', ['-t', pid, '-n', process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  servers.push(p);
  let out = '';
  p.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  await waitFor(() => out.includes(ready), { what: `the server in ${container}`, timeoutMs: 10_000 });
}

const TCP_WHOAMI = "require('net').createServer((s) => s.end('from ' + s.remoteAddress)).listen(81, '::', () => console.log('up'))";
const UDP_WHOAMI = "const u = require('dgram').createSocket('udp4'); u.on('message', (m, r) => u.send('from ' + r.address + ': ' + m, r.port, r.address)); u.bind(5353, () => console.log('up'))";

async function tcpRead(port: number): Promise<string> {
  const s = connect({ host: '::1', port });
  let text = '';
  s.setEncoding('utf8');
  s.on('data', (c: string) => (text += c));
  await once(s, 'end');
  s.destroy();
  return text;
}

async function dryRun(): Promise<{ code: number; out: string }> {
  const r = await ledgernetCli(['reconcile', '--dry-run', '--state-dir', daemon.stateDir]);
  return { code: r.exitCode, out: r.stdout + r.stderr };
}

async function status(): Promise<string> {
  return (await ledgernetCli(['status', '--state-dir', daemon.stateDir])).stdout;
}

for (const fw of FIREWALLS) describe(`ports on [::1] through the in-daemon proxy (real dockerd, --firewall ${fw})`, () => {
  before(async () => {
    daemon = await startDaemon({ extraArgs: ['--reconcile-interval', '0', '--firewall', fw] });
  });
  after(async () => {
    await cleanupAll();
    await daemon.stop();
    await waitNoLeaks();
  });

  test('reached from the host on [::1] with the host as source; the same port again is refused; rm -f closes it; SIGKILL (whole daemon, then the worker alone) and restart serve it again', async () => {
    const net = await createNetwork(160, true);
    const c1 = await started(net, '[::1]:18590:80', '[::1]:18591:81');
    assert.ok(await wgetFromHost('http://[::1]:18590/'), 'busybox wget on the host reaches the container through [::1]');
    await inContainer(c1, TCP_WHOAMI, 'up');
    assert.equal(await tcpRead(18591), 'from fd00:231:160::1', 'the container sees the host (its network gateway) as the source');
    assert.match(await status(), /tcp \[::1\]:18590\s+\[fd00:231:160::2\]:80\s+\S+\s+\d+\s+listening/);
    assert.equal((await dryRun()).code, 0, 'converged: nothing to open or close');

    const c2 = await run(net, '[::1]:18590:80');
    assert.notEqual(c2.exitCode, 0, 'a second container on the same [::1] port');
    // The owner's container by name once the daemon has read it from Docker's API (it does within ms of the start).
    assert.match(c2.stderr, new RegExp(`host port tcp/18590 on \\[::1\\] is already published by (container ${c1}, )?endpoint [0-9a-f]{12}`));
    assert.ok(await wgetFromHost('http://[::1]:18590/'), 'the first container keeps the port');

    daemon = await kill9AndRestart(daemon);
    assert.ok(await waitFor(() => wgetFromHost('http://[::1]:18590/'), { what: 'the port served again after SIGKILL', timeoutMs: 10_000 }));
    assert.equal((await dryRun()).code, 0, 'converged after the restart');
    // Only the worker killed: the supervisor starts a new one, whose startup pass opens the port.
    const killed = await daemon.kill9Worker();
    await daemon.waitWorker(killed);
    assert.ok(await waitFor(() => wgetFromHost('http://[::1]:18590/'), { what: 'the port served again after the worker restarted', timeoutMs: 10_000 }));

    await docker(['rm', '-f', c1], { check: true });
    await waitFor(async () => !(await listening(18590)) && !(await listening(18591)), { what: 'the ports closed after docker rm -f', timeoutMs: 10_000 });
    assert.equal((await dryRun()).code, 0);
  });

  test('a port another program holds on ::1: docker run fails naming address and port, nothing is kept; once free it works', async () => {
    const net = await createNetwork(161, true);
    const holder = createServer((s) => s.end('holder')).listen(18592, '::1');
    await once(holder, 'listening');
    try {
      const r = await run(net, '[::1]:18592:80', '18593:80');
      assert.notEqual(r.exitCode, 0);
      assert.match(r.stderr, /host port tcp\/18592 on \[::1\] is in use: a program on the host listens on tcp \[::1\]:18592; .*nothing was published/);
      assert.equal(await tcpRead(18592), 'holder', 'the other program keeps its port');
      const plan = await dryRun();
      assert.equal(plan.code, 0, `nothing half-applied (no DNAT of 18593 left, no listener wanted):\n${plan.out}`);
      assert.doesNotMatch(await status(), /18592/);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
    await started(net, '[::1]:18592:80');
    assert.ok(await wgetFromHost('http://[::1]:18592/'));
  });

  test('UDP on [::1] to an IPv4-only network (6→4): each client its own flow, the host as source', async () => {
    const net = await createNetwork(162, false);
    const c = await started(net, '[::1]:18594:5353/udp');
    await inContainer(c, UDP_WHOAMI, 'up');
    const ask = async (text: string) => {
      const u = createSocket('udp6');
      try {
        const reply = once(u, 'message');
        u.send(text, 18594, '::1');
        const [msg] = (await Promise.race([reply, new Promise((_, no) => setTimeout(() => no(new Error('no UDP reply')), 5000))])) as [Buffer];
        return msg.toString();
      } finally {
        u.close();
      }
    };
    assert.equal(await ask('one'), 'from 10.231.162.1: one');
    assert.equal(await ask('two'), 'from 10.231.162.1: two');
    assert.match(await status(), /udp \[::1\]:18594\s+10\.231\.162\.2:5353\s+\S+\s+2\s+listening/, 'two clients, two flows');
  });
});
