// Multi-host networks (issue 14) at scale, on the test bed of test/helpers/multihost.ts (three
// hosts, each with its own dockerd, nats-server and ledgernet): one network created on every host
// at once gets one subnet and one VNI, and 100 containers started at once across the hosts get 100
// distinct addresses. A file of its own (it was the first test of multihost-liveness.test.ts): on
// a busy machine its 100 containers took 190-275 s, and with the liveness cases after it the file
// ran past the runner's budget per file (then 300 s, now 600 s: scripts/test.sh).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readLog } from '../../src/events/log/read.ts';
import { TEST_IMAGE } from '../helpers/docker.ts';
import { createTestbed, type Host, type Testbed } from '../helpers/multihost.ts';

const NET = 'blue';
const CLUSTER = ['-d', 'ledgernet', '--ipam-driver', 'ledgernet', '--ipam-opt', `ledgernet.cluster=${NET}`, '-o', `ledgernet.cluster=${NET}`];

let bed: Testbed;
before(async () => {
  bed = await createTestbed({ ledgernet: ['--reconcile-interval', '2'] });
});
after(async () => {
  await bed?.down();
});

async function ipOf(h: Host, name: string): Promise<string> {
  return (await h.docker(['inspect', '-f', `{{.NetworkSettings.Networks.${NET}.IPAddress}}`, name], { check: true })).stdout.trim();
}

describe('cluster networks: scale', () => {
  test('network create blue on all three hosts at once: one subnet, one VNI; 100 containers started at once across the hosts get 100 distinct addresses', { timeout: 290_000 }, async () => {
    const created = await Promise.all(bed.hosts.map((h) => h.docker(['network', 'create', ...CLUSTER, NET])));
    for (const r of created) assert.equal(r.exitCode, 0, r.stderr);
    const subnets = await Promise.all(bed.hosts.map(async (h) => (await h.docker(['network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Subnet}}{{end}}', NET], { check: true })).stdout));
    assert.equal(new Set(subnets).size, 1, subnets.join(' '));
    const vnis = await Promise.all(bed.hosts.map(async (h) => (await readLog(h.stateDir)).events.flatMap((e) => (e.type === 'pool.requested' && e.data.cluster?.name === NET ? [e.data.cluster.vni] : []))));
    assert.equal(new Set(vnis.flat()).size, 1, vnis.flat().join(' '));

    // 100 containers, 34/33/33 per host, 4 at a time on each host.
    const names = bed.hosts.map((h, i) => Array.from({ length: i === 0 ? 34 : 33 }, (_, k) => `s${h.n}-${k}`));
    const all = names.map((n) => [...n]);
    try {
      const t0 = Date.now();
      const ips = (
        await Promise.all(bed.hosts.map(async (h, i) => {
          const mine = names[i] ?? [];
          const out: string[] = [];
          const worker = async () => {
            for (let name = mine.shift(); name !== undefined; name = mine.shift()) {
              await h.docker(['run', '-d', '--name', name, '--network', NET, TEST_IMAGE, 'sleep', '3600'], { check: true });
              out.push(await ipOf(h, name));
            }
          };
          await Promise.all([worker(), worker(), worker(), worker()]);
          return out;
        }))
      ).flat();
      assert.equal(ips.length, 100);
      assert.equal(new Set(ips).size, 100, `duplicate addresses: ${ips.filter((ip, i) => ips.indexOf(ip) !== i).join(' ')}`);
      assert.ok(ips.every((ip) => ip.startsWith(subnets[0]?.split('.').slice(0, 2).join('.') ?? '-')), ips.join(' '));
      console.log(`100 containers across 3 hosts in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    } finally {
      await Promise.all(bed.hosts.map((h, i) => h.docker(['rm', '-f', ...(all[i] ?? [])], { timeoutMs: 120_000 })));
    }
  });
});
