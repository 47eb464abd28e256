// IPv4 and IPv6 forwarding turned off under a network, in throwaway namespaces: a "host" holding the
// network's bridge (set up by plan → apply) and an uplink with its default route, a "container"
// on the bridge and an "outside" beyond the uplink. What the full read reports (forwardingProblem)
// is checked against what the traffic does, and the fix the message gives is run as given. Needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel, type Kernel } from '../../src/kernel/index.ts';
import { applyActions } from '../../src/reconciler/apply.ts';
import { desiredFromState } from '../../src/reconciler/desired.ts';
import { forwardingProblem, planIpv6Forwarding } from '../../src/reconciler/forwarding.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { NET_A, given, networkSpec } from '../helpers/events.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';
// Dual-stack, so that each family's forwarding is seen to matter on its own.
const STATE = given({ type: 'CreateNetwork', spec: { ...networkSpec(NET_A), ipv6: true, ipv6Data: [{ pool: 'fd00:231:7::/64', gateway: 'fd00:231:7::1/64', aux: {} }] } });
const BRIDGE = networkSpec(NET_A).bridge;

describe('IPv4 and IPv6 forwarding turned off under a network (real namespaces)', { skip }, () => {
  const tag = `${process.pid}-${randomBytes(2).toString('hex')}`;
  const host = `lnfwd-h-${tag}`;
  const container = `lnfwd-c-${tag}`;
  const outside = `lnfwd-o-${tag}`;
  let kernel: Kernel;
  const ip = (ns: string, ...args: string[]) => execa('ip', ['-n', ns, ...args]);
  const sysctl = (...args: string[]) => execa('ip', ['netns', 'exec', host, 'sysctl', '-q', ...args]);
  const reaches = async (to = '192.0.2.2') => (await execa('ip', ['netns', 'exec', container, 'busybox', 'ping', '-c', '1', '-W', '1', to], { reject: false })).exitCode === 0;
  const problem = async () => forwardingProblem(STATE, await kernel.observe());

  before(async () => {
    for (const ns of [host, container, outside]) await execa('ip', ['netns', 'add', ns]);
    kernel = createKernel({ netns: host, filterPrefixes: [VETH_PREFIX] });
    await sysctl('-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1');
    const done = await applyActions(plan(desiredFromState(STATE), await kernel.observe()), kernel);
    assert.deepEqual(done.failures, []);
    // The uplink and what lies beyond it.
    await ip(host, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up0p', 'netns', outside);
    await ip(host, 'addr', 'add', '192.0.2.1/24', 'dev', 'up0');
    await ip(host, 'link', 'set', 'up0', 'up');
    await ip(host, 'route', 'add', 'default', 'via', '192.0.2.2');
    await ip(outside, 'addr', 'add', '192.0.2.2/24', 'dev', 'up0p');
    await ip(outside, 'link', 'set', 'up0p', 'up');
    await ip(outside, 'route', 'add', '10.231.7.0/24', 'via', '192.0.2.1');
    await ip(host, 'addr', 'add', '2001:db8::1/64', 'dev', 'up0', 'nodad');
    await ip(host, '-6', 'route', 'add', 'default', 'via', '2001:db8::2');
    await ip(outside, 'addr', 'add', '2001:db8::2/64', 'dev', 'up0p', 'nodad');
    await ip(outside, '-6', 'route', 'add', 'fd00:231:7::/64', 'via', '2001:db8::1');
    // A container on the network's bridge.
    await ip(host, 'link', 'add', 'lnv-fwdtest0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', container);
    await ip(host, 'link', 'set', 'lnv-fwdtest0', 'master', BRIDGE, 'up');
    await ip(container, 'addr', 'add', '10.231.7.2/24', 'dev', 'eth0');
    await ip(container, 'link', 'set', 'eth0', 'up');
    await ip(container, 'route', 'add', 'default', 'via', '10.231.7.1');
    await ip(container, 'addr', 'add', 'fd00:231:7::2/64', 'dev', 'eth0', 'nodad');
    await ip(container, '-6', 'route', 'add', 'default', 'via', 'fd00:231:7::1');
  });

  after(async () => {
    for (const ns of [container, outside, host]) await execa('ip', ['netns', 'del', ns], { reject: false });
    const { stdout } = await execa('ip', ['netns', 'list']);
    assert.doesNotMatch(stdout, new RegExp(`lnfwd-.-${tag}`), 'test namespace leaked');
  });

  it('names the links whose forwarding is off exactly when the container loses the outside, and its fix brings it back', async () => {
    assert.ok(await reaches(), 'forwarding on: the container reaches beyond the uplink');
    assert.equal(await problem(), null);

    // A reload of sysctl.d with ip_forward=0: every link off.
    await sysctl('-w', 'net.ipv4.ip_forward=0');
    assert.equal(await reaches(), false, 'forwarding off: the container is cut off');
    const off = await problem();
    assert.deepEqual(off?.devices, [BRIDGE, 'up0'], 'the bridge and the uplink; not lo, the veths or anything else');
    assert.deepEqual(off?.networks, [NET_A.slice(0, 12)]);

    // Only the uplink off (as a network manager restarting it leaves it): still cut off, and named.
    await sysctl('-w', 'net.ipv4.ip_forward=1');
    await sysctl('-w', 'net.ipv4.conf.up0.forwarding=0');
    assert.equal(await reaches(), false, 'the replies come in on up0');
    assert.deepEqual((await problem())?.devices, ['up0']);

    // The fix as the message gives it, run as given.
    await sysctl('-w', 'net.ipv4.ip_forward=0');
    const fix = /Turn it on: (.*) \(or sysctl/.exec((await problem())?.message ?? '')?.[1] ?? '';
    assert.match(fix, /^sysctl -w /);
    for (const cmd of fix.split('; ')) await execa('ip', ['netns', 'exec', host, ...cmd.split(' ')]);
    assert.ok(await reaches(), 'the per-link fix alone brings the container back (ip_forward still 0)');
    assert.equal(await problem(), null);
  });

  it('names IPv6 forwarding that is off (net.ipv6.conf.all) exactly when the container loses the outside over IPv6, and its fix brings it back', async () => {
    assert.ok(await reaches('2001:db8::2'), 'IPv6 forwarding on: the container reaches beyond the uplink over IPv6');
    assert.equal(await problem(), null);

    // Off for the namespace (writing `all` sets every link too: the links are turned on again by
    // hand, to show that only `all` counts).
    await sysctl('-w', 'net.ipv6.conf.all.forwarding=0');
    await sysctl('-w', `net.ipv6.conf.${BRIDGE}.forwarding=1`, 'net.ipv6.conf.up0.forwarding=1');
    assert.equal(await reaches('2001:db8::2'), false, 'all = 0: cut off over IPv6, whatever the links say');
    assert.ok(await reaches(), 'IPv4 untouched');
    const off = await problem();
    assert.equal(off?.ipv6Off, true);
    assert.deepEqual(off?.devices, [], 'no IPv4 link named');
    assert.deepEqual(off?.networks, [NET_A.slice(0, 12)]);

    const fix = /Turn it on: (sysctl -w [^,]*?), and keep it/.exec(off?.message ?? '')?.[1] ?? '';
    assert.match(fix, /^sysctl -w net\.ipv6\.conf\.all\.forwarding=1 /);
    await execa('ip', ['netns', 'exec', host, ...fix.split(' ')]);
    assert.ok(await reaches('2001:db8::2'), 'the fix as given brings IPv6 back');
    assert.equal(await problem(), null);
  });

  it('serve --ipv6-forwarding: the planned sysctl.ipv6_forwarding, applied, brings the container back over IPv6; planned no more once on', async () => {
    const read = async () => (await execa('ip', ['netns', 'exec', host, 'sysctl', '-n', 'net.ipv6.conf.default.forwarding', 'net.ipv6.conf.all.forwarding'])).stdout.split('\n');
    await sysctl('-w', 'net.ipv6.conf.all.forwarding=0', 'net.ipv6.conf.default.forwarding=0');
    assert.equal(await reaches('2001:db8::2'), false, 'off: cut off over IPv6');
    const actions = planIpv6Forwarding(STATE, await kernel.observe());
    assert.deepEqual(actions.map((a) => a.kind), ['sysctl.ipv6_forwarding']);
    const done = await applyActions(actions, kernel);
    assert.deepEqual(done.failures, []);
    assert.deepEqual(await read(), ['1', '1'], 'default and all on, as Docker sets them');
    assert.ok(await reaches('2001:db8::2'), 'on: the container reaches beyond the uplink over IPv6');
    assert.equal(await problem(), null);
    assert.deepEqual(planIpv6Forwarding(STATE, await kernel.observe()), []);
    assert.deepEqual(await kernel.setIpv6ForwardingOn(), [], 'on already: nothing changed');
  });
});
