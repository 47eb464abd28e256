// A host that disables IPv6 by default (net.ipv6.conf.default.disable_ipv6=1, a common hardening)
// makes every new bridge so, and the kernel then refuses an IPv6 address on it ("IPv6 is disabled
// on this device"). As Docker does for its own IPv6 bridges, ledgernet turns IPv6 on on the bridge
// of an --ipv6 network and adds the gateway again. In a throwaway namespace, through both ways of
// writing links (rtnetlink requests, `ip -batch`). Needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel } from '../../src/kernel/index.ts';
import { applyActions } from '../../src/reconciler/apply.ts';
import { desiredFromState } from '../../src/reconciler/desired.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { NET_A, given, networkSpec } from '../helpers/events.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';
const STATE = given({ type: 'CreateNetwork', spec: { ...networkSpec(NET_A), ipv6: true, ipv6Data: [{ pool: 'fd00:231:7::/64', gateway: 'fd00:231:7::1/64', aux: {} }] } });
const BRIDGE = networkSpec(NET_A).bridge;

describe('an --ipv6 network on a host that disables IPv6 on new links (real namespaces)', { skip }, () => {
  const tag = `${process.pid}-${randomBytes(2).toString('hex')}`;
  const spaces: string[] = [];

  before(async () => {
    for (const way of ['netlink', 'processes']) {
      const ns = `lnv6off-${way[0]}-${tag}`;
      await execa('ip', ['netns', 'add', ns]);
      spaces.push(ns);
      await execa('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1']);
    }
  });

  after(async () => {
    for (const ns of spaces) await execa('ip', ['netns', 'del', ns], { reject: false });
    const { stdout } = await execa('ip', ['netns', 'list']);
    assert.doesNotMatch(stdout, new RegExp(`lnv6off-.-${tag}`), 'test namespace leaked');
  });

  for (const [i, way] of (['netlink', 'processes'] as const).entries()) {
    it(`the bridge gets IPv6 turned on and its IPv6 gateway, and the next pass has nothing to do (link writes: ${way})`, async () => {
      const ns = spaces[i] ?? '';
      const kernel = createKernel({ netns: ns, filterPrefixes: [VETH_PREFIX], interfaceWrites: way });
      const done = await applyActions(plan(desiredFromState(STATE), await kernel.observe()), kernel);
      assert.deepEqual(done.failures, []);
      const addrs = (await execa('ip', ['-n', ns, '-6', '-br', 'addr', 'show', 'dev', BRIDGE])).stdout;
      assert.match(addrs, /fd00:231:7::1\/64/);
      assert.equal((await execa('ip', ['netns', 'exec', ns, 'sysctl', '-n', `net.ipv6.conf.${BRIDGE}.disable_ipv6`])).stdout, '0');
      assert.equal((await execa('ip', ['netns', 'exec', ns, 'sysctl', '-n', 'net.ipv6.conf.default.disable_ipv6'])).stdout, '1', "the host's own setting is left as it was");
      assert.deepEqual(plan(desiredFromState(STATE), await kernel.observe()), []);
    });
  }
});
