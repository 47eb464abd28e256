// VXLAN changes made through rtnetlink from the daemon (kernel/iproute/vxlan-rtnl.ts) and through
// `ip -batch` / `bridge -batch` (iproute/vxlan.ts) must leave the kernel in the same state and fail
// alike. Two namespaces made (and deleted) by this test with the same bridge and underlay address,
// the same changes in each, then everything `ip -d -j link`, `bridge -j fdb` and `ip -j neigh`
// report of them compared. Needs root.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { execa } from 'execa';
import type { VxlanChange } from '../../src/kernel/iproute/vxlan.ts';
import { applyVxlan } from '../../src/kernel/vxlan.ts';
import { throwawayNetns } from '../helpers/netns.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';
const owner = { networkId: 'c1a5732e002', endpointId: null };
const base = { owner, reason: 'missing' } as const;
const BRIDGE = 'lnb-c1a5732e002';
const VX = 'lnx-c1a5732e002';
const VX6 = 'lnx-c1a5732e003';
const MAC = '02:42:0a:f1:00:12';

/** What the tools report of a namespace's VXLAN devices, their FDB and the bridge's neighbours (without counters or ages). */
async function state(netns: string): Promise<unknown> {
  const json = async (cmd: string, ...args: string[]) => JSON.parse((await execa(cmd, ['-n', netns, '-j', ...args])).stdout || '[]') as Array<Record<string, unknown>>;
  // A device's MAC is random; its port's timers run.
  const links = (await json('ip', '-d', 'link', 'show', 'type', 'vxlan')).map((l) => {
    const { ifindex: _i, address: _a, broadcast: _b, ...rest } = l;
    const info = rest['linkinfo'] as { info_slave_data?: Record<string, unknown> } | undefined;
    const port = Object.entries(info?.info_slave_data ?? {}).filter(([k]) => !k.endsWith('_timer'));
    return { ...rest, linkinfo: { ...info, info_slave_data: Object.fromEntries(port) } };
  });
  // Not the device's own MAC (`permanent` on the bridge).
  const fdb = (await json('bridge', 'fdb', 'show')).filter((f) => String(f['ifname']).startsWith('lnx-') && !(f['state'] === 'permanent' && f['dst'] === undefined));
  const neighs = await json('ip', 'neigh', 'show', 'dev', BRIDGE);
  return { links, fdb, neighs };
}

describe('VXLAN changes through rtnetlink and through ip/bridge batches', { skip }, () => {
  const spaces = { netlink: throwawayNetns('lnvxw-nl'), processes: throwawayNetns('lnvxw-pr') } as const;

  before(async () => {
    for (const netns of Object.values(spaces)) {
      const ip = (...args: string[]) => execa('ip', ['-n', netns, ...args]);
      await ip('addr', 'add', '192.168.232.1/32', 'dev', 'lo');
      await ip('addr', 'add', 'fd00:232::1/128', 'dev', 'lo');
      await ip('link', 'set', 'lo', 'up');
      await ip('link', 'add', BRIDGE, 'address', '02:4c:00:00:00:02', 'type', 'bridge');
      await ip('link', 'set', BRIDGE, 'up');
    }
  });

  /** Applies `changes` both ways; returns how each failed (null: it did not) and asserts the namespaces then look the same. */
  async function both(changes: readonly VxlanChange[]): Promise<Record<string, string | null>> {
    const out: Record<string, string | null> = {};
    for (const [how, netns] of Object.entries(spaces)) {
      out[how] = await applyVxlan(changes, { netns, via: how as 'netlink' | 'processes' }).then(
        () => null,
        (e: Error) => e.message,
      );
    }
    assert.deepEqual(await state(spaces.netlink), await state(spaces.processes), 'the same devices, FDB and neighbours');
    return out;
  }

  it('makes devices (IPv4 and IPv6 underlay), port flags, FDB entries and neighbours exactly as ip and bridge do', async () => {
    const failed = await both([
      { ...base, kind: 'vxlan.create', name: VX, alias: `ledgernet:vxlan:${owner.networkId}`, vni: 5222, local: '192.168.232.1', mtu: 1450, master: BRIDGE },
      { ...base, kind: 'vxlan.create', name: VX6, alias: 'ledgernet:vxlan:c1a5732e003', vni: 5223, local: 'fd00:232::1', mtu: 1430, master: BRIDGE },
      { ...base, kind: 'fdb.add', dev: VX, mac: '00:00:00:00:00:00', dst: '192.168.232.2' },
      { ...base, kind: 'fdb.add', dev: VX, mac: '00:00:00:00:00:00', dst: '192.168.232.3' },
      { ...base, kind: 'fdb.add', dev: VX, mac: MAC, dst: null },
      { ...base, kind: 'fdb.add', dev: VX, mac: MAC, dst: '192.168.232.2' },
      { ...base, kind: 'fdb.add', dev: VX6, mac: '00:00:00:00:00:00', dst: 'fd00:232::2' },
      { ...base, kind: 'neigh.set', dev: BRIDGE, dst: '10.241.0.12', lladdr: MAC },
    ]);
    assert.deepEqual(failed, { netlink: null, processes: null });
    const s = (await state(spaces.netlink)) as { links: Array<Record<string, unknown>>; fdb: Array<Record<string, unknown>>; neighs: Array<Record<string, unknown>> };
    const vx = s.links.find((l) => l['ifname'] === VX);
    const info = (vx?.['linkinfo'] as { info_data: Record<string, unknown>; info_slave_data: Record<string, unknown> } | undefined) ?? null;
    assert.deepEqual([vx?.['master'], vx?.['mtu'], vx?.['ifalias'], vx?.['group'], info?.info_data['id'], info?.info_data['port'], info?.info_data['local'], info?.info_data['learning']], [BRIDGE, 1450, `ledgernet:vxlan:${owner.networkId}`, 'default', 5222, 4789, '192.168.232.1', false]);
    assert.deepEqual([info?.info_slave_data['neigh_suppress'], info?.info_slave_data['learning']], [true, false]);
    assert.equal(s.fdb.filter((f) => f['mac'] === '00:00:00:00:00:00' && f['ifname'] === VX).length, 2, 'the flood list has both VTEPs');
    assert.ok(s.fdb.some((f) => f['mac'] === MAC && f['state'] === 'static' && f['master'] === BRIDGE));
    assert.deepEqual(s.neighs.map((n) => [n['dst'], n['lladdr'], n['state']]), [['10.241.0.12', MAC, ['PERMANENT']]]);
  });

  it('replaces a moved MAC, removes entries, sets a drifted device right and deletes one, as the batches do', async () => {
    await execa('ip', ['-n', spaces.netlink, 'link', 'set', VX, 'nomaster', 'mtu', '1300']);
    await execa('ip', ['-n', spaces.processes, 'link', 'set', VX, 'nomaster', 'mtu', '1300']);
    const failed = await both([
      { ...base, kind: 'vxlan.set', name: VX, mtu: 1450, master: BRIDGE, reason: 'drifted' },
      { ...base, kind: 'fdb.add', dev: VX, mac: MAC, dst: '192.168.232.3' },
      { ...base, kind: 'fdb.del', dev: VX, mac: '00:00:00:00:00:00', dst: '192.168.232.2', reason: 'orphan' },
      { ...base, kind: 'neigh.set', dev: BRIDGE, dst: '10.241.0.12', lladdr: '02:42:0a:f1:00:13' },
      { ...base, kind: 'vxlan.delete', name: VX6, reason: 'orphan' },
    ]);
    assert.deepEqual(failed, { netlink: null, processes: null });
    const s = (await state(spaces.netlink)) as { links: Array<Record<string, unknown>>; fdb: Array<Record<string, unknown>> };
    assert.deepEqual(s.links.map((l) => [l['ifname'], l['master'], l['mtu']]), [[VX, BRIDGE, 1450]]);
    assert.deepEqual(s.fdb.filter((f) => f['mac'] === MAC && f['dst'] !== undefined).map((f) => f['dst']), ['192.168.232.3'], 'the MAC moved to the other VTEP');
  });

  it('goes on past a failed FDB request, as bridge -force -batch does, and says which failed', async () => {
    const failed = await both([
      // The bridge's entry went when the port left the bridge (the test before).
      { ...base, kind: 'fdb.del', dev: VX, mac: MAC, dst: null, reason: 'orphan' },
      { ...base, kind: 'fdb.del', dev: VX, mac: MAC, dst: '192.168.232.3', reason: 'orphan' },
    ]);
    assert.match(failed['processes'] ?? '', /bridge .*exited with code 1/);
    assert.equal(failed['netlink'], '1 of 2 VXLAN requests failed: fdb.del lnx-c1a5732e002 02:42:0a:f1:00:12 (bridge port): RTNETLINK answers: No such file or directory');
    const s = (await state(spaces.netlink)) as { fdb: Array<Record<string, unknown>> };
    assert.ok(!s.fdb.some((f) => f['mac'] === MAC), 'the entry after the failure went');
  });

  // Where the batches stop (a failed `bridge -batch` keeps the neighbours' batch from running;
  // `ip -force -batch` exits at a neighbour request the kernel refuses, or a device it cannot
  // find), every other request is still made.
  it('through rtnetlink, a failed request fails only itself', async () => {
    await assert.rejects(
      applyVxlan(
        [
          { ...base, kind: 'fdb.add', dev: 'lnx-c1a5732e009', mac: MAC, dst: '192.168.232.2' },
          { ...base, kind: 'neigh.del', dev: BRIDGE, dst: '10.241.0.99', reason: 'orphan' },
          { ...base, kind: 'neigh.set', dev: 'lnb-c1a5732e009', dst: '10.241.0.13', lladdr: MAC },
          { ...base, kind: 'neigh.del', dev: BRIDGE, dst: '10.241.0.12', reason: 'orphan' },
          { ...base, kind: 'neigh.set', dev: BRIDGE, dst: '10.241.0.14', lladdr: MAC },
        ],
        { netns: spaces.netlink },
      ),
      {
        message:
          '3 of 5 VXLAN requests failed: fdb.add lnx-c1a5732e009 02:42:0a:f1:00:12 dst 192.168.232.2: Cannot find device "lnx-c1a5732e009"; ' +
          'neigh.del lnb-c1a5732e002 10.241.0.99: RTNETLINK answers: No such file or directory; ' +
          'neigh.set lnb-c1a5732e009 10.241.0.13 lladdr 02:42:0a:f1:00:12: Cannot find device "lnb-c1a5732e009"',
      },
    );
    const s = (await state(spaces.netlink)) as { neighs: Array<Record<string, unknown>> };
    assert.deepEqual(s.neighs.map((n) => n['dst']), ['10.241.0.14']);
  });
});
