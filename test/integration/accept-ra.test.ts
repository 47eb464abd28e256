// CVE-2020-13401 on ledgernet's bridges, in throwaway namespaces: a "container" on a network's
// bridge sends an IPv6 router advertisement (a raw ICMPv6 socket, as any container with
// CAP_NET_RAW, Docker's default, can). The host must not take it: ledgernet makes its bridges with
// accept_ra 0 (as Docker does since 19.03.11), and puts it back when found on. Needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel, type Kernel } from '../../src/kernel/index.ts';
import { applyActions } from '../../src/reconciler/apply.ts';
import { desiredFromState } from '../../src/reconciler/desired.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { NET_A, given, networkSpec } from '../helpers/events.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';
const STATE = given({ type: 'CreateNetwork', spec: networkSpec(NET_A) });
const BRIDGE = networkSpec(NET_A).bridge;

/** A router advertisement of a default router and the prefix 2001:db8:bad::/64, from fe80::2 on eth0. */
const SEND_RA = `
import socket, struct
idx = socket.if_nametoindex('eth0')
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.bind(('fe80::2', 0, 0, idx))
ra = struct.pack('!BBHBBHII', 134, 0, 0, 64, 0, 1800, 0, 0)
prefix = struct.pack('!BBBBIII', 3, 4, 64, 0xc0, 86400, 14400, 0) + socket.inet_pton(socket.AF_INET6, '2001:db8:bad::')
s.sendto(ra + prefix, ('ff02::1', 0, 0, idx))
`;

describe('router advertisements from a container (CVE-2020-13401, real namespaces)', { skip }, () => {
  const tag = `${process.pid}-${randomBytes(2).toString('hex')}`;
  const host = `lnra-h-${tag}`;
  const container = `lnra-c-${tag}`;
  let kernel: Kernel;
  const ip = (ns: string, ...args: string[]) => execa('ip', ['-n', ns, ...args]);
  const acceptRa = async () => (await execa('ip', ['netns', 'exec', host, 'sysctl', '-n', `net.ipv6.conf.${BRIDGE}.accept_ra`])).stdout;
  /** Sends the advertisement and says whether the host took it: a default route or an address learned from it. */
  const taken = async () => {
    await execa('ip', ['netns', 'exec', container, 'python3', '-c', SEND_RA]);
    await new Promise((r) => setTimeout(r, 300));
    const routes = (await ip(host, '-6', 'route', 'show', 'default')).stdout;
    const addrs = (await ip(host, '-6', 'addr', 'show', 'dev', BRIDGE)).stdout;
    return /proto ra/.test(routes) || /2001:db8:bad:/.test(addrs);
  };
  const forget = async () => {
    await ip(host, '-6', 'route', 'flush', 'proto', 'ra');
    await ip(host, '-6', 'addr', 'flush', 'dev', BRIDGE, 'scope', 'global', 'dynamic');
  };

  before(async () => {
    for (const ns of [host, container]) await execa('ip', ['netns', 'add', ns]);
    // A host as most are: no IPv6 forwarding, router advertisements taken where a link allows.
    await execa('ip', ['netns', 'exec', host, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=0', 'net.ipv6.conf.default.accept_ra=1']);
    kernel = createKernel({ netns: host, filterPrefixes: [VETH_PREFIX] });
    const done = await applyActions(plan(desiredFromState(STATE), await kernel.observe()), kernel);
    assert.deepEqual(done.failures, []);
    await ip(host, 'link', 'add', 'lnv-ratest0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', container);
    await ip(host, 'link', 'set', 'lnv-ratest0', 'master', BRIDGE, 'up');
    await ip(container, 'addr', 'add', 'fe80::2/64', 'dev', 'eth0', 'nodad');
    await ip(container, 'link', 'set', 'eth0', 'up');
  });

  after(async () => {
    for (const ns of [container, host]) await execa('ip', ['netns', 'del', ns], { reject: false });
    const { stdout } = await execa('ip', ['netns', 'list']);
    assert.doesNotMatch(stdout, new RegExp(`lnra-.-${tag}`), 'test namespace leaked');
  });

  it('a bridge is made with accept_ra 0: the host takes no advertisement from its containers', async () => {
    assert.equal(await acceptRa(), '0');
    assert.equal(await taken(), false);
  });

  it('turned on by hand (or made by an older ledgernet): the host takes one; the full read plans it back to 0, and then none is taken', async () => {
    await execa('ip', ['netns', 'exec', host, 'sysctl', '-q', '-w', `net.ipv6.conf.${BRIDGE}.accept_ra=1`]);
    assert.ok(await taken(), 'accept_ra 1: the container became a router of the host');
    await forget();
    const actions = plan(desiredFromState(STATE), await kernel.observe());
    assert.deepEqual(actions.map((a) => `${a.kind} ${'name' in a ? a.name : ''}`), [`bridge.accept_ra ${BRIDGE}`]);
    assert.deepEqual((await applyActions(actions, kernel)).failures, []);
    assert.equal(await acceptRa(), '0');
    assert.equal(await taken(), false);
    assert.deepEqual(plan(desiredFromState(STATE), await kernel.observe()), []);
  });
});
