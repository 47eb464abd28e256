// A large port range under the nftables backend, with the real dockerd: `docker run -p
// 30000-30299:30000-30299 -p 30000-30299:30000-30299/udp` on an `--ipv6` network publishes 1,200
// host addresses and ports, and the daemon holds a descriptor for each (kernel/reservations).
// libnftables waits with select(2), and glibc aborted the process once the netlink socket of a
// transaction was numbered 1,024 or more: the worker died in such a run, and again at the first
// transaction after every restart (the reservations are held right after the replay). Here: the
// run, traffic through a port of the range, a SIGKILL of the whole daemon and a start, `docker rm
// -f`: one worker serves each daemon's life, and nothing is left.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { TEST_IMAGE, cleanupAll, docker, track, uniqueName, waitFor } from '../helpers/docker.ts';
import { kill9AndRestart, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { assertNoLeaks, waitNoLeaks } from '../helpers/leaks.ts';

let daemon: DaemonHandle;

before(async () => {
  await assertNoLeaks();
  daemon = await startDaemon({ extraArgs: ['--firewall', 'nftables'] });
});

after(async () => {
  await cleanupAll();
  await stopAllDaemons();
});

/** What busybox httpd in the container answers on 127.0.0.1:port, or null. */
async function page(port: number): Promise<string | null> {
  const w = await execa('/bin/busybox', ['timeout', '5', '/bin/busybox', 'wget', '-q', '-O', '-', `http://127.0.0.1:${port}/`], { reject: false, stdin: 'ignore' });
  return w.exitCode === 0 ? w.stdout.trim() : null;
}

/** The elements of ledgernet's nftables table that name a port of the range. */
async function rangeElements(): Promise<number> {
  const t = await execa('nft', ['list', 'table', 'inet', 'ledgernet'], { reject: false, stdin: 'ignore' });
  return (t.stdout.match(/\b30[0-2]\d\d\b/g) ?? []).length;
}

describe('a range of 300 ports, tcp and udp, IPv6, nftables: 1,200 held host ports', () => {
  test('published, served, held again after a SIGKILL, removed: the worker never dies', async () => {
    const net = track.network(uniqueName('lnrange'));
    const made = await docker(['network', 'create', '--driver', 'ledgernet', '--ipv6', '--subnet', '10.231.91.0/24', '--subnet', 'fd00:231:91::/64', net]);
    assert.equal(made.exitCode, 0, made.stderr);
    const worker = daemon.workerPid();
    assert.ok(worker !== null);
    const name = track.container(uniqueName('range'));
    const serve = 'mkdir -p /w && echo range > /w/index.html && exec httpd -f -p 30150 -h /w';
    const t0 = Date.now();
    const run = await docker(['run', '-d', '--name', name, '--network', net, '-p', '30000-30299:30000-30299', '-p', '30000-30299:30000-30299/udp', TEST_IMAGE, 'sh', '-c', serve]);
    console.log(`docker run with 1,200 host ports: ${Date.now() - t0} ms`);
    assert.equal(run.exitCode, 0, `${run.stderr}\n${daemon.logs().slice(-2000)}`);
    assert.equal(daemon.workerPid(), worker, 'the worker that took the call still runs');
    assert.equal(await waitFor(() => page(30150), { timeoutMs: 15_000, what: 'the container to answer on 127.0.0.1:30150' }), 'range');

    daemon = await kill9AndRestart(daemon);
    const restarted = daemon.workerPid();
    assert.equal(await waitFor(() => page(30150), { timeoutMs: 15_000, what: 'the container to answer on 127.0.0.1:30150 after the restart' }), 'range');

    const t1 = Date.now();
    assert.equal((await docker(['rm', '-f', name])).exitCode, 0);
    console.log(`docker rm -f: ${Date.now() - t1} ms`);
    await waitFor(async () => (await rangeElements()) === 0, { timeoutMs: 10_000, what: 'the range to leave the nftables table' });
    assert.equal(daemon.workerPid(), restarted, 'the transaction of the removal, with the ports held since the start, did not kill the worker');
    assert.doesNotMatch(daemon.logs(), /FD_SETSIZE|worker died/);
    await cleanupAll();
    await waitNoLeaks();
  });
});
