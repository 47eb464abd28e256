// icc=false and bridge filtering, in throwaway namespaces: a "host" holding an icc=false network's
// bridge and firewall (plan → apply) and two "containers" on it. What the full read reports
// (iccProblem) is checked against what the traffic does, and the fix the message gives is run as
// given. net.bridge.* is per namespace (Linux 5.3+). Needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel, type Kernel } from '../../src/kernel/index.ts';
import { applyActions } from '../../src/reconciler/apply.ts';
import { iccProblem } from '../../src/reconciler/bridge-filtering.ts';
import { desiredFromState } from '../../src/reconciler/desired.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { NET_A, given, networkSpec } from '../helpers/events.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';
const STATE = given({ type: 'CreateNetwork', spec: { ...networkSpec(NET_A), options: { 'ledgernet.icc': 'false' } } });
const BRIDGE = networkSpec(NET_A).bridge;

describe('icc=false and bridge filtering (real namespaces)', { skip }, () => {
  const tag = `${process.pid}-${randomBytes(2).toString('hex')}`;
  const host = `lnbnf-h-${tag}`;
  const c1 = `lnbnf-1-${tag}`;
  const c2 = `lnbnf-2-${tag}`;
  let kernel: Kernel;
  const ip = (ns: string, ...args: string[]) => execa('ip', ['-n', ns, ...args]);
  const sysctl = (...args: string[]) => execa('ip', ['netns', 'exec', host, 'sysctl', '-q', ...args]);
  const reaches = async () => (await execa('ip', ['netns', 'exec', c1, 'busybox', 'ping', '-c', '1', '-W', '1', '10.231.7.3'], { reject: false })).exitCode === 0;
  const problem = async () => iccProblem(STATE, await kernel.observe());

  before(async () => {
    for (const ns of [host, c1, c2]) await execa('ip', ['netns', 'add', ns]);
    kernel = createKernel({ netns: host, filterPrefixes: [VETH_PREFIX] });
    await sysctl('-w', 'net.ipv4.ip_forward=1', 'net.bridge.bridge-nf-call-iptables=1');
    const done = await applyActions(plan(desiredFromState(STATE), await kernel.observe()), kernel);
    assert.deepEqual(done.failures, []);
    for (const [i, ns] of [c1, c2].entries()) {
      await ip(host, 'link', 'add', `lnv-bnftest${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      await ip(host, 'link', 'set', `lnv-bnftest${i}`, 'master', BRIDGE, 'up');
      await ip(ns, 'addr', 'add', `10.231.7.${i + 2}/24`, 'dev', 'eth0');
      await ip(ns, 'link', 'set', 'eth0', 'up');
    }
  });

  after(async () => {
    for (const ns of [c1, c2, host]) await execa('ip', ['netns', 'del', ns], { reject: false });
    const { stdout } = await execa('ip', ['netns', 'list']);
    assert.doesNotMatch(stdout, new RegExp(`lnbnf-.-${tag}`), 'test namespace leaked');
  });

  it('names the network exactly when bridge-nf-call-iptables is 0 and its containers reach each other, and the fix closes it again', async () => {
    assert.equal(await reaches(), false, 'icc=false with bridge filtering on: the containers do not reach each other');
    assert.equal(await problem(), null);

    await sysctl('-w', 'net.bridge.bridge-nf-call-iptables=0');
    assert.ok(await reaches(), 'bridge filtering off: icc=false is not enforced');
    const open = await problem();
    assert.deepEqual(open?.networks, [NET_A.slice(0, 12)]);
    assert.deepEqual(open?.settings, ['net.bridge.bridge-nf-call-iptables']);
    assert.match(open?.message ?? '', /\(icc=false\) reach each other: .* = 1, and it is 0\. /);

    const fix = /Turn it on: (sysctl -w \S+=1), and keep it/.exec(open?.message ?? '')?.[1] ?? '';
    assert.equal(fix, 'sysctl -w net.bridge.bridge-nf-call-iptables=1');
    await execa('ip', ['netns', 'exec', host, ...fix.split(' ')]);
    assert.equal(await reaches(), false, 'the fix as given closes it again');
    assert.equal(await problem(), null);
  });

  it("enableBridgeNf, run inside the namespace as the daemon runs in the host's: sets what is 0 to 1 and says so; nothing when on", async () => {
    const script = "import('./src/kernel/bridge-nf.ts').then(async (m) => console.log(JSON.stringify(await m.enableBridgeNf(['iptables', 'ip6tables']))))";
    const inside = async () => JSON.parse((await execa('ip', ['netns', 'exec', host, process.execPath, '--import', 'tsx', '-e', script])).stdout) as string[];
    await sysctl('-w', 'net.bridge.bridge-nf-call-iptables=0', 'net.bridge.bridge-nf-call-ip6tables=1');
    assert.deepEqual(await inside(), ['net.bridge.bridge-nf-call-iptables']);
    const now = await execa('ip', ['netns', 'exec', host, 'sysctl', '-n', 'net.bridge.bridge-nf-call-iptables', 'net.bridge.bridge-nf-call-ip6tables']);
    assert.deepEqual(now.stdout.split('\n'), ['1', '1']);
    assert.deepEqual(await inside(), [], 'on already: nothing changed');
    assert.equal(await reaches(), false, 'icc=false enforced again');
  });
});
