// The full observe remembers what cannot change (a link's kind, by ifindex and name) and does not
// parse again a text it parsed last time (kernel/observe.ts). Here every change made behind its
// back between two observes (by `ip`, `iptables` in a throwaway namespace) must show in the next
// one, exactly as a read of everything with `ip -d` and `iptables-save -t` shows it. Needs root.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel, parseAddrs, parseIngressRedirects, parseIptablesSave, parseLinks, parseQdiscs, parseSysctl, type HostKernel, type KernelSnapshot } from '../../src/kernel/index.ts';
import { watchNfTables } from '../../src/kernel/nf-changes.ts';
import { readNfGeneration } from '../../src/kernel/nf-generation.ts';
import { parseNftTable } from '../../src/kernel/nftables/parse.ts';
import { NFT_FAMILY, NFT_TABLE } from '../../src/kernel/nftables/table.ts';
import { throwawayNetns } from '../helpers/netns.ts';
import { tracing } from '../helpers/trace-runs.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

/** The argument lines of every `tc` the daemon's code started while `f` ran. */
const tracingTc = async (f: () => Promise<unknown>): Promise<string[]> => (await tracing(['tc'], f)).map((l) => l.slice('tc '.length));

// The daemon's way (netlink reads, nf_tables notices) and the way without koffi.
for (const [reads, notices] of [['netlink', true], ['processes', false]] as const) describe(`the full observe (${reads}${notices ? ', nf_tables notices' : ''}) sees every change between two reads`, { skip }, () => {
  const netns = throwawayNetns('lnobs');
  let kernel: HostKernel;
  const nfChanges = notices ? watchNfTables(netns) : undefined;
  after(() => nfChanges?.close());
  const ip = (...args: string[]) => execa('ip', ['-n', netns, ...args]);
  const inNs = (cmd: string, ...args: string[]) => execa('ip', ['netns', 'exec', netns, cmd, ...args]);

  /** The snapshot, checked against a read of everything the old way (`ip -d`, one iptables-save per table). */
  async function observed(): Promise<KernelSnapshot> {
    const snap = await kernel.observe();
    const [links, addrs, filter, nat, mangle, qdiscs, filter6] = await Promise.all([
      ip('-j', '-d', 'link', 'show'),
      ip('-j', 'addr', 'show'),
      inNs('iptables-save', '-t', 'filter'),
      inNs('iptables-save', '-t', 'nat'),
      inNs('iptables-save', '-t', 'mangle'),
      execa('tc', ['-n', netns, '-j', '-r', 'qdisc', 'show']),
      inNs('ip6tables-save', '-t', 'filter'),
    ]);
    const all = parseLinks(links.stdout);
    assert.deepEqual(snap.links, all, 'links as ip -d prints them');
    const bridges = new Set(all.filter((l) => l.kind === 'bridge').map((l) => l.name));
    assert.deepEqual(snap.addrs, parseAddrs(addrs.stdout).filter((a) => bridges.has(a.dev)), 'the addresses of bridges');
    assert.deepEqual(snap.filter, parseIptablesSave(filter.stdout, 'filter'));
    assert.deepEqual(snap.nat, parseIptablesSave(nat.stdout, 'nat'));
    assert.deepEqual(snap.mangle, parseIptablesSave(mangle.stdout, 'mangle'));
    assert.deepEqual(snap.filter6, parseIptablesSave(filter6.stdout, 'filter'));
    assert.deepEqual(snap.qdiscs, parseQdiscs(qdiscs.stdout), 'the qdiscs as tc lists them');
    const keys = [...bridges].map((b) => `net.ipv4.conf.${b}.route_localnet`);
    const localnet = keys.length === 0 ? {} : parseSysctl((await inNs('sysctl', ...keys)).stdout);
    assert.deepEqual(snap.routeLocalnet, Object.fromEntries([...bridges].map((b) => [b, localnet[`net.ipv4.conf.${b}.route_localnet`] === '1'])), 'route_localnet of every bridge');
    const ingress = snap.qdiscs.filter((q) => q.kind === 'ingress' && q.dev.startsWith(VETH_PREFIX)).map((q) => q.dev);
    const filters = ingress.length === 0 ? '' : (await execa('tc', ['-n', netns, '-j', '-batch', '-'], { input: ingress.map((d) => `filter show dev ${d} ingress\n`).join('') })).stdout;
    assert.deepEqual(snap.ingressRedirects, ingress.length === 0 ? {} : parseIngressRedirects(filters, ingress), 'the redirects of our ingress qdiscs as tc lists them');
    return snap;
  }
  const link = (s: KernelSnapshot, name: string) => s.links.find((l) => l.name === name);

  before(() => {
    kernel = createKernel({ netns, filterPrefixes: [VETH_PREFIX], interfaceReads: reads, ...(nfChanges === undefined ? {} : { nfChanges }) });
  });

  it('reads a fresh namespace: the tables never used as their built-in chains', async () => {
    const snap = await observed();
    assert.deepEqual(Object.keys(snap.nat.chains), ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING']);
  });

  it('answers an unchanged kernel with what it read before, and sees a changed link at once', async () => {
    await ip('link', 'add', 'lnb-0b500000001', 'type', 'bridge');
    await ip('link', 'add', 'lnv-0b500000002', 'type', 'veth', 'peer', 'name', 'lnc-0b500000002');
    await observed(); // new links: their kinds read with -d
    const first = await observed();
    const again = await observed();
    if (reads === 'processes') assert.equal(again.links, first.links, 'the same text is not parsed again');
    assert.deepEqual(again.links, first.links);
    assert.equal(again.filter, first.filter, 'nor the same iptables-save (but for its time stamps)');
    await ip('link', 'set', 'dev', 'lnv-0b500000002', 'master', 'lnb-0b500000001', 'mtu', '1400', 'alias', 'ledgernet:endpoint:x', 'up');
    const changed = await observed();
    assert.deepEqual(
      { ...link(changed, 'lnv-0b500000002'), index: 0 },
      { ...link(first, 'lnv-0b500000002'), index: 0, master: 'lnb-0b500000001', mtu: 1400, alias: 'ledgernet:endpoint:x', up: true },
    );
  });

  it('sees a link deleted, and one of another kind made under its name, even with the same ifindex', async () => {
    const bridge = link(await observed(), 'lnb-0b500000001');
    assert.equal(bridge?.kind, 'bridge');
    const index = String(bridge?.index);
    const remake = async (...kind: string[]) => {
      await ip('link', 'del', 'lnb-0b500000001');
      await ip('link', 'add', 'lnb-0b500000001', 'index', index, 'type', ...kind);
      const l = link(await observed(), 'lnb-0b500000001');
      assert.equal(l?.index, bridge?.index);
      return l;
    };
    // Between two reads, each time: the link deleted and another made under its name and ifindex.
    assert.equal((await remake('ifb'))?.kind, 'ifb', 'a bridge replaced by an ifb');
    assert.deepEqual([(await remake('veth', 'peer', 'name', 'lnc-0b500000001'))?.peer], ['lnc-0b500000001'], 'by a veth');
    assert.equal((await remake('ifb'))?.kind, 'ifb', 'a veth replaced by an ifb');
    assert.equal(link(await observed(), 'lnc-0b500000001'), undefined, 'its peer went with it');
    await ip('link', 'del', 'lnb-0b500000001');
    assert.equal(link(await observed(), 'lnb-0b500000001'), undefined);
    await ip('link', 'add', 'lnb-0b500000001', 'type', 'ifb');
    const ifb = link(await observed(), 'lnb-0b500000001');
    assert.equal(ifb?.kind, 'ifb');
    assert.notEqual(ifb?.index, bridge?.index);
  });

  it('sees a renamed link, a veth peer moved to another namespace, and a bridge address generation mode changed', async () => {
    await ip('link', 'set', 'dev', 'lnb-0b500000001', 'name', 'lnb-0b50000000r');
    assert.equal(link(await observed(), 'lnb-0b50000000r')?.kind, 'ifb');
    await ip('link', 'add', 'lnb-0b500000003', 'type', 'bridge');
    assert.equal(link(await observed(), 'lnb-0b500000003')?.addrGenMode, 'eui64');
    await ip('link', 'set', 'dev', 'lnb-0b500000003', 'addrgenmode', 'none');
    assert.equal(link(await observed(), 'lnb-0b500000003')?.addrGenMode, 'none');
    await inNs('sysctl', '-q', '-w', 'net.ipv4.conf.lnb-0b500000003.route_localnet=1');
    assert.equal((await observed()).routeLocalnet['lnb-0b500000003'], true);
    const other = `${netns}-peer`;
    await execa('ip', ['netns', 'add', other]);
    try {
      await ip('link', 'set', 'dev', 'lnc-0b500000002', 'netns', other);
      const host = link(await observed(), 'lnv-0b500000002');
      assert.deepEqual([host?.kind, host?.peer, host?.peerInOtherNetns], ['veth', null, true]);
    } finally {
      await execa('ip', ['netns', 'del', other], { reject: false });
    }
  });

  it('reads addresses of bridges only, and every change to them', async () => {
    await ip('addr', 'add', '10.231.70.1/24', 'dev', 'lnb-0b500000003');
    await ip('addr', 'add', '10.231.71.1/24', 'dev', 'lnb-0b50000000r');
    // IPv6 as `ip` writes it (the first longest run of zero groups as ::), and not a tentative one.
    for (const a of ['fd00:0:0:1::1/64', '2001:db8:0:0:1:0:0:1/64', '::ffff:10.1.2.3/128']) await ip('addr', 'add', a, 'dev', 'lnb-0b500000003', 'nodad');
    const snap = await observed();
    assert.deepEqual(snap.addrs.filter((a) => a.family === 'inet6' && a.scope === 'global').map((a) => a.cidr).sort(), ['2001:db8::1:0:0:1/64', '::ffff:10.1.2.3/128', 'fd00:0:0:1::1/64']);
    assert.deepEqual(snap.addrs.filter((a) => a.family === 'inet').map((a) => `${a.dev} ${a.cidr}`), ['lnb-0b500000003 10.231.70.1/24']);
    await ip('addr', 'del', '10.231.70.1/24', 'dev', 'lnb-0b500000003');
    assert.deepEqual((await observed()).addrs.filter((a) => a.family === 'inet'), []);
  });

  it('sees a rule added to or deleted from any table', async () => {
    await inNs('iptables', '-t', 'mangle', '-A', 'PREROUTING', '-i', 'lnb-0b500000003', '-j', 'ACCEPT');
    await inNs('iptables', '-t', 'nat', '-A', 'POSTROUTING', '-s', '10.231.70.0/24', '-j', 'MASQUERADE');
    const snap = await observed();
    assert.deepEqual(snap.mangle?.chains['PREROUTING']?.rules, ['-i lnb-0b500000003 -j ACCEPT']);
    await inNs('iptables', '-t', 'nat', '-D', 'POSTROUTING', '-s', '10.231.70.0/24', '-j', 'MASQUERADE');
    assert.deepEqual((await observed()).nat.chains['POSTROUTING']?.rules, []);
  });

  it('reads the firewall again exactly when the nf_tables generation moved, whoever committed', async () => {
    const generation = () => readNfGeneration(netns, 5_000);
    const g0 = await generation();
    assert.equal(typeof g0, 'number', 'the kernel answers GETGEN');
    const unchanged = await observed();
    assert.equal((await observed()).filter, unchanged.filter, 'an unchanged generation: the last read is the answer');
    assert.equal(await generation(), g0, 'reads (ours, iptables-save) commit nothing');
    // Between two reads each time: one commit by ip6tables, by iptables in a table not read
    // before it, by nft in our own table (read through libnftables), and by nft in another table.
    await inNs('ip6tables', '-A', 'FORWARD', '-i', 'lnb-0b500000003', '-j', 'DROP');
    assert.deepEqual((await observed()).filter6?.chains['FORWARD']?.rules, ['-i lnb-0b500000003 -j DROP']);
    await inNs('iptables', '-A', 'OUTPUT', '-o', 'lnb-0b500000003', '-j', 'ACCEPT');
    assert.deepEqual((await observed()).filter.chains['OUTPUT']?.rules, ['-o lnb-0b500000003 -j ACCEPT']);
    const g1 = await generation();
    assert.ok(g1 !== null && g0 !== null && g1 > g0);
    await inNs('nft', 'add', 'table', NFT_FAMILY, NFT_TABLE);
    assert.deepEqual((await kernel.observe()).nftables?.chains, {}, 'our nft table, made behind our back');
    await inNs('nft', 'add', 'chain', NFT_FAMILY, NFT_TABLE, 'forward', '{ type filter hook forward priority 0 ; }');
    const ours = (await kernel.observe()).nftables;
    assert.deepEqual(Object.keys(ours?.chains ?? {}), ['forward']);
    // Which firewall parts an observe read, by the processes it ran (nft reads run the process
    // here: the kernel wrote no table, so libnftables is not loaded); then the answer checked
    // against a read of everything (the generation is the same: the same answer).
    const readsOf = async (): Promise<{ snap: KernelSnapshot; ran: string[] }> => {
      let snap: KernelSnapshot | undefined;
      const runs = await tracing(['iptables-save', 'ip6tables-save', 'nft'], async () => (snap = await kernel.observe()));
      assert.ok(snap !== undefined);
      assert.deepEqual(await observed(), snap, 'the same answer as a read of everything');
      const nft = await execa('ip', ['netns', 'exec', netns, 'nft', '-j', 'list', 'table', NFT_FAMILY, NFT_TABLE], { reject: false });
      assert.deepEqual(snap.nftables, nft.exitCode === 0 ? parseNftTable(nft.stdout, NFT_FAMILY, NFT_TABLE) : null, 'our nft table as nft lists it');
      return { snap, ran: [...new Set(runs.map((l) => l.split(' ')[0] ?? ''))].sort() };
    };
    const all = ['ip6tables-save', 'iptables-save', 'nft'];
    // A commit in iptables (as Docker's, creating a network) is read again. With the notices our
    // table is not (its last read is the answer); without, it is read, but its text is the same:
    // the same object, so the nftables backend does not diff it again.
    await inNs('iptables', '-A', 'OUTPUT', '-o', 'lnb-0b500000004', '-j', 'ACCEPT');
    const { snap: again, ran } = await readsOf();
    assert.deepEqual(ran, notices ? ['iptables-save'] : all, 'what a commit to iptables has read');
    assert.deepEqual(again.filter.chains['OUTPUT']?.rules, ['-o lnb-0b500000003 -j ACCEPT', '-o lnb-0b500000004 -j ACCEPT'], 'iptables read again');
    assert.equal(again.nftables, ours, 'the unchanged nft table is the object read before');
    await inNs('iptables', '-D', 'OUTPUT', '-o', 'lnb-0b500000004', '-j', 'ACCEPT');
    await inNs('ip6tables', '-A', 'FORWARD', '-i', 'lnb-0b500000004', '-j', 'DROP');
    assert.deepEqual((await readsOf()).ran, notices ? ['ip6tables-save', 'iptables-save'] : all, 'iptables (a rule deleted) and ip6tables');
    await inNs('ip6tables', '-D', 'FORWARD', '-i', 'lnb-0b500000004', '-j', 'DROP');
    assert.deepEqual((await readsOf()).ran, notices ? ['ip6tables-save'] : all, 'ip6tables only');
    // Another table, of our family: nothing of ours changed, nothing is read.
    await inNs('nft', 'add', 'table', NFT_FAMILY, 'lnother');
    assert.deepEqual((await readsOf()).ran, notices ? [] : all, 'a commit to another nft table');
    // More notices than the socket holds (the kernel drops the rest and says so): all is read.
    const many = Array.from({ length: 4000 }, (_, i) => `add rule ${NFT_FAMILY} lnother c ip saddr 10.9.${i >> 8}.${i & 255} accept`);
    await execa('ip', ['netns', 'exec', netns, 'nft', '-f', '-'], { input: [`add chain ${NFT_FAMILY} lnother c`, ...many, ''].join('\n') });
    assert.deepEqual((await readsOf()).ran, all, 'notices dropped: every part');
    await inNs('nft', 'delete', 'table', NFT_FAMILY, 'lnother');
    assert.deepEqual((await readsOf()).ran, all, 'its 4,000 rules deleted: notices dropped again');
    await inNs('nft', 'add', 'table', NFT_FAMILY, 'lnsmall');
    await inNs('nft', 'delete', 'table', NFT_FAMILY, 'lnsmall');
    assert.deepEqual((await readsOf()).ran, notices ? [] : all, 'after the overflows, notices again');
    await inNs('nft', 'add', 'rule', NFT_FAMILY, NFT_TABLE, 'forward', 'accept');
    const { snap: withRule, ran: ranRule } = await readsOf();
    assert.deepEqual(ranRule, notices ? ['nft'] : all, 'a commit to our table');
    const changed = withRule.nftables;
    assert.notEqual(changed, ours, 'a changed table is parsed again');
    assert.equal(changed?.chains['forward']?.rules.length, 1, 'with the rule added');
    await inNs('nft', 'delete', 'table', NFT_FAMILY, NFT_TABLE);
    assert.equal((await kernel.observe()).nftables, null);
    await inNs('ip6tables', '-D', 'FORWARD', '-i', 'lnb-0b500000003', '-j', 'DROP');
    await inNs('iptables', '-D', 'OUTPUT', '-o', 'lnb-0b500000003', '-j', 'ACCEPT');
    const after = await observed();
    assert.deepEqual([after.filter6?.chains['FORWARD']?.rules, after.filter.chains['OUTPUT']?.rules], [[], []]);
  });

  it('sees a qdisc added, changed or deleted on any device, and the filters of our ingress qdiscs', async () => {
    const tc = (...args: string[]) => execa('tc', ['-n', netns, ...args]);
    const qdiscsOf = (s: KernelSnapshot, dev: string) => s.qdiscs.filter((q) => q.dev === dev).map((q) => `${q.kind} ${q.rate ?? ''}`.trim());
    await ip('link', 'add', 'lnv-0b500000004', 'type', 'veth', 'peer', 'name', 'lnc-0b500000004');
    for (const dev of ['lnv-0b500000004', 'lnc-0b500000004', 'lnb-0b500000003']) await ip('link', 'set', 'dev', dev, 'up');
    await tc('qdisc', 'add', 'dev', 'lnv-0b500000004', 'root', 'tbf', 'rate', '8mbit', 'burst', '32kbit', 'latency', '50ms');
    await tc('qdisc', 'add', 'dev', 'lnv-0b500000004', 'handle', 'ffff:', 'ingress');
    await tc('qdisc', 'add', 'dev', 'lnb-0b500000003', 'root', 'tbf', 'rate', '40gbit', 'burst', '1mb', 'latency', '50ms');
    let snap = await observed();
    assert.deepEqual(qdiscsOf(snap, 'lnv-0b500000004'), ['tbf 1000000', 'ingress']);
    assert.deepEqual(qdiscsOf(snap, 'lnb-0b500000003'), ['tbf 5000000000']);
    assert.deepEqual(snap.ingressRedirects, { 'lnv-0b500000004': [] });
    await ip('link', 'add', 'lni-0b500000004', 'type', 'ifb');
    await tc('filter', 'add', 'dev', 'lnv-0b500000004', 'parent', 'ffff:', 'protocol', 'all', 'prio', '1', 'u32', 'match', 'u32', '0', '0', 'action', 'mirred', 'egress', 'redirect', 'dev', 'lni-0b500000004');
    snap = await observed();
    assert.deepEqual(snap.ingressRedirects, { 'lnv-0b500000004': ['lni-0b500000004'] });
    // Through netlink no tc runs, filters included; with processes tc reads them in a batch.
    const tcRuns = await tracingTc(() => kernel.observe());
    if (reads === 'netlink') assert.deepEqual(tcRuns, []);
    else assert.ok(tcRuns.some((args) => args.includes('-batch')), tcRuns.join('\n'));
    // The target gone, the filter stays, redirecting to no device (`*`, as tc prints it).
    await ip('link', 'del', 'lni-0b500000004');
    snap = await observed();
    assert.deepEqual(snap.ingressRedirects, { 'lnv-0b500000004': ['*'] });
    await tc('qdisc', 'change', 'dev', 'lnv-0b500000004', 'root', 'tbf', 'rate', '16mbit', 'burst', '32kbit', 'latency', '50ms');
    await tc('qdisc', 'del', 'dev', 'lnv-0b500000004', 'ingress');
    await tc('qdisc', 'del', 'dev', 'lnb-0b500000003', 'root');
    snap = await observed();
    assert.deepEqual(qdiscsOf(snap, 'lnv-0b500000004'), ['tbf 2000000']);
    assert.deepEqual(qdiscsOf(snap, 'lnb-0b500000003'), ['noqueue']);
    assert.deepEqual(snap.ingressRedirects, {});
  });
});
