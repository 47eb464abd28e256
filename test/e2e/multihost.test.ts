// Multi-host networks (issue 14) on the test bed of test/helpers/multihost.ts: three hosts on this
// machine, each with its own dockerd, nats-server (one JetStream cluster) and ledgernet.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { readLog } from '../../src/events/log/read.ts';
import { docker, TEST_IMAGE, waitFor } from '../helpers/docker.ts';
import { createTestbed, type Host, type Testbed } from '../helpers/multihost.ts';

let bed: Testbed;
let hosts: readonly Host[];
before(async () => {
  bed = await createTestbed({ ledgernet: ['--reconcile-interval', '2'] });
  hosts = bed.hosts;
});
after(async () => {
  const { dir, prefix } = bed ?? {};
  await bed?.down();
  // The bed takes everything with it: namespaces and its folder.
  const ns = (await execa('ip', ['netns', 'list'])).stdout;
  assert.doesNotMatch(ns, new RegExp(`^${prefix}-`, 'm'));
  assert.equal(existsSync(dir), false);
});

describe('the test bed', () => {
  test('each host has its own dockerd, plugin directory and host guard; the host dockerd sees nothing', async () => {
    for (const h of hosts) {
      const plugins = (await h.exec('ls', ['/run/docker/plugins'])).stdout.split('\n').sort();
      assert.deepEqual(plugins, ['ledgernet-host.lock', 'ledgernet.sock']);
    }
    const [h1, h2] = hosts as [Host, Host];
    await h1.docker(['network', 'create', '-d', 'ledgernet', '--subnet', '10.231.206.0/28', 'only-h1'], { check: true });
    try {
      assert.doesNotMatch((await h2.docker(['network', 'ls'], { check: true })).stdout, /only-h1/);
      assert.doesNotMatch((await docker(['network', 'ls'])).stdout, /only-h1/, 'the host dockerd has no such network');
      const links = (await h1.exec('ip', ['-o', 'link', 'show'])).stdout;
      assert.match(links, /lnb-/, 'the bridge is in h1');
      assert.doesNotMatch((await execa('ip', ['-o', 'link', 'show'])).stdout, /10\.231\.206|only-h1/);
    } finally {
      await h1.docker(['network', 'rm', 'only-h1']);
    }
  });
});

const CLUSTER = (name: string) => ['-d', 'ledgernet', '--ipam-driver', 'ledgernet', '--ipam-opt', `ledgernet.cluster=${name}`, '-o', `ledgernet.cluster=${name}`];

/** The subnet Docker shows for a network on a host. */
async function subnetOf(h: Host, net: string): Promise<string> {
  return (await h.docker(['network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Subnet}}{{end}}', net], { check: true })).stdout;
}

/** The cluster VNIs a host's log recorded for pools of cluster `name`. */
async function vnisOf(h: Host, name: string): Promise<number[]> {
  const { events } = await readLog(h.stateDir);
  return events.flatMap((e) => (e.type === 'pool.requested' && e.data.cluster?.name === name ? [e.data.cluster.vni] : []));
}

describe('cluster networks: one subnet and one VNI across hosts', () => {
  test('network create blue on all three hosts at once: one subnet, one VNI; containers get addresses from distinct blocks', async () => {
    const created = await Promise.all(hosts.map((h) => h.docker(['network', 'create', ...CLUSTER('blue'), 'blue'])));
    try {
      for (const r of created) assert.equal(r.exitCode, 0, r.stderr);
      const subnets = await Promise.all(hosts.map((h) => subnetOf(h, 'blue')));
      assert.equal(new Set(subnets).size, 1, subnets.join(' '));
      const vnis = (await Promise.all(hosts.map((h) => vnisOf(h, 'blue')))).flat();
      assert.equal(vnis.length, 3);
      assert.equal(new Set(vnis).size, 1, vnis.join(' '));
      const gateways = await Promise.all(hosts.map((h) => h.docker(['network', 'inspect', '-f', '{{range .IPAM.Config}}{{.Gateway}}{{end}}', 'blue'], { check: true })));
      assert.equal(new Set(gateways.map((g) => g.stdout)).size, 1, 'the same gateway on every host');
      const ips = await Promise.all(
        hosts.flatMap((h) => [1, 2].map(async (i) => {
          await h.docker(['run', '-d', '--name', `c${h.n}${i}`, '--network', 'blue', TEST_IMAGE, 'sleep', '600'], { check: true });
          return (await h.docker(['inspect', '-f', '{{.NetworkSettings.Networks.blue.IPAddress}}', `c${h.n}${i}`], { check: true })).stdout;
        })),
      );
      assert.equal(new Set(ips).size, 6, ips.join(' '));
      // Each host's two containers share its block; no two hosts share one (blocks are /26).
      const block = (ip: string) => ip.split('.').slice(0, 3).join('.') + '/' + (Number(ip.split('.')[3]) >> 6);
      assert.equal(new Set(ips.map(block)).size, 3, ips.join(' '));
    } finally {
      for (const h of hosts) {
        await h.docker(['rm', '-f', `c${h.n}1`, `c${h.n}2`]);
        await h.docker(['network', 'rm', 'blue']);
      }
    }
  });

  test('a different --subnet for an existing cluster network is refused naming the one it has; without ledgernet IPAM refused with the right command', async () => {
    const [h1, h2, h3] = hosts as [Host, Host, Host];
    await h1.docker(['network', 'create', ...CLUSTER('green'), '--subnet', '10.241.0.0/16', 'green'], { check: true });
    try {
      const other = await h2.docker(['network', 'create', ...CLUSTER('green'), '--subnet', '10.242.0.0/16', 'green']);
      assert.notEqual(other.exitCode, 0);
      assert.match(other.stderr, /cluster network green already has subnet 10\.241\.0\.0\/16 \(allocated by host h1\); create it with --subnet 10\.241\.0\.0\/16 or without --subnet/);
      const plain = await h3.docker(['network', 'create', '-d', 'ledgernet', '-o', 'ledgernet.cluster=green', '--subnet', '10.243.0.0/16', 'green']);
      assert.notEqual(plain.exitCode, 0);
      assert.match(plain.stderr, /needs ledgernet IPAM with --ipam-opt ledgernet\.cluster=green .*docker network create -d ledgernet --ipam-driver ledgernet --ipam-opt ledgernet\.cluster=green -o ledgernet\.cluster=green/);
      assert.doesNotMatch((await h3.docker(['network', 'ls'])).stdout, /green/);
    } finally {
      await h1.docker(['network', 'rm', 'green']);
    }
  });
});

describe('cluster networks: peers in every host\'s log', () => {
  test('a container on h2 shows in h1\'s and h3\'s logs as peer.endpoint.added; removed on h2, it is gone from their logs within 1 s', async () => {
    await Promise.all(hosts.map((h) => h.docker(['network', 'create', ...CLUSTER('red'), '--subnet', '10.244.0.0/24', 'red'], { check: true })));
    const [h1, h2, h3] = hosts as [Host, Host, Host];
    const peerEvents = async (h: Host) => (await readLog(h.stateDir)).events.filter((e) => e.type.startsWith('peer.endpoint.') && 'cluster' in e.data && e.data.cluster === 'red');
    try {
      await h2.docker(['run', '-d', '--name', 'r2', '--network', 'red', TEST_IMAGE, 'sleep', '600'], { check: true });
      const ip = (await h2.docker(['inspect', '-f', '{{.NetworkSettings.Networks.red.IPAddress}} {{.NetworkSettings.Networks.red.MacAddress}}', 'r2'], { check: true })).stdout.split(' ');
      for (const h of [h1, h3]) {
        const added = await waitFor(async () => (await peerEvents(h)).find((e) => e.type === 'peer.endpoint.added'), { timeoutMs: 10_000, what: `h2's container in ${h.name}'s log` });
        assert.ok(added.type === 'peer.endpoint.added');
        assert.deepEqual([added.data.host, added.data.vtep, added.data.address, added.data.mac], ['h2', h2.underlay, ip[0], ip[1]]);
      }
      await h2.docker(['rm', '-f', 'r2'], { check: true });
      const t0 = Date.now();
      for (const h of [h1, h3]) {
        await waitFor(async () => (await peerEvents(h)).some((e) => e.type === 'peer.endpoint.removed'), { timeoutMs: 1_000, intervalMs: 20, what: `h2's container gone from ${h.name}'s log` });
      }
      assert.ok(Date.now() - t0 < 1_000);
    } finally {
      await h2.docker(['rm', '-f', 'r2']);
      for (const h of hosts) await h.docker(['network', 'rm', 'red']);
    }
  });
});

describe('cluster networks: the data path across hosts (VXLAN)', () => {
  test('containers on three hosts ping each other by address; a container removed on one host leaves the others\' FDB and neighbour tables within 1 s', async () => {
    await Promise.all(hosts.map((h) => h.docker(['network', 'create', ...CLUSTER('cyan'), '--subnet', '10.245.0.0/24', 'cyan'], { check: true })));
    const [, , h3] = hosts as [Host, Host, Host];
    try {
      await Promise.all(hosts.map((h) => h.docker(['run', '-d', '--name', `c${h.n}`, '--network', 'cyan', TEST_IMAGE, 'sleep', '600'], { check: true })));
      const addr = async (h: Host) => (await h.docker(['inspect', '-f', '{{.NetworkSettings.Networks.cyan.IPAddress}} {{.NetworkSettings.Networks.cyan.MacAddress}}', `c${h.n}`], { check: true })).stdout.trim().split(' ') as [string, string];
      const addrs = await Promise.all(hosts.map(addr));
      for (const [i, h] of hosts.entries()) {
        for (const [j, [ip]] of addrs.entries()) {
          if (i === j) continue;
          // The peer's FDB entry arrives through NATS: give it a moment, then one ping must pass.
          await waitFor(async () => (await h.docker(['exec', `c${h.n}`, 'ping', '-c', '1', '-W', '1', ip])).exitCode === 0, {
            timeoutMs: 15_000,
            intervalMs: 200,
            what: `c${h.n} on ${h.name} to reach ${ip} on h${j + 1}`,
          });
        }
      }
      const [ip3, mac3] = addrs[2] as [string, string];
      const tables = async (h: Host) => `${(await h.exec('bridge', ['fdb', 'show'])).stdout}\n${(await h.exec('ip', ['neigh', 'show'])).stdout}`;
      for (const h of hosts.slice(0, 2)) {
        const t = await tables(h);
        assert.match(t, new RegExp(`${mac3} dev lnx-\\S+ dst ${h3.underlay}`), `${h.name}'s FDB sends c3's MAC to h3's VTEP`);
        assert.match(t, new RegExp(`${ip3.replace(/\./g, '\\.')} dev \\S+ lladdr ${mac3} PERMANENT`), `${h.name} answers ARP for c3 locally`);
      }
      await h3.docker(['rm', '-f', 'c3'], { check: true });
      const t0 = Date.now();
      for (const h of hosts.slice(0, 2)) {
        await waitFor(async () => !(await tables(h)).includes(mac3), { timeoutMs: 1_000, intervalMs: 20, what: `c3's MAC gone from ${h.name}'s FDB and neighbours` });
      }
      assert.ok(Date.now() - t0 < 1_000);
      // The other two still reach each other.
      assert.equal((await (hosts[0] as Host).docker(['exec', 'c1', 'ping', '-c', '1', '-W', '2', (addrs[1] as [string, string])[0]])).exitCode, 0);
    } finally {
      await Promise.all(hosts.map((h) => h.docker(['rm', '-f', `c${h.n}`])));
      for (const h of hosts) await h.docker(['network', 'rm', 'cyan']);
    }
  });
});
