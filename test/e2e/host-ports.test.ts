// A published port that a program on the host already listens on, with the real dockerd: Docker's
// bridge driver refuses it (its docker-proxy cannot bind: "address already in use"), and so must
// ledgernet, or its DNAT rules take the program's traffic. A real host program (python3 -m
// http.server, started and stopped here) listens on 127.0.0.1 and on 0.0.0.0; `docker run -p` on
// a ledgernet network fails naming the port, the protocol and the address; the program still
// answers its own connections; no DNAT rule, no endpoint and no programmed-ports event is left.
// The bridge driver's answer to the same run is printed for comparison.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { after, afterEach, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { TEST_IMAGE, cleanupAll, docker, track, uniqueName, waitFor } from '../helpers/docker.ts';
import { ledgernetCli, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
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
