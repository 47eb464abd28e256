// Link changes made through rtnetlink from the daemon (kernel/iproute/rtnl.ts) and through
// `ip -force -batch` (render.ts) must leave the kernel in the same state and fail the same way.
// Two namespaces made (and deleted) by this test, the same changes in each, then everything `ip`
// reports of the links, addresses and routes compared. Needs root.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { execa } from 'execa';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel, type HostKernel, type LinkChange } from '../../src/kernel/index.ts';
import { throwawayNetns } from '../helpers/netns.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';
const base = { owner: { networkId: null, endpointId: null }, reason: 'missing' } as const;
const NET = `ledgernet:network:${'a1'.repeat(32)}`;
const EP = `ledgernet:endpoint:${'b2'.repeat(32)}`;

/** What `ip` reports of a namespace's links, addresses and routes, without what differs by chance (indexes, random MACs, counters). */
async function state(netns: string): Promise<unknown> {
  const json = async (...args: string[]) => JSON.parse((await execa('ip', ['-n', netns, '-j', ...args])).stdout || '[]') as Array<Record<string, unknown>>;
  // Every fact of `ip -d -j link show` but what differs by chance: indexes, random MACs and the
  // bridge ids made from them, carrier and port states, timers.
  const volatile = new Set(['ifindex', 'link_index', 'operstate', 'bridge_id', 'root_id', 'designated_root', 'designated_bridge', 'state', 'id', 'no']);
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v === null || typeof v !== 'object') return v;
    return Object.fromEntries(Object.entries(v).filter(([k]) => !volatile.has(k) && !k.endsWith('_timer')).map(([k, x]) => [k, strip(x)]));
  };
  const links = (await json('-d', 'link', 'show')).map((l) => ({
    ...(strip(l) as Record<string, unknown>),
    // Carrier comes and goes by itself (a bridge has none until a port is up and has its own).
    flags: (l['flags'] as string[]).filter((f) => !['NO-CARRIER', 'LOWER_UP', 'M-DOWN'].includes(f)),
    // That peer's MAC is given; the others are random.
    address: l['ifname'] === 'lnc-b2b2b2b2b2b' || l['ifname'] === 'lo' ? l['address'] : null,
  }));
  const addrs = (await json('addr', 'show')).flatMap((a) =>
    ((a['addr_info'] ?? []) as Array<Record<string, unknown>>)
      .filter((x) => x['scope'] !== 'link')
      .map((x) => ({ dev: a['ifname'], family: x['family'], local: x['local'], len: x['prefixlen'], scope: x['scope'], broadcast: x['broadcast'] ?? null, nodad: x['nodad'] ?? false })),
  );
  const routes = [...(await json('route', 'show', 'table', 'main')), ...(await json('-6', 'route', 'show', 'table', 'main'))]
    .filter((r) => r['dst'] !== 'multicast' && !String(r['dst']).startsWith('fe80'))
    .map((r) => ({ dst: r['dst'], dev: r['dev'], protocol: r['protocol'], scope: r['scope'] ?? null, src: r['prefsrc'] ?? null, metric: r['metric'] ?? null }));
  return { links, addrs, routes };
}

describe('link changes through rtnetlink and through ip -batch', { skip }, () => {
  const spaces = { netlink: throwawayNetns('lnwrite-nl'), processes: throwawayNetns('lnwrite-ip') } as const;
  const kernels = new Map<string, HostKernel>();

  before(async () => {
    for (const [how, netns] of Object.entries(spaces)) {
      kernels.set(how, createKernel({ netns, filterPrefixes: [VETH_PREFIX], interfaceWrites: how as 'netlink' | 'processes' }));
    }
  });

  /** Applies `changes` both ways; returns each way's failures and asserts the namespaces then look the same. */
  async function both(changes: readonly LinkChange[]): Promise<unknown> {
    const results: Record<string, unknown> = {};
    for (const [how, kernel] of kernels) results[how] = (await kernel.applyLinks(changes)).failures;
    assert.deepEqual(results['netlink'], results['processes'], 'the same failures');
    assert.deepEqual(await state(spaces.netlink), await state(spaces.processes), 'the same kernel state');
    return results['netlink'];
  }

  it('makes bridges, veth pairs, ifbs, addresses and routes exactly as ip does', async () => {
    const failures = await both([
      { ...base, kind: 'bridge.create', name: 'lnb-a1a1a1a1a1a', alias: NET, mtu: 1450 },
      { ...base, kind: 'bridge.create', name: 'lnb-a2a2a2a2a2a', alias: NET, mtu: 9000, noLinkLocal: true },
      { ...base, kind: 'addr.add', dev: 'lnb-a1a1a1a1a1a', cidr: '10.231.77.1/24' },
      { ...base, kind: 'addr.add', dev: 'lnb-a1a1a1a1a1a', cidr: 'fd00:231:77::1/64' },
      { ...base, kind: 'addr.add', dev: 'lnb-a2a2a2a2a2a', cidr: '10.231.78.1/25' },
      { ...base, kind: 'veth.create', name: 'lnv-b2b2b2b2b2b', peer: 'lnc-b2b2b2b2b2b', alias: EP, peerAlias: EP, mtu: 1450, master: 'lnb-a1a1a1a1a1a', peerMac: '02:42:0a:e7:4d:02' },
      { ...base, kind: 'veth.create', name: 'lnv-b3b3b3b3b3b', peer: 'lnc-b3b3b3b3b3b', alias: EP, peerAlias: EP, mtu: 9000, master: 'lnb-a2a2a2a2a2a', peerMac: null },
      { ...base, kind: 'ifb.create', name: 'lni-b2b2b2b2b2b', alias: EP },
    ]);
    assert.deepEqual(failures, []);
    const links = (await state(spaces.netlink)) as { links: Array<Record<string, unknown>> };
    const host = links.links.find((l) => l['ifname'] === 'lnv-b2b2b2b2b2b');
    assert.deepEqual([host?.['master'], host?.['ifalias'], host?.['group'], host?.['num_tx_queues'], host?.['num_rx_queues']], ['lnb-a1a1a1a1a1a', EP, 'default', 1, 1]);
    assert.equal(links.links.find((l) => l['ifname'] === 'lnc-b2b2b2b2b2b')?.['address'], '02:42:0a:e7:4d:02');
    assert.equal(links.links.find((l) => l['ifname'] === 'lnb-a2a2a2a2a2a')?.['inet6_addr_gen_mode'], 'none');
  });

  it('changes, deletes and replaces links, deletes addresses, puts routes back', async () => {
    for (const netns of Object.values(spaces)) {
      await execa('ip', ['-n', netns, 'route', 'del', '10.231.77.0/24', 'dev', 'lnb-a1a1a1a1a1a']);
      await execa('ip', ['-n', netns, '-6', 'route', 'del', 'fd00:231:77::/64', 'dev', 'lnb-a1a1a1a1a1a']);
    }
    const failures = await both([
      { ...base, kind: 'route.add', dev: 'lnb-a1a1a1a1a1a', dst: '10.231.77.0/24', src: '10.231.77.1' },
      { ...base, kind: 'route.add', dev: 'lnb-a1a1a1a1a1a', dst: 'fd00:231:77::/64', src: 'fd00:231:77::1' },
      { ...base, kind: 'link.set', name: 'lnv-b3b3b3b3b3b', mtu: 1400, master: 'lnb-a1a1a1a1a1a' },
      { ...base, kind: 'link.set', name: 'lnc-b3b3b3b3b3b', up: true, noLinkLocal: true },
      { ...base, kind: 'addr.del', dev: 'lnb-a2a2a2a2a2a', cidr: '10.231.78.1/25' },
      { ...base, kind: 'link.delete', name: 'lni-b2b2b2b2b2b' },
      { ...base, kind: 'bridge.create', name: 'lnb-a3a3a3a3a3a', alias: NET, mtu: 1500, replaces: ['lnb-a2a2a2a2a2a'] },
    ]);
    assert.deepEqual(failures, []);
    const s = (await state(spaces.netlink)) as { links: Array<Record<string, unknown>>; routes: unknown[] };
    assert.ok(!s.links.some((l) => l['ifname'] === 'lnb-a2a2a2a2a2a' || l['ifname'] === 'lni-b2b2b2b2b2b'));
    assert.deepEqual(s.routes.filter((r) => (r as { dev: string }).dev === 'lnb-a1a1a1a1a1a').length, 2);
  });

  it('fails what the kernel refuses with the words ip prints, and goes on with the rest; but nothing names a link whose link add failed', async () => {
    const failures = await both([
      { ...base, kind: 'link.delete', name: 'lnv-0000000dead' }, // missing
      { ...base, kind: 'addr.add', dev: 'lnb-a1a1a1a1a1a', cidr: '10.231.77.1/24' }, // exists
      { ...base, kind: 'addr.del', dev: 'lnb-a1a1a1a1a1a', cidr: '10.231.99.1/24' }, // not there
      { ...base, kind: 'link.set', name: 'lnb-a3a3a3a3a3a', mtu: 1300 },
      // Exists: a link the plan did not know holds the name. Its alias, MTU and up are not set,
      // and the address of the change after it is not added to that link.
      { ...base, kind: 'bridge.create', name: 'lnb-a1a1a1a1a1a', alias: 'ledgernet:network:other', mtu: 1450 },
      { ...base, kind: 'addr.add', dev: 'lnb-a1a1a1a1a1a', cidr: '10.231.79.1/24' },
    ]);
    assert.deepEqual(failures, [
      { index: 0, message: 'Cannot find device "lnv-0000000dead"' },
      // The kernel's own words (its extended ack), which ip prints instead of the errno's.
      { index: 1, message: 'Error: ipv4: Address already assigned.' },
      { index: 2, message: 'Error: ipv4: Address not found.' },
      { index: 4, message: 'RTNETLINK answers: File exists' },
      { index: 5, message: 'not run: lnb-a1a1a1a1a1a was not made (its link add failed: the name is held by another link)' },
    ]);
    const s = (await state(spaces.netlink)) as { links: Array<Record<string, unknown>>; addrs: Array<Record<string, unknown>> };
    const held = s.links.find((l) => l['ifname'] === 'lnb-a1a1a1a1a1a');
    assert.deepEqual([held?.['ifalias'], held?.['mtu']], [NET, 1450], 'the link holding the name as it was');
    assert.ok(!JSON.stringify(s.addrs).includes('10.231.79.1'), 'no address added to it');
  });

  it('a change naming a missing link changes nothing else: no link of group default takes its alias', async () => {
    const kernel = kernels.get('netlink');
    const result = await kernel?.applyLinks([{ ...base, kind: 'link.set', name: 'lnv-0000000gone', alias: EP, mtu: 1280, up: true }]);
    assert.deepEqual(result?.failures, [{ index: 0, message: 'Cannot find device "lnv-0000000gone"' }]);
    const s = (await state(spaces.netlink)) as { links: Array<Record<string, unknown>> };
    assert.deepEqual(s.links.filter((l) => l['ifalias'] === EP && !String(l['ifname']).match(/^ln[vci]-b/)).map((l) => l['ifname']), []);
    assert.equal(s.links.find((l) => l['ifname'] === 'lo')?.['mtu'], 65536);
  });

  it('a missing master fails that change as ip words it; the changes after it still run', async () => {
    const kernel = kernels.get('netlink');
    const result = await kernel?.applyLinks([
      { ...base, kind: 'link.set', name: 'lnv-b3b3b3b3b3b', master: 'lnb-0000000dead' },
      { ...base, kind: 'link.set', name: 'lnv-b3b3b3b3b3b', mtu: 1450 },
    ]);
    assert.deepEqual(result?.failures, [{ index: 0, message: 'Error: argument "lnb-0000000dead" is wrong: Device does not exist' }]);
    const s = (await state(spaces.netlink)) as { links: Array<Record<string, unknown>> };
    assert.deepEqual(['master', 'mtu'].map((k) => s.links.find((l) => l['ifname'] === 'lnv-b3b3b3b3b3b')?.[k]), ['lnb-a1a1a1a1a1a', 1450]);
  });
});
