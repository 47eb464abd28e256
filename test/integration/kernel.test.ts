// Real `ip` and `iptables` inside a namespace made (and deleted) by this test. Needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel } from '../../src/kernel/index.ts';
import type { HostKernel } from '../../src/kernel/index.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

const BRIDGE = 'lnb-7e570000001';
const HOST = 'lnv-7e570000002';
const INNER = 'lnc-7e570000002';
const NET_ALIAS = `ledgernet:network:${'7e57'.repeat(16)}`;
const EP_ALIAS = `ledgernet:endpoint:${'e9'.repeat(32)}`;

describe('kernel in a throwaway network namespace', { skip }, () => {
  const netns = `lntest-${process.pid}-${randomBytes(3).toString('hex')}`;
  let kernel: HostKernel;

  before(async () => {
    await execa('ip', ['netns', 'add', netns]);
    kernel = createKernel({ netns, filterPrefixes: [VETH_PREFIX] });
  });

  after(async () => {
    // Deleting the namespace removes its links and its iptables tables with it.
    await execa('ip', ['netns', 'del', netns], { reject: false });
    const { stdout } = await execa('ip', ['netns', 'list']);
    assert.doesNotMatch(stdout, new RegExp(`^${netns}\\b`, 'm'), 'test namespace leaked');
  });

  it('observes a fresh namespace', async () => {
    const snap = await kernel.observe();
    assert.deepEqual(
      snap.links.map((l) => l.name),
      ['lo'],
    );
    assert.deepEqual(snap.addrs, []);
    assert.deepEqual(Object.keys(snap.filter.chains), ['INPUT', 'FORWARD', 'OUTPUT']);
    assert.deepEqual(Object.keys(snap.filter6?.chains ?? {}), ['INPUT', 'FORWARD', 'OUTPUT'], 'ip6tables filter table read too');
  });

  it('applies one batch: a bridge with alias, mtu, address, up, and an enslaved veth pair', async () => {
    const result = await kernel.ipBatch([
      `link add ${BRIDGE} type bridge`,
      `link set dev ${BRIDGE} alias ${NET_ALIAS} mtu 1450 address 02:42:0a:e7:09:01 up`,
      `addr add 10.231.9.1/24 dev ${BRIDGE}`,
      `addr add fd00:231:9::1/64 dev ${BRIDGE} nodad`,
      `link add ${HOST} mtu 1450 type veth peer name ${INNER} mtu 1450`,
      `link set dev ${HOST} master ${BRIDGE} alias ${EP_ALIAS} up`,
    ]);
    assert.deepEqual(result, { failures: [] });

    const snap = await kernel.observe();
    const byName = new Map(snap.links.map((l) => [l.name, l]));
    assert.deepEqual({ ...byName.get(BRIDGE), index: 0 }, {
      name: BRIDGE,
      index: 0,
      kind: 'bridge',
      master: null,
      mtu: 1450,
      up: true,
      alias: NET_ALIAS,
      group: 'default',
      mac: '02:42:0a:e7:09:01',
      peer: null,
      peerInOtherNetns: false,
      addrGenMode: 'eui64',
    });
    const host = byName.get(HOST);
    assert.equal(host?.kind, 'veth');
    assert.equal(host?.master, BRIDGE);
    assert.equal(host?.up, true);
    assert.equal(host?.alias, EP_ALIAS);
    assert.equal(host?.mtu, 1450);
    assert.equal(host?.peer, INNER);
    assert.equal(host?.peerInOtherNetns, false);
    assert.equal(byName.get(INNER)?.up, false);
    assert.equal(byName.get(INNER)?.peer, HOST);

    const bridgeAddrs = snap.addrs.filter((a) => a.dev === BRIDGE && a.scope === 'global');
    assert.deepEqual(bridgeAddrs, [
      { dev: BRIDGE, family: 'inet', cidr: '10.231.9.1/24', scope: 'global' },
      { dev: BRIDGE, family: 'inet6', cidr: 'fd00:231:9::1/64', scope: 'global' },
    ]);
  });

  it('reports failed lines by index while -force applies the others', async () => {
    const second = 'lnb-7e570000003';
    const lines = [
      `link add ${second} type bridge`,
      `link add ${BRIDGE} type bridge`, // exists
      `link set dev ${second} up`,
      `link del lnv-7e57000dead`, // missing
      `link set dev ${second} mtu 1400`,
    ];
    const { failures } = await kernel.ipBatch(lines);
    assert.deepEqual(failures, [
      { line: 1, command: lines[1], message: 'RTNETLINK answers: File exists' },
      { line: 3, command: lines[3], message: 'Cannot find device "lnv-7e57000dead"' },
    ]);
    const link = (await kernel.observe()).links.find((l) => l.name === second);
    assert.equal(link?.up, true);
    assert.equal(link?.mtu, 1400);
  });

  it('pins a line that makes ip exit early, and reports the lines after it as not run', async () => {
    const lines = [
      `link set dev ${HOST} nomaster`,
      `link set dev ${HOST} master lnb-7e57000dead`, // ip exits here despite -force
      `link set dev ${HOST} master ${BRIDGE}`,
    ];
    const { failures } = await kernel.ipBatch(lines);
    assert.deepEqual(
      failures.map((f) => [f.line, f.message]),
      [
        [1, 'Error: argument "lnb-7e57000dead" is wrong: Device does not exist'],
        [2, 'not run: ip -batch stopped at line 1'],
      ],
    );
    const host = (await kernel.observe()).links.find((l) => l.name === HOST);
    assert.equal(host?.master, null, 'line 0 ran, line 2 did not');
  });

  it('applies typed changes: one batch per tool, failed changes reported by index', async () => {
    const base = { owner: { networkId: null, endpointId: null }, reason: 'missing' } as const;
    const br = 'lnb-7e570000004';
    const links = await kernel.applyLinks([
      { ...base, kind: 'bridge.create', name: br, alias: NET_ALIAS, mtu: 1400 },
      { ...base, kind: 'bridge.create', name: BRIDGE, alias: NET_ALIAS, mtu: 1450 }, // exists
      { ...base, kind: 'addr.add', dev: br, cidr: '10.231.10.1/24' },
      { ...base, kind: 'link.delete', name: 'lnv-7e57000dead' }, // missing
    ]);
    assert.deepEqual(links.failures, [
      { index: 1, message: 'RTNETLINK answers: File exists' },
      { index: 3, message: 'Cannot find device "lnv-7e57000dead"' },
    ]);
    const snap = await kernel.observe();
    assert.deepEqual(snap.links.filter((l) => l.name === br).map((l) => [l.kind, l.mtu, l.alias, l.group, l.up]), [['bridge', 1400, NET_ALIAS, 'default', true]]);
    assert.ok(snap.addrs.some((a) => a.dev === br && a.cidr === '10.231.10.1/24'));

    const shaping = await kernel.applyShaping([
      { ...base, kind: 'qdisc.delete', name: 'lnv-7e57000dead' },
      { ...base, kind: 'qdisc.set', name: br, rate: 8_000_000, mtu: 1400 },
    ]);
    assert.deepEqual(shaping.failures.map((f) => f.index), [0]);
    assert.equal((await kernel.observe()).qdiscs.find((q) => q.dev === br && q.root)?.rate, 1_000_000);

    const rule = `-i ${br} -o ${br} -m comment --comment "ledgernet:typed" -j ACCEPT`;
    await kernel.restoreIptables('filter', [{ ...base, kind: 'chain.write', table: 'filter', chain: 'LEDGERNET-TYPED', rules: [rule] }]);
    assert.deepEqual((await kernel.observe()).filter.chains['LEDGERNET-TYPED']?.rules, [rule]);
    await kernel.restoreIptables('filter', [{ ...base, kind: 'chain.delete', table: 'filter', chain: 'LEDGERNET-TYPED' }]);
    assert.equal((await kernel.observe()).filter.chains['LEDGERNET-TYPED'], undefined);
  });

  it('restores the tables asked for together in one process, answered per table: a failing table fails alone', async () => {
    const base = { owner: { networkId: null, endpointId: null }, reason: 'missing' } as const;
    const rules = ['-m comment --comment "ledgernet:joined" -j RETURN'];
    const write = (table: 'filter' | 'nat' | 'mangle', chain: string) => kernel.restoreIptables(table, [{ ...base, kind: 'chain.write', table, chain, rules }]);
    const drop = (table: 'filter' | 'mangle', chain: string) => kernel.restoreIptables(table, [{ ...base, kind: 'chain.delete', table, chain }]);
    // The middle table's change cannot be applied (no such rule to delete): the restore stops there.
    const missing = kernel.restoreIptables('nat', [{ ...base, kind: 'hook.delete', table: 'nat', from: 'POSTROUTING', rule: '-m comment --comment "ledgernet:absent" -j RETURN' }]);
    const results = await Promise.allSettled([write('filter', 'LEDGERNET-J1'), missing, write('mangle', 'LEDGERNET-J3')]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
    const failed = results[1] as PromiseRejectedResult;
    assert.match(String(failed.reason), /LN_ERR_KERNEL_EXEC|could not apply iptables rules/);
    const snap = await kernel.observe();
    assert.deepEqual(snap.filter.chains['LEDGERNET-J1']?.rules, rules, 'the table before the failing one is in');
    assert.deepEqual(snap.mangle?.chains['LEDGERNET-J3']?.rules, rules, 'the table after it was restored again');
    await Promise.all([drop('filter', 'LEDGERNET-J1'), drop('mangle', 'LEDGERNET-J3')]);
    const after = await kernel.observe();
    assert.equal(after.filter.chains['LEDGERNET-J1'], undefined);
    assert.equal(after.mangle?.chains['LEDGERNET-J3'], undefined);
  });

  it('restores iptables rules without flushing, and observes them', async () => {
    const rule = `-i ${BRIDGE} -o ${BRIDGE} -m comment --comment "ledgernet:test" -j ACCEPT`;
    await kernel.iptablesRestore(
      [
        '*filter',
        ':LEDGERNET-FORWARD - [0:0]',
        '-A FORWARD -m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD',
        `-A LEDGERNET-FORWARD ${rule}`,
        'COMMIT',
        '',
      ].join('\n'),
    );
    const { filter } = await kernel.observe();
    assert.deepEqual(filter.chains['LEDGERNET-FORWARD'], { name: 'LEDGERNET-FORWARD', policy: null, rules: [rule] });
    assert.deepEqual(filter.chains['FORWARD']?.rules, ['-m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD']);
  });

  it('restores ip6tables rules (family 6) into the IPv6 table only, and observes them', async () => {
    const rule = `-i ${BRIDGE} -o ${BRIDGE} -p ipv6-icmp -m icmp6 --icmpv6-type 135 -m comment --comment "ledgernet:test6" -j ACCEPT`;
    const v4 = (await kernel.observe()).filter;
    await kernel.iptablesRestore(['*filter', ':LEDGERNET-FORWARD6 - [0:0]', `-A LEDGERNET-FORWARD6 ${rule}`, 'COMMIT', ''].join('\n'), 6);
    const snap = await kernel.observe();
    assert.deepEqual(snap.filter6?.chains['LEDGERNET-FORWARD6'], { name: 'LEDGERNET-FORWARD6', policy: null, rules: [rule] });
    assert.deepEqual(snap.filter, v4, 'the IPv4 table is untouched');
    await kernel.iptablesRestore('*filter\n-F LEDGERNET-FORWARD6\n-X LEDGERNET-FORWARD6\nCOMMIT\n', 6);
    assert.equal((await kernel.observe()).filter6?.chains['LEDGERNET-FORWARD6'], undefined);
  });

  it('without ip6tables, observe reports no IPv6 table and reads the rest as usual', async () => {
    // A PATH holding every program observe runs except ip6tables-save, for a kernel that has not
    // read this namespace yet (one that has answers an unchanged nf_tables generation with its
    // last read: the rules did not change, only the programs did).
    const dir = await mkdtemp(join(tmpdir(), 'ln-no-ip6tables-'));
    const path = process.env['PATH'];
    try {
      for (const p of ['ip', 'tc', 'iptables-save', 'sysctl']) {
        await symlink((await execa('sh', ['-c', `command -v ${p}`])).stdout.trim(), join(dir, p));
      }
      process.env['PATH'] = dir;
      const snap = await createKernel({ netns, filterPrefixes: [VETH_PREFIX] }).observe();
      assert.equal(snap.filter6, null);
      assert.deepEqual(Object.keys(snap.filter.chains).slice(0, 3), ['INPUT', 'FORWARD', 'OUTPUT']);
    } finally {
      process.env['PATH'] = path;
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('turns a failed restore into LN_ERR_KERNEL_EXEC and applies none of it', async () => {
    const before = (await kernel.observe()).filter;
    const input = '*filter\n-A FORWARD -j ACCEPT\n-A LEDGERNET-MISSING -j ACCEPT\nCOMMIT\n';
    await assert.rejects(kernel.iptablesRestore(input), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.equal(e.name, 'DriverError');
      assert.equal((e as { code?: unknown }).code, 'LN_ERR_KERNEL_EXEC');
      assert.match(e.message, /iptables-restore -w --noflush exited with code 1: .*line 3 failed/);
      assert.match(String((e.cause as { stderr?: unknown }).stderr), /No chain\/target\/match/);
      return true;
    });
    assert.deepEqual((await kernel.observe()).filter, before);
  });

  it('runs no process for an empty batch', async () => {
    const nowhere = createKernel({ netns: `${netns}-absent`, filterPrefixes: [VETH_PREFIX] });
    assert.deepEqual(await nowhere.ipBatch([]), { failures: [] });
  });

  it('reports a missing namespace as a failure of the first line, or as LN_ERR_KERNEL_EXEC', async () => {
    const nowhere = createKernel({ netns: `${netns}-absent`, filterPrefixes: [VETH_PREFIX] });
    const { failures } = await nowhere.ipBatch(['link set lo up', 'link set lo mtu 1500']);
    assert.deepEqual(
      failures.map((f) => f.line),
      [0, 1],
    );
    assert.match(failures[0]?.message ?? '', /Cannot open network namespace/);
    await assert.rejects(nowhere.observe(), { name: 'DriverError', code: 'LN_ERR_KERNEL_EXEC' });
  });
});
