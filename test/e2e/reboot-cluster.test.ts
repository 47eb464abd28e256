// A cluster host that loses power and boots again (test/helpers/multihost.ts: two hosts, each
// with its own namespace, dockerd, nats-server and ledgernet; see reboot.test.ts for the one-host
// case). h2 has a restart-policy container and one without a policy on cluster network blue;
// the power cut takes h2's processes, VXLAN device, bridges and FDB at once, without a
// DeleteEndpoint for either container. After the boot: h2's container runs again and both hosts
// reach each other's containers; h1 lists exactly h2's new endpoint as remote (neither the old
// endpoints nor the one of the container without a policy); dry-run and repair find nothing on
// either host; the network can be removed on both.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { CLI_PATH } from '../helpers/daemon.ts';
import { TEST_IMAGE, waitFor } from '../helpers/docker.ts';
import { createTestbed, type Host, type Testbed } from '../helpers/multihost.ts';

const ARGS = ['--reconcile-interval', '2'];
let bed: Testbed;
before(async () => {
  bed = await createTestbed({ hosts: 2, ledgernet: ARGS });
});
after(async () => {
  await bed?.down();
});

const ledgernet = (h: Host, args: readonly string[]) => h.exec(process.execPath, [CLI_PATH, ...args, '--state-dir', h.stateDir], { timeoutMs: 30_000 });
const CLUSTER = ['-d', 'ledgernet', '--ipam-driver', 'ledgernet', '--ipam-opt', 'ledgernet.cluster=blue', '-o', 'ledgernet.cluster=blue'];
const address = async (h: Host, c: string) => (await h.docker(['inspect', '-f', '{{.NetworkSettings.Networks.blue.IPAddress}}', c], { check: true })).stdout.trim();
const reaches = async (h: Host, c: string, to: string) => (await h.docker(['exec', c, 'ping', '-c', '1', '-W', '1', to])).exitCode === 0;

/** The addresses of the remote endpoints `h` lists (`status --json`). */
async function remotes(h: Host): Promise<string[]> {
  const r = await ledgernet(h, ['status', '--json']);
  assert.equal(r.exitCode, 0, r.stderr);
  const { cluster } = JSON.parse(r.stdout) as { cluster?: { networks: { name: string; remoteEndpoints: { address: string }[] }[] } };
  return (cluster?.networks.find((n) => n.name === 'blue')?.remoteEndpoints ?? []).map((e) => e.address).sort();
}

test('a cluster host loses power and boots: its container is back, both hosts reach each other, no stale remote endpoint, nothing to repair', { timeout: 240_000 }, async () => {
  const [h1, h2] = bed.hosts as [Host, Host];
  await Promise.all([h1, h2].map((h) => h.docker(['network', 'create', ...CLUSTER, 'blue'], { check: true })));
  await h1.docker(['run', '-d', '--name', 'c1', '--restart', 'always', '--network', 'blue', TEST_IMAGE, 'sleep', '100000'], { check: true });
  await h2.docker(['run', '-d', '--name', 'c2', '--restart', 'always', '--network', 'blue', TEST_IMAGE, 'sleep', '100000'], { check: true });
  await h2.docker(['run', '-d', '--name', 'c3', '--network', 'blue', TEST_IMAGE, 'sleep', '100000'], { check: true });
  const a1 = await address(h1, 'c1');
  const before = [await address(h2, 'c2'), await address(h2, 'c3')].sort();
  await waitFor(async () => (await remotes(h1)).join() === before.join(), { timeoutMs: 20_000, intervalMs: 250, what: `h1 to list ${before.join(', ')} as remote` });
  await waitFor(() => reaches(h1, 'c1', before[0]!), { timeoutMs: 20_000, intervalMs: 250, what: 'c1 to reach h2 before the cut' });

  await h2.powerCut();
  await h2.boot('ledgernet-first', ARGS);
  await waitFor(async () => (await h2.docker(['ps', '--format', '{{.Names}}'])).stdout.trim() === 'c2', { timeoutMs: 60_000, intervalMs: 250, what: 'c2 (and only c2) to run again on h2' });
  const a2 = await address(h2, 'c2');
  await waitFor(() => reaches(h1, 'c1', a2), { timeoutMs: 20_000, intervalMs: 250, what: `c1 on h1 to reach c2 (${a2}) on the booted h2` });
  assert.ok(await reaches(h2, 'c2', a1), `c2 on h2 reaches c1 (${a1}) on h1`);
  let listed: string[] = [];
  await waitFor(async () => (listed = await remotes(h1)).join() === a2, { timeoutMs: 20_000, intervalMs: 250, what: `h1 to list only ${a2} as remote` }).catch((e: Error) => {
    throw new Error(`${e.message}; h1 lists ${listed.join(', ')}`);
  });
  assert.deepEqual(await remotes(h2), [a1]);
  for (const h of [h1, h2]) {
    const dry = await ledgernet(h, ['reconcile', '--dry-run']);
    assert.equal(dry.exitCode, 0, `${h.name}: ${dry.stdout}${dry.stderr}`);
    const repair = await ledgernet(h, ['repair', '--dry-run', '--docker-socket', h.dockerSocket]);
    assert.equal(repair.exitCode, 0, `${h.name}: ${repair.stdout}${repair.stderr}`);
  }

  await h1.docker(['rm', '-f', 'c1'], { check: true });
  await h2.docker(['rm', '-f', 'c2', 'c3'], { check: true });
  await Promise.all([h1, h2].map((h) => h.docker(['network', 'rm', 'blue'], { check: true })));
  for (const h of [h1, h2]) {
    await waitFor(async () => !/ln[bvx]-/.test((await h.exec('ip', ['-o', 'link', 'show'])).stdout), { timeoutMs: 20_000, intervalMs: 250, what: `${h.name}'s links of blue to go` });
  }
});
