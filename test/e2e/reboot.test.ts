// A host that loses power and boots again, on a one-host test bed (test/helpers/multihost.ts: its
// own network namespace, /run, dockerd, nats-server and ledgernet). The power cut SIGKILLs every
// process of the host at once and takes its kernel state (links, addresses, iptables, sysctls) and
// /run with it; Docker's data root and ledgernet's state dir stay, as disks do. Then the host
// boots: ledgernet before dockerd (the systemd unit's order), and the second time dockerd first
// (an init without that order), where dockerd looks for the plugin while it restores containers
// and answers its API to nobody meanwhile. After each boot, what an operator checks: the
// containers with a restart policy run again and reach each other, the published port answers,
// the one without a policy stays exited and holds nothing, no link of the old boot is left or
// remade, `reconcile --dry-run` and `repair --dry-run` find nothing, the log verifies; and at the
// end everything can be removed and nothing is left. One network is IPv6 too: its sysctls and
// ip6tables rules went with the power as well.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { CLI_PATH } from '../helpers/daemon.ts';
import { TEST_IMAGE, waitFor } from '../helpers/docker.ts';
import { createTestbed, type Host, type Testbed } from '../helpers/multihost.ts';

const ARGS = ['--reconcile-interval', '2'];
let bed: Testbed;
let h: Host;
before(async () => {
  bed = await createTestbed({ hosts: 1, ledgernet: ARGS });
  h = bed.hosts[0]!;
});
after(async () => {
  await bed?.down();
});

const ledgernet = (args: readonly string[]) => h.exec(process.execPath, [CLI_PATH, ...args, '--state-dir', h.stateDir], { timeoutMs: 30_000 });
const inspect = async (c: string, format: string) => (await h.docker(['inspect', '-f', format, c], { check: true })).stdout.trim();
const links = async () => (await h.exec('ip', ['-o', 'link', 'show'])).stdout.split('\n').flatMap((l) => /^\d+: (ln[bv]-[0-9a-f]+)/.exec(l)?.[1] ?? []).sort();

interface Status {
  readonly endpoints: readonly { readonly id: string; readonly state: string }[];
  readonly pools: readonly { readonly inUse: number }[];
}
async function status(): Promise<Status> {
  const r = await ledgernet(['status', '--json']);
  assert.equal(r.exitCode, 0, r.stderr);
  return JSON.parse(r.stdout) as Status;
}

/** The page c2's httpd serves on the published port, asked from the host itself. */
const page = async () => (await h.exec('curl', ['-sS', '-m', '3', `http://${h.underlay}:8080/`], { timeoutMs: 10_000 })).stdout.trim();

async function checkAfterBoot(before: readonly string[]): Promise<void> {
  // Docker restarts the restart-policy containers itself once the plugin answers.
  await waitFor(async () => (await h.docker(['ps', '--format', '{{.Names}}'])).stdout.split('\n').filter(Boolean).sort().join(' ') === 'c1 c2 c4', { timeoutMs: 60_000, intervalMs: 250, what: 'c1, c2 and c4 to run again' });
  assert.equal(await inspect('c3', '{{.State.Status}}'), 'exited', 'no restart policy: stays down');
  const ip2 = await inspect('c2', '{{.NetworkSettings.Networks.n1.IPAddress}}');
  const ip4 = await inspect('c4', '{{.NetworkSettings.Networks.n2.IPAddress}}');
  const ip6 = await inspect('c4', '{{.NetworkSettings.Networks.n2.GlobalIPv6Address}}');
  assert.match(ip6, /:/, 'c4 has its IPv6 address again');
  for (const [from, to] of [['c1', ip2], ['c2', ip4], ['c2', ip6]] as const) {
    const r = await h.docker(['exec', from, 'ping', '-c', '2', '-W', '2', to]);
    assert.equal(r.exitCode, 0, `${from} → ${to}: ${r.stdout}${r.stderr}`);
  }
  await waitFor(async () => (await page()) === 'ok-c2', { timeoutMs: 20_000, intervalMs: 250, what: 'the published port 8080 to answer' });
  // Ledgernet holds what Docker holds, all converged: 2 endpoints on n1, 2 on n2 (ledgernet IPAM, IPv6).
  await waitFor(async () => (await status()).endpoints.length === 4, { timeoutMs: 20_000, intervalMs: 250, what: 'ledgernet to hold the four endpoints Docker holds' });
  const st = await status();
  assert.deepEqual(st.endpoints.map((e) => e.state), ['converged', 'converged', 'converged', 'converged']);
  assert.deepEqual(st.pools.map((p) => p.inUse), [2, 2], 'n2 pools, v4 and v6: c2 and c4 only (c3 released)');
  const now = await links();
  assert.equal(now.filter((l) => l.startsWith('lnv-')).length, 4, now.join(' '));
  assert.equal(now.filter((l) => l.startsWith('lnb-')).length, 2, now.join(' '));
  for (const old of before.filter((l) => l.startsWith('lnv-'))) assert.ok(!now.includes(old), `${old} of the last boot is not remade`);
  const dry = await ledgernet(['reconcile', '--dry-run']);
  assert.equal(dry.exitCode, 0, dry.stdout + dry.stderr);
  const repair = await ledgernet(['repair', '--dry-run', '--docker-socket', h.dockerSocket]);
  assert.equal(repair.exitCode, 0, repair.stdout + repair.stderr);
  assert.match(repair.stdout, /nothing to repair/);
  const verify = await ledgernet(['events', 'verify']);
  assert.equal(verify.exitCode, 0, verify.stdout + verify.stderr);
}

describe('a power cut and a boot', () => {
  test('containers and networks before the cut', async () => {
    await h.docker(['network', 'create', '-d', 'ledgernet', '--subnet', '10.231.210.0/24', 'n1'], { check: true });
    await h.docker(['network', 'create', '-d', 'ledgernet', '--ipam-driver', 'ledgernet', '--ipv6', 'n2'], { check: true });
    await h.docker(['run', '-d', '--name', 'c1', '--restart', 'always', '--network', 'n1', TEST_IMAGE, 'sleep', '100000'], { check: true });
    const web = 'mkdir -p /www && echo ok-c2 > /www/index.html && exec httpd -f -p 80 -h /www';
    await h.docker(['run', '-d', '--name', 'c2', '--restart', 'unless-stopped', '--network', 'n1', '-p', '8080:80', TEST_IMAGE, 'sh', '-c', web], { check: true });
    await h.docker(['network', 'connect', 'n2', 'c2'], { check: true });
    await h.docker(['run', '-d', '--name', 'c3', '--network', 'n2', TEST_IMAGE, 'sleep', '100000'], { check: true });
    await h.docker(['run', '-d', '--name', 'c4', '--restart', 'always', '--network', 'n2', TEST_IMAGE, 'sleep', '100000'], { check: true });
    await waitFor(async () => (await page()) === 'ok-c2', { timeoutMs: 20_000, intervalMs: 250, what: 'the published port 8080 to answer' });
    assert.equal((await status()).endpoints.length, 5);
  });

  for (const order of ['ledgernet-first', 'dockerd-first'] as const) {
    test(`power cut, then boot with ${order === 'ledgernet-first' ? 'ledgernet before dockerd (the systemd order)' : 'dockerd before ledgernet'}`, async () => {
      const before = await links();
      await h.docker(['start', 'c3'], { check: true }); // running again at every cut
      await h.powerCut();
      assert.deepEqual(await links(), [], 'the kernel state went with the power');
      await h.boot(order, ARGS);
      await checkAfterBoot(before);
    });
  }

  test('after the boots everything can be removed and nothing is left', async () => {
    await h.docker(['rm', '-f', 'c1', 'c2', 'c3', 'c4'], { check: true });
    await h.docker(['network', 'rm', 'n1', 'n2'], { check: true });
    await waitFor(async () => (await links()).length === 0, { timeoutMs: 20_000, intervalMs: 250, what: 'every lnb-/lnv- link to go' });
    const rules = (await h.exec('sh', ['-c', 'iptables-save; ip6tables-save'])).stdout;
    assert.doesNotMatch(rules, /ledgernet/i, 'no rule or chain of ledgernet left');
    const st = await status();
    assert.deepEqual([st.endpoints.length, st.pools.length], [0, 0]);
  });
});
