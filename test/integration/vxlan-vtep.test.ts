// A host's VTEP changes (its underlay address moved: DHCP, a new --vtep, another route to NATS)
// under a converged cluster network, against the real kernel: two "hosts" (namespaces made here,
// joined by a veth underlay), each with a bridge and a "container" namespace on it, as in
// vxlan.test.ts. The VXLAN device keeps the `local` it was made with, so the next plan deletes and
// creates it again with the new one (its FDB entries with it), the other host moves its entries to
// the new VTEP, and the containers reach each other again. Read and applied through rtnetlink,
// then (a second move) through `ip`/`bridge` processes. Needs root; everything is deleted after.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { applyVxlan, observeVxlan, observeVxlanLinks } from '../../src/kernel/vxlan.ts';
import { planVxlans, type DesiredVxlan } from '../../src/reconciler/cluster.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';
const tag = `${process.pid % 10000}${randomBytes(2).toString('hex')}`;
const ns = (n: string) => `lnvt${tag}-${n}`;
const BRIDGE = 'lnb-c1a5732e002';
const VX = 'lnx-c1a5732e002';
const vtep: Record<1 | 2, string> = { 1: '192.168.232.1', 2: '192.168.232.2' };

async function ip(...args: string[]): Promise<string> {
  return (await execa('ip', args)).stdout;
}

function desired(me: 1 | 2): DesiredVxlan {
  const peer = me === 1 ? 2 : 1;
  const mac = `02:42:0a:f1:00:1${peer}`;
  return {
    networkId: 'c1a5732e002',
    cluster: 'blue',
    name: VX,
    alias: 'ledgernet:vxlan:c1a5732e002',
    vni: 5124,
    local: vtep[me],
    mtu: 1450,
    bridge: BRIDGE,
    fdb: [
      { mac: '00:00:00:00:00:00', dst: vtep[peer] },
      { mac, dst: null },
      { mac, dst: vtep[peer] },
    ],
    neighs: [{ dst: `10.241.0.1${peer}`, lladdr: mac }],
  };
}

type Via = 'netlink' | 'processes';

/** As the reconciler's cluster step reads and plans (planClusterObjects), on host `me`. */
async function plan(me: 1 | 2, via: Via) {
  const where = { netns: ns(`h${me}`), via };
  const { links } = await observeVxlanLinks(vtep[me], where);
  const seen = await observeVxlan(new Set([VX]), new Set([BRIDGE]), where);
  return planVxlans([desired(me)], { links, ...seen });
}

async function ping(): Promise<{ exitCode: number | undefined; out: string }> {
  const r = await execa('ip', ['netns', 'exec', ns('c1'), 'busybox', 'ping', '-c', '2', '-W', '1', '10.241.0.12'], { reject: false });
  return { exitCode: r.exitCode, out: r.stdout + r.stderr };
}

/** h1's underlay address moves from its VTEP to `to`; the desired state follows (the new VTEP is published). */
async function moveH1(to: string): Promise<void> {
  await ip('-n', ns('h1'), 'addr', 'del', `${vtep[1]}/24`, 'dev', 'ul');
  await ip('-n', ns('h1'), 'addr', 'add', `${to}/24`, 'dev', 'ul');
  vtep[1] = to;
}

async function localOfH1(): Promise<string | undefined> {
  const [link] = JSON.parse(await ip('-n', ns('h1'), '-j', '-d', 'link', 'show', VX)) as { linkinfo?: { info_data?: { local?: string } } }[];
  return link?.linkinfo?.info_data?.local;
}

describe('VXLAN: a host whose VTEP changed, in throwaway namespaces', { skip }, () => {
  before(async () => {
    for (const n of ['h1', 'h2', 'c1', 'c2']) await ip('netns', 'add', ns(n));
    await ip('-n', ns('h1'), 'link', 'add', 'ul', 'type', 'veth', 'peer', 'name', 'ul', 'netns', ns('h2'));
    for (const me of [1, 2] as const) {
      const h = ns(`h${me}`);
      const c = ns(`c${me}`);
      await ip('-n', h, 'addr', 'add', `${vtep[me]}/24`, 'dev', 'ul');
      await ip('-n', h, 'link', 'set', 'ul', 'up');
      await ip('-n', h, 'link', 'add', BRIDGE, 'address', '02:4c:00:00:00:02', 'mtu', '1450', 'type', 'bridge');
      await ip('-n', h, 'addr', 'add', '10.241.0.1/24', 'dev', BRIDGE);
      await ip('-n', h, 'link', 'set', BRIDGE, 'up');
      await ip('-n', h, 'link', 'add', 'v0', 'mtu', '1450', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', c);
      await ip('-n', h, 'link', 'set', 'v0', 'master', BRIDGE, 'up');
      await ip('-n', c, 'link', 'set', 'eth0', 'address', `02:42:0a:f1:00:1${me}`, 'up');
      await ip('-n', c, 'addr', 'add', `10.241.0.1${me}/24`, 'dev', 'eth0');
    }
    for (const me of [1, 2] as const) await applyVxlan(await plan(me, 'netlink'), { netns: ns(`h${me}`) });
  });

  after(async () => {
    for (const n of ['h1', 'h2', 'c1', 'c2']) await execa('ip', ['netns', 'del', ns(n)], { reject: false });
    assert.doesNotMatch(await ip('netns', 'list'), new RegExp(`lnvt${tag}`));
  });

  it('converged: nothing to plan, and the containers reach each other', async () => {
    for (const me of [1, 2] as const) assert.deepEqual(await plan(me, 'netlink'), []);
    const r = await ping();
    assert.equal(r.exitCode, 0, r.out);
  });

  for (const [via, to] of [['netlink', '192.168.232.11'], ['processes', '192.168.232.21']] as const) {
    it(`h1's VTEP moves to ${to}: its device is deleted and made again with it, h2's entries follow, the ping passes again (read and applied by ${via})`, async () => {
      const from = vtep[1];
      await moveH1(to);
      assert.equal(await localOfH1(), from, 'the device still has its old local address');
      assert.notEqual((await ping()).exitCode, 0, 'the tunnel is broken until the plans are applied');
      const h1 = await plan(1, via);
      assert.deepEqual(h1, await plan(1, via === 'netlink' ? 'processes' : 'netlink'), 'both reads plan the same');
      const why = `local ${to} expected, ${from} found`;
      assert.deepEqual(h1.map((c) => `${c.kind} ${c.reason} ${c.detail ?? ''}`.trim()), [
        `vxlan.delete drifted ${why}: deleted, then created again`,
        `vxlan.create drifted ${why}: created again, with its FDB entries`,
        'fdb.add missing',
        'fdb.add missing',
        'fdb.add missing',
      ]);
      await applyVxlan(h1, { netns: ns('h1'), via });
      assert.deepEqual(await plan(1, via), [], 'h1 converged');
      assert.equal(await localOfH1(), to);
      const link = (await observeVxlanLinks(to, { netns: ns('h1'), via })).links.find((l) => l.name === VX);
      assert.deepEqual([link?.master, link?.up, link?.mtu, link?.vxlan], [BRIDGE, true, 1450, { vni: 5124, local: to, port: 4789 }], 'on its bridge, up');
      const h2 = await plan(2, via);
      assert.ok(h2.length > 0 && h2.every((c) => c.kind === 'fdb.add' || c.kind === 'fdb.del'), 'h2 moves its FDB entries only');
      await applyVxlan(h2, { netns: ns('h2'), via });
      assert.deepEqual(await plan(2, via), [], 'h2 converged');
      const r = await ping();
      assert.equal(r.exitCode, 0, r.out);
    });
  }
});
