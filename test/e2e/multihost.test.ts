// Multi-host networks (issue 14) on the test bed of test/helpers/multihost.ts: three hosts on this
// machine, each with its own dockerd, nats-server (one JetStream cluster) and ledgernet.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { docker } from '../helpers/docker.ts';
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
