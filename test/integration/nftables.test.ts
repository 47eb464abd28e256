// The nftables backend against a real nft in a throwaway namespace: every rule shape the policy
// has (the same network states as the iptables round trip) is written in one transaction and read
// back with `nft -j list table`, and the plan is then empty; drift of an element, a rule, a chain
// and the whole table is planned back; switching backends removes what the other one wrote;
// Docker's iptables rules are left as they were. Needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel, type HostKernel } from '../../src/kernel/index.ts';
import { iptablesFirewall } from '../../src/kernel/iptables/index.ts';
import { nftablesFirewall } from '../../src/kernel/nftables/index.ts';
import type { FirewallBackend } from '../../src/kernel/types.ts';
import { applyActions } from '../../src/reconciler/apply.ts';
import { desiredFromState, type DesiredState } from '../../src/reconciler/desired.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { EGRESS_COMMANDS, EGRESS_MERGED, FIREWALL_COMMANDS } from '../helpers/firewall-states.ts';
import { renderPlan } from '../../src/reconciler/render.ts';
import { foreignRules } from '../helpers/rules.ts';
import { NET_A } from '../helpers/events.ts';
import { given } from '../helpers/state.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

const DOCKER_RULES = `*filter
:DOCKER - [0:0]
:DOCKER-USER - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -o docker0 -j DOCKER
-A DOCKER-USER -s 192.0.2.0/24 -m comment --comment "operator: keep me" -j DROP
-A DOCKER-USER -j RETURN
COMMIT
`;

describe('nftables backend against a real nft', { skip }, () => {
  const netns = `lnnft-${process.pid}-${randomBytes(3).toString('hex')}`;
  let kernel: HostKernel;
  const inNs = (cmd: string, ...args: string[]) => execa('ip', ['netns', 'exec', netns, cmd, ...args]);
  const save = async (table = 'filter') => (await inNs('iptables-save', '-t', table)).stdout;
  const foreign = foreignRules;
  const desired = (): DesiredState => ({ bridges: [], veths: [], firewall: desiredFromState(given(...FIREWALL_COMMANDS)).firewall });
  const none = (): DesiredState => ({ bridges: [], veths: [], firewall: desiredFromState(given()).firewall });
  const converge = async (d: DesiredState, fw: FirewallBackend) => {
    const first = plan(d, await kernel.observe(), fw);
    assert.deepEqual((await applyActions(first, kernel, fw)).failures, []);
    const again = plan(d, await kernel.observe(), fw);
    assert.deepEqual(again, [], `not converged:\n${JSON.stringify(again, null, 2)}`);
    return first;
  };

  before(async () => {
    await execa('ip', ['netns', 'add', netns]);
    kernel = createKernel({ netns, filterPrefixes: [VETH_PREFIX] });
    await kernel.iptablesRestore(DOCKER_RULES);
  });

  after(async () => {
    await execa('ip', ['netns', 'del', netns], { reject: false });
  });

  it('writes every shape in one transaction, then plans nothing; iptables keeps only the accept for our bridges', async () => {
    const before = foreign(await save());
    const first = await converge(desired(), nftablesFirewall);
    assert.ok(first.some((a) => a.kind === 'nft.chain.write'));
    const text = await save();
    assert.equal(foreign(text), before, "Docker's and the operator's rules are untouched");
    const ours = text.split('\n').filter((l) => l.includes('ledgernet:'));
    assert.deepEqual(ours, [
      '-A FORWARD -m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD',
      '-A LEDGERNET-FORWARD -i lnb-+ -m comment --comment "ledgernet:nftables" -j ACCEPT',
      '-A LEDGERNET-FORWARD -o lnb-+ -m comment --comment "ledgernet:nftables" -j ACCEPT',
    ]);
    assert.deepEqual(text.split('\n').filter((l) => l.startsWith('-A FORWARD')).slice(0, 2), ['-A FORWARD -j DOCKER-USER', '-A FORWARD -m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD']);
    const listed = (await inNs('nft', 'list', 'table', 'inet', 'ledgernet')).stdout;
    assert.match(listed, /iifname vmap @from/);
    assert.match(listed, /tcp \. 9001 : 8001,/, 'a range is one element per port');
    assert.match(listed, /127\.0\.0\.1 \. tcp \. 8443 : 443/, 'a port bound to an address');
  });

  it('an element, a rule, a chain or the whole table deleted by hand is planned back and repaired', async () => {
    const d = desired();
    const net = d.firewall.networks[2];
    assert.ok(net);
    await inNs('nft', 'delete', 'element', 'inet', 'ledgernet', 'dnat_addr', '{ tcp . 9001 }');
    await inNs('nft', 'flush', 'chain', 'inet', 'ledgernet', 'forward');
    const drift = plan(d, await kernel.observe(), nftablesFirewall);
    assert.deepEqual(drift.map((a) => `${a.kind} ${a.reason}`), ['nft.chain.write drifted', 'nft.element.add missing']);
    await converge(d, nftablesFirewall);
    await inNs('nft', 'delete', 'element', 'inet', 'ledgernet', 'to', `{ "${net.bridge}" }`);
    await inNs('nft', 'delete', 'chain', 'inet', 'ledgernet', `net-${net.networkId}-to`);
    assert.deepEqual(plan(d, await kernel.observe(), nftablesFirewall).map((a) => `${a.kind} ${a.reason}`), ['nft.chain.write missing', 'nft.element.add missing']);
    await converge(d, nftablesFirewall);
    await inNs('nft', 'delete', 'table', 'inet', 'ledgernet');
    const all = await converge(d, nftablesFirewall);
    assert.ok(all.filter((a) => a.kind === 'nft.set.write').length >= 5);
  });

  it('writes every egress shape (interval sets nft merges included), then plans nothing; a rule deleted by hand comes back', async () => {
    const d: DesiredState = { bridges: [], veths: [], firewall: desiredFromState(given(...EGRESS_COMMANDS, ...EGRESS_MERGED)).firewall };
    await converge(d, nftablesFirewall);
    const listed = (await inNs('nft', 'list', 'table', 'inet', 'ledgernet')).stdout;
    const has = (re: RegExp, what: string) => assert.ok(re.test(listed), `${what}: no ${re} in\n${listed}`);
    has(/ct state new iifname vmap @egress/, 'input reaches the egress chains by bridge');
    has(/ct original ip daddr \{ 10\.0\.0\.0\/8, 192\.168\.0\.0\/16 \} reject\n/, 'items of one shape are one interval set');
    has(/ct original ip daddr \{ 10\.0\.0\.0\/8, 198\.51\.100\.3-198\.51\.100\.4, 203\.0\.113\.2\/31 \} reject\n/, 'merged as nft merges');
    has(/meta l4proto udp ct original proto-dst 5000-5100 ct original ip daddr 198\.51\.100\.0\/24 reject\n/, 'protocol and port range');
    has(/reject with icmpv6 port-unreachable/, 'an allow-list refuses the rest of a family');
    const chain = `net-${NET_A}-egress`;
    const rules = (await inNs('nft', '-a', 'list', 'chain', 'inet', 'ledgernet', chain)).stdout;
    const handle = /10\.0\.0\.0\/8.* # handle (\d+)/.exec(rules)?.[1];
    assert.ok(handle, rules);
    await inNs('nft', 'delete', 'rule', 'inet', 'ledgernet', chain, 'handle', handle);
    const drift = plan(d, await kernel.observe(), nftablesFirewall);
    assert.deepEqual(drift.map((a) => `${a.kind} ${'chain' in a ? a.chain : ''} ${a.reason}`), [`nft.chain.write ${chain} drifted`]);
    assert.match(renderPlan(drift), /\+ ct original ip daddr \{ 10\.0\.0\.0\/8, 192\.168\.0\.0\/16 \} reject\n/, 'the dry-run names the missing rule');
    await converge(d, nftablesFirewall);
  });

  it('switching to iptables removes the table; back to nftables removes the iptables policy; none leaves Docker as it was', async () => {
    const before = foreign(await save());
    await converge(desired(), iptablesFirewall);
    assert.equal((await inNs('nft', 'list', 'table', 'inet', 'ledgernet').catch((e: { exitCode: number }) => e)).exitCode, 1, 'the table is gone');
    assert.match(await save('nat'), /LEDGERNET-DNAT/);
    await converge(desired(), nftablesFirewall);
    assert.doesNotMatch((await save()) + (await save('nat')), /LEDGERNET-DNAT|LEDGERNET-INPUT|LEDGERNET-POSTROUTING/);
    await converge(none(), nftablesFirewall);
    const text = await save();
    assert.doesNotMatch(text + (await save('nat')), /LEDGERNET|ledgernet:/);
    assert.equal(foreign(text), before);
    assert.equal((await inNs('nft', 'list', 'table', 'inet', 'ledgernet').catch((e: { exitCode: number }) => e)).exitCode, 1);
  });
});
