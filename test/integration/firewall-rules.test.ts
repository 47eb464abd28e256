// Every firewall rule shape ledgernet writes, loaded into a real iptables and ip6tables (nf_tables
// backend) in a throwaway namespace and read back with iptables-save / ip6tables-save: the plan
// must then be empty, which proves each desired rule is spelled exactly as they normalize it.
// Needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel, type HostKernel } from '../../src/kernel/index.ts';
import { renderChains } from '../../src/kernel/iptables/index.ts';
import { applyActions } from '../../src/reconciler/apply.ts';
import { desiredFromState, type DesiredState } from '../../src/reconciler/desired.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { renderPlan } from '../../src/reconciler/render.ts';
import { FIREWALL_COMMANDS } from '../helpers/firewall-states.ts';
import { EP_1, NET_A, endpointSpec, networkSpec } from '../helpers/events.ts';
import { foreignRules } from '../helpers/rules.ts';
import { given } from '../helpers/state.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

/** Docker's rules as dockerd 20.10 writes them, so placement is tested against the real thing. */
const DOCKER_RULES = `*filter
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A FORWARD -o docker0 -j DOCKER
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-USER -s 192.0.2.0/24 -m comment --comment "operator: keep me" -j DROP
-A DOCKER-USER -j RETURN
COMMIT
*nat
:DOCKER - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER
-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A DOCKER -i docker0 -j RETURN
COMMIT
`;

/** Docker's IPv6 rules (dockerd with ip6tables enabled). */
const DOCKER_RULES6 = `*filter
:DOCKER - [0:0]
:DOCKER-ISOLATION-STAGE-1 - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-ISOLATION-STAGE-1
-A FORWARD -o docker0 -j DOCKER
-A DOCKER-ISOLATION-STAGE-1 -j RETURN
-A DOCKER-USER -s 2001:db8::/32 -m comment --comment "operator: keep me" -j DROP
-A DOCKER-USER -j RETURN
COMMIT
`;

describe('firewall rules round-trip through iptables-restore and iptables-save', { skip }, () => {
  const netns = `lnfw-${process.pid}-${randomBytes(3).toString('hex')}`;
  let kernel: HostKernel;

  const save = async () => (await execa('ip', ['netns', 'exec', netns, 'iptables-save'])).stdout;
  const save6 = async () => (await execa('ip', ['netns', 'exec', netns, 'ip6tables-save'])).stdout;
  const foreign = foreignRules;

  before(async () => {
    await execa('ip', ['netns', 'add', netns]);
    kernel = createKernel({ netns, filterPrefixes: [VETH_PREFIX] });
    await kernel.iptablesRestore(DOCKER_RULES.split('COMMIT\n')[0] + 'COMMIT\n');
    await kernel.iptablesRestore(DOCKER_RULES.split('COMMIT\n')[1] + 'COMMIT\n');
    await kernel.iptablesRestore(DOCKER_RULES6, 6);
  });

  after(async () => {
    await execa('ip', ['netns', 'del', netns], { reject: false });
  });

  const chainsOnly = (d: DesiredState): DesiredState => ({ bridges: [], veths: [], firewall: d.firewall });

  it('writes every shape, then plans nothing: each rule reads back exactly as written', async () => {
    const before = foreign(await save());
    const before6 = foreign(await save6());
    const desired = chainsOnly(desiredFromState(given(...FIREWALL_COMMANDS)));
    const first = plan(desired, await kernel.observe());
    assert.ok(first.length > 0);
    assert.deepEqual((await applyActions(first, kernel)).failures, []);
    const again = plan(desired, await kernel.observe());
    assert.deepEqual(again, [], `rules that do not read back as written:\n${JSON.stringify(again, null, 2)}`);
    const text = await save();
    assert.equal(foreign(text), before, "Docker's and the operator's rules are untouched");
    const forward = text.split('\n').filter((l) => l.startsWith('-A FORWARD'));
    assert.deepEqual(forward.slice(0, 2), ['-A FORWARD -j DOCKER-USER', '-A FORWARD -m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD']);
    const text6 = await save6();
    assert.equal(foreign(text6), before6, "Docker's and the operator's IPv6 rules are untouched");
    assert.deepEqual(
      text6.split('\n').filter((l) => l.startsWith('-A FORWARD')).slice(0, 2),
      ['-A FORWARD -j DOCKER-USER', '-A FORWARD -m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD'],
    );
    const chains = renderChains(desired.firewall);
    const v6 = chains.filter((c) => c.table === 'filter6');
    assert.ok(v6.some((c) => c.rules.some((r) => r.includes('ipv6-icmp'))), 'the IPv6 shapes are in the fixture');
    for (const c of chains) {
      for (const r of c.rules) assert.ok((c.table.endsWith('6') ? text6 : text).includes(`-A ${c.name} ${r}\n`), `${c.table}: ${r}`);
    }
  });

  it("a network's own chain and its jump deleted by hand are planned back (+ and ~), and only they", async () => {
    const desired = chainsOnly(desiredFromState(given(...FIREWALL_COMMANDS)));
    const ipt = (...args: string[]) => execa('ip', ['netns', 'exec', netns, 'iptables', ...args]);
    const lan = `LEDGERNET-LAN-${NET_A.slice(0, 12)}`;
    await ipt('-D', 'LEDGERNET-EARLY-a', '1');
    await ipt('-F', lan);
    await ipt('-X', lan);
    const drift = plan(desired, await kernel.observe());
    assert.deepEqual(drift.map((a) => `${a.kind} ${'table' in a ? a.table : ''}/${'chain' in a ? a.chain : ''} ${a.reason}`), [
      'chain.write filter/LEDGERNET-EARLY-a drifted',
      `chain.write filter/${lan} missing`,
    ]);
    const shown = renderPlan(drift);
    assert.match(shown, new RegExp(`~ chain\\.write filter/LEDGERNET-EARLY-a \\(drifted[^\\n]*\\n\\s+\\+ -i lnb-aaaaaaaa000 -o lnb-aaaaaaaa000 .* -j ${lan}\\n`));
    assert.match(shown, new RegExp(`\\+ chain\\.write filter/${lan} \\(missing\\)`));
    assert.deepEqual((await applyActions(drift, kernel)).failures, []);
    assert.deepEqual(plan(desired, await kernel.observe()), []);
  });

  it('a rule deleted by hand is planned back; removing everything restores the tables exactly', async () => {
    const before = foreign(await save());
    const before6 = foreign(await save6());
    const desired = chainsOnly(desiredFromState(given(...FIREWALL_COMMANDS)));
    await execa('ip', ['netns', 'exec', netns, 'iptables', '-t', 'nat', '-D', 'LEDGERNET-DNAT', '1']);
    await execa('ip', ['netns', 'exec', netns, 'iptables', '-D', 'LEDGERNET-FORWARD', '1']);
    await execa('ip', ['netns', 'exec', netns, 'ip6tables', '-D', 'LEDGERNET-FORWARD', '2']);
    const drift = plan(desired, await kernel.observe());
    assert.deepEqual(drift.map((a) => `${a.kind} ${'table' in a ? a.table : ''}/${'chain' in a ? a.chain : ''} ${a.reason}`), [
      'chain.write filter/LEDGERNET-FORWARD drifted',
      'chain.write filter6/LEDGERNET-FORWARD drifted',
      'chain.write nat/LEDGERNET-DNAT drifted',
    ]);
    // Each repair puts the one deleted rule back at its place (-I), without rewriting the chain.
    assert.deepEqual(drift.map((a) => (a.kind === 'chain.write' ? a.edits?.inserts.length : null)), [1, 1, 1]);
    await applyActions(drift, kernel);
    assert.deepEqual(plan(desired, await kernel.observe()), []);
    const gone = plan(chainsOnly(desiredFromState(given())), await kernel.observe());
    assert.deepEqual((await applyActions(gone, kernel)).failures, []);
    const text = await save();
    assert.equal(foreign(text), before);
    assert.doesNotMatch(text, /LEDGERNET|ledgernet:/);
    const text6 = await save6();
    assert.equal(foreign(text6), before6);
    assert.doesNotMatch(text6, /LEDGERNET|ledgernet:/);
  });

  it('tc: a tbf for ingress_rate reads back with tc -j qdisc show; deleted, or its burst and latency changed, by hand, it is planned back', async () => {
    const state = given(
      { type: 'CreateNetwork', spec: { ...networkSpec(NET_A), options: { 'ledgernet.ingress_rate': '8mbit', 'ledgernet.egress_rate': '4mbit' } } },
      { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) },
    );
    const desired = desiredFromState(state);
    assert.deepEqual((await applyActions(plan(desired, await kernel.observe()), kernel)).failures, []);
    assert.deepEqual(plan(desired, await kernel.observe()), []);
    const tc = await execa('tc', ['-n', netns, '-j', 'qdisc', 'show', 'dev', 'lnv-e1e1e1e1222']);
    assert.match(tc.stdout, /"kind":"tbf".*"rate":1000000/);
    const ifb = await execa('tc', ['-n', netns, '-j', 'qdisc', 'show', 'dev', 'lni-e1e1e1e1222']);
    assert.match(ifb.stdout, /"kind":"tbf".*"rate":500000/);
    await execa('tc', ['-n', netns, 'qdisc', 'del', 'dev', 'lnv-e1e1e1e1222', 'root']);
    await execa('tc', ['-n', netns, 'filter', 'del', 'dev', 'lnv-e1e1e1e1222', 'ingress']);
    const drift = plan(desired, await kernel.observe());
    assert.deepEqual(drift.map((a) => `${a.kind} ${a.reason}`), ['qdisc.set drifted', 'redirect.set drifted']);
    assert.deepEqual((await applyActions(drift, kernel)).failures, []);
    assert.deepEqual(plan(desired, await kernel.observe()), []);

    // The rates kept, burst and latency changed by hand: drift to both readers (rtnetlink, tc -j -r).
    await execa('tc', ['-n', netns, 'qdisc', 'replace', 'dev', 'lnv-e1e1e1e1222', 'root', 'tbf', 'rate', '8mbit', 'burst', '20mb', 'latency', '10s']);
    await execa('tc', ['-n', netns, 'qdisc', 'replace', 'dev', 'lni-e1e1e1e1222', 'root', 'tbf', 'rate', '4mbit', 'burst', '20mb', 'latency', '10s']);
    const readers = (['netlink', 'processes'] as const).map((reads) => createKernel({ netns, filterPrefixes: [VETH_PREFIX], interfaceReads: reads }));
    for (const k of readers) {
      assert.deepEqual(plan(desired, await k.observe()).map((a) => `${a.kind} ${'name' in a ? a.name : ''} ${a.reason} ${a.detail ?? ''}`), [
        'qdisc.set lni-e1e1e1e1222 drifted burst 16000 expected, 20971520 found; limit 41000 expected, 25971520 found',
        'qdisc.set lnv-e1e1e1e1222 drifted burst 16000 expected, 20971520 found; limit 66000 expected, 30971520 found',
      ]);
    }
    assert.deepEqual((await applyActions(plan(desired, await kernel.observe()), kernel)).failures, []);
    const shown = await execa('tc', ['-n', netns, '-j', '-r', 'qdisc', 'show', 'dev', 'lnv-e1e1e1e1222', 'root']);
    assert.match(shown.stdout, /"rate":1000000,"burst":16000,.*"limit":66000/, 'the burst is back');
    for (const k of readers) assert.deepEqual(plan(desired, await k.observe()), []);
    const gone = plan(chainsOnly(desiredFromState(given())), await kernel.observe());
    await applyActions(gone, kernel);
  });
});
