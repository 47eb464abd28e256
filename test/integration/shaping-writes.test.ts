// Shaping changes made through rtnetlink from the daemon (kernel/tc/rtnl.ts) and through
// `tc -force -batch` (render.ts) must leave the kernel in the same state and fail the same way.
// Two namespaces made (and deleted) by this test with the same links, the same changes in each,
// then everything `tc -d -j` reports of their qdiscs and ingress filters compared. Needs root.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { execa } from 'execa';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel, type HostKernel } from '../../src/kernel/index.ts';
import type { ShapingChange } from '../../src/kernel/changes.ts';
import { throwawayNetns } from '../helpers/netns.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';
const base = { owner: { networkId: null, endpointId: null }, reason: 'missing' } as const;
const DEVS = ['lnv-c1c1c1c1c1c', 'lnc-c1c1c1c1c1c', 'lnv-c2c2c2c2c2c', 'lnc-c2c2c2c2c2c', 'lni-c1c1c1c1c1c', 'lni-c2c2c2c2c2c'];

/** What `tc -d -j` reports of a namespace's qdiscs and of the ingress filters of its devices. */
async function state(netns: string): Promise<unknown> {
  const json = async (...args: string[]) => JSON.parse((await execa('tc', ['-n', netns, '-d', '-j', ...args])).stdout || '[]') as unknown[];
  const filters: Record<string, unknown> = {};
  for (const dev of DEVS) filters[dev] = await json('filter', 'show', 'dev', dev, 'ingress');
  // A qdisc made without a handle gets the kernel's next free one (a counter shared by the whole kernel).
  const qdiscs = (await json('qdisc', 'show')).map((q) => {
    const { handle, ...rest } = q as Record<string, unknown>;
    return /^8[0-9a-f]{3}:$/.test(String(handle)) ? rest : { handle, ...rest };
  });
  return { qdiscs, filters };
}

describe('shaping changes through rtnetlink and through tc -batch', { skip }, () => {
  const spaces = { netlink: throwawayNetns('lnshape-nl'), processes: throwawayNetns('lnshape-tc') } as const;
  const kernels = new Map<string, HostKernel>();

  before(async () => {
    for (const [how, netns] of Object.entries(spaces)) {
      const ip = (...args: string[]) => execa('ip', ['-n', netns, ...args]);
      for (const n of ['c1', 'c2']) {
        await ip('link', 'add', `lnv-${n.repeat(5)}${n[0]}`, 'type', 'veth', 'peer', 'name', `lnc-${n.repeat(5)}${n[0]}`);
        await ip('link', 'add', `lni-${n.repeat(5)}${n[0]}`, 'type', 'ifb');
      }
      for (const d of DEVS) await ip('link', 'set', d, 'up');
      kernels.set(how, createKernel({ netns, filterPrefixes: [VETH_PREFIX], interfaceWrites: how as 'netlink' | 'processes' }));
    }
  });

  /** Applies `changes` both ways; returns the failures and asserts the namespaces then look the same. */
  async function both(changes: readonly ShapingChange[]): Promise<unknown> {
    const results: Record<string, Array<{ index: number; message: string }>> = {};
    for (const [how, kernel] of kernels) results[how] = [...(await kernel.applyShaping(changes)).failures];
    // tc goes on after a device it cannot find in a filter's action with its parser's complaints
    // (`; bad action parsing; …`); the request's own failure is the first of its words.
    const firstWords = (fs: Array<{ index: number; message: string }> = []) => fs.map((f) => ({ ...f, message: f.message.replace(/; bad action parsing;.*$/, '') }));
    assert.deepEqual(results['netlink'], firstWords(results['processes']), 'the same failures');
    assert.deepEqual(await state(spaces.netlink), await state(spaces.processes), 'the same qdiscs and filters');
    return results['netlink'];
  }

  it('makes tbf qdiscs (a rate over 32 bits of bytes/s included) and ingress redirects exactly as tc does', async () => {
    const failures = await both([
      { ...base, kind: 'qdisc.set', name: 'lnv-c1c1c1c1c1c', rate: 10_000_000, mtu: 1500 },
      { ...base, kind: 'qdisc.set', name: 'lni-c1c1c1c1c1c', rate: 1_234_567, mtu: 1500 },
      { ...base, kind: 'qdisc.set', name: 'lnv-c2c2c2c2c2c', rate: 40_000_000_000, mtu: 1500 },
      { ...base, kind: 'redirect.set', name: 'lnv-c1c1c1c1c1c', to: 'lni-c1c1c1c1c1c', replace: false },
      { ...base, kind: 'redirect.set', name: 'lnv-c2c2c2c2c2c', to: 'lni-c2c2c2c2c2c', replace: false },
    ]);
    assert.deepEqual(failures, []);
    const s = (await state(spaces.netlink)) as { qdiscs: Array<Record<string, unknown>>; filters: Record<string, Array<Record<string, unknown>>> };
    const root = (dev: string) => s.qdiscs.find((q) => q['dev'] === dev && q['root'] === true);
    assert.deepEqual([root('lnv-c1c1c1c1c1c')?.['kind'], (root('lnv-c1c1c1c1c1c')?.['options'] as Record<string, unknown>)?.['rate']], ['tbf', 1_250_000]);
    assert.ok(s.qdiscs.some((q) => q['dev'] === 'lnv-c2c2c2c2c2c' && q['kind'] === 'ingress'));
    assert.match(JSON.stringify(s.filters['lnv-c1c1c1c1c1c']), /"to_dev":"lni-c1c1c1c1c1c"/);
  });

  it('changes rates, replaces a redirect and deletes qdiscs exactly as tc does', async () => {
    const failures = await both([
      { ...base, kind: 'qdisc.set', name: 'lnv-c1c1c1c1c1c', rate: 20_000_000, mtu: 1500 },
      { ...base, kind: 'redirect.set', name: 'lnv-c1c1c1c1c1c', to: 'lni-c2c2c2c2c2c', replace: true },
      { ...base, kind: 'qdisc.delete', name: 'lni-c1c1c1c1c1c' },
      { ...base, kind: 'redirect.delete', name: 'lnv-c2c2c2c2c2c' },
    ]);
    assert.deepEqual(failures, []);
    const s = (await state(spaces.netlink)) as { qdiscs: Array<Record<string, unknown>>; filters: Record<string, unknown> };
    assert.match(JSON.stringify(s.filters['lnv-c1c1c1c1c1c']), /"to_dev":"lni-c2c2c2c2c2c"/);
    assert.deepEqual(s.filters['lnv-c2c2c2c2c2c'], []);
    assert.ok(!s.qdiscs.some((q) => q['dev'] === 'lni-c1c1c1c1c1c' && q['kind'] === 'tbf'));
  });

  it('fails what the kernel refuses, and a missing device, with the words tc prints; goes on with the rest', async () => {
    const failures = await both([
      { ...base, kind: 'redirect.set', name: 'lnv-c1c1c1c1c1c', to: 'lni-c1c1c1c1c1c', replace: false }, // its ingress qdisc exists
      { ...base, kind: 'qdisc.delete', name: 'lni-c1c1c1c1c1c' }, // no root qdisc of its own
      { ...base, kind: 'qdisc.set', name: 'lnv-0000000dead', rate: 1_000_000, mtu: 1500 },
      { ...base, kind: 'redirect.set', name: 'lnv-c2c2c2c2c2c', to: 'lni-0000000dead', replace: false },
      { ...base, kind: 'qdisc.set', name: 'lni-c2c2c2c2c2c', rate: 3_000_000, mtu: 1500 },
    ]);
    assert.deepEqual(failures, [
      { index: 0, message: 'Error: Exclusivity flag on, cannot modify.' },
      { index: 1, message: 'Error: Cannot delete qdisc with handle of zero.' },
      { index: 2, message: 'Cannot find device "lnv-0000000dead"' },
      { index: 3, message: 'Cannot find device "lni-0000000dead"' },
    ]);
    // Every change after a failed one still ran (tc -force): the last qdisc was made.
    const s = (await state(spaces.netlink)) as { qdiscs: Array<Record<string, unknown>> };
    assert.ok(s.qdiscs.some((q) => q['dev'] === 'lni-c2c2c2c2c2c' && q['kind'] === 'tbf'));
  });
});

// A tbf drops every packet longer than its burst: on a network of a large MTU the burst must hold
// a whole frame, on the veth (ingress_rate) and on the ifb its ingress is redirected to (egress_rate).
for (const writes of ['netlink', 'processes'] as const) {
  describe(`a tbf on a veth of MTU 65535 passes whole frames (writes: ${writes})`, { skip }, () => {
    const host = throwawayNetns('lnshape-mtu');
    const container = throwawayNetns('lnshape-mtuc');
    const [veth, peer, ifb] = ['lnv-m1m1m1m1m1m', 'lnc-m1m1m1m1m1m', 'lni-m1m1m1m1m1m'];
    const ping = async () =>
      (await execa('ip', ['netns', 'exec', host, 'busybox', 'ping', '-c', '2', '-W', '1', '-s', '30000', '10.231.99.2'], { reject: false })).stdout;

    before(async () => {
      const ip = (...args: string[]) => execa('ip', ['-n', host, ...args]);
      await ip('link', 'add', veth, 'mtu', '65535', 'type', 'veth', 'peer', 'name', peer, 'mtu', '65535', 'netns', container);
      await ip('link', 'add', ifb, 'type', 'ifb');
      await ip('addr', 'add', '10.231.99.1/24', 'dev', veth);
      for (const d of [veth, ifb]) await ip('link', 'set', d, 'up');
      await execa('ip', ['-n', container, 'addr', 'add', '10.231.99.2/24', 'dev', peer]);
      await execa('ip', ['-n', container, 'link', 'set', peer, 'up']);
    });

    it('a 10 Mbit/s tbf on the veth and on its ifb has a burst of the MTU and the Ethernet header, and a 30,000-byte ping crosses both', async () => {
      assert.match(await ping(), /2 packets received/, 'crosses before shaping');
      const kernel = createKernel({ netns: host, filterPrefixes: [VETH_PREFIX], interfaceWrites: writes });
      const { failures } = await kernel.applyShaping([
        { ...base, kind: 'qdisc.set', name: veth, rate: 10_000_000, mtu: 65_535 },
        { ...base, kind: 'qdisc.set', name: ifb, rate: 10_000_000, mtu: 65_535 },
        { ...base, kind: 'redirect.set', name: veth, to: ifb, replace: false },
      ]);
      assert.deepEqual(failures, []);
      for (const dev of [veth, ifb]) {
        const [tbf] = JSON.parse((await execa('tc', ['-n', host, '-j', 'qdisc', 'show', 'dev', dev, 'root'])).stdout) as Array<{ kind: string; options: { burst: number } }>;
        assert.equal(tbf?.kind, 'tbf');
        // tc prints the burst back from the bucket in ticks and whole microseconds, rounded down:
        // 65,548 for the 65,549 written at 10 Mbit/s (1.25 bytes a microsecond).
        assert.ok((tbf?.options.burst ?? 0) >= 65_549 - 2, `${dev}: burst ${tbf?.options.burst} holds a frame of 65,549 bytes`);
      }
      // The echo request leaves through the veth's tbf; the reply enters the veth, goes to the ifb and its tbf.
      assert.match(await ping(), /2 packets received/, 'crosses both tbfs');
    });
  });
}
