// IPv6 NAT (Docker 27+ parity) with both firewall backends against a real ip6tables and nft in
// a throwaway namespace: every shape of NAT6_COMMANDS (masquerade, SNAT to host_ipv4/host_ipv6,
// published ports on no address, 0.0.0.0, ::, an IPv6 address and a range, hairpin) is written,
// read back, and the plan is then empty; the iptables backend's model (`after`) holds what
// ip6tables-save reads; a rule or element deleted by hand is planned back and repaired; removing
// the networks leaves nothing. Needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel, type HostKernel } from '../../src/kernel/index.ts';
import { iptablesFirewall } from '../../src/kernel/iptables/index.ts';
import { nftablesFirewall } from '../../src/kernel/nftables/index.ts';
import type { FirewallBackend } from '../../src/kernel/types.ts';
import { afterActions, applyActions } from '../../src/reconciler/apply.ts';
import { desiredFromState, type DesiredState } from '../../src/reconciler/desired.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { NAT6_COMMANDS, NET_E } from '../helpers/nat6-states.ts';
import { given } from '../helpers/state.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

describe('IPv6 NAT rules round-trip through a real ip6tables and nft', { skip }, () => {
  const netns = `lnnat6-${process.pid}-${randomBytes(3).toString('hex')}`;
  let kernel: HostKernel;
  const inNs = (cmd: string, ...args: string[]) => execa('ip', ['netns', 'exec', netns, cmd, ...args]);
  const desired = (): DesiredState => ({ bridges: [], veths: [], firewall: desiredFromState(given(...NAT6_COMMANDS)).firewall });
  const none = (): DesiredState => ({ bridges: [], veths: [], firewall: desiredFromState(given()).firewall });
  const converge = async (d: DesiredState, fw: FirewallBackend) => {
    const observed = await kernel.observe();
    const first = plan(d, observed, fw);
    const res = await applyActions(first, kernel, fw);
    assert.deepEqual(res.failures, []);
    const fresh = await kernel.observe();
    assert.deepEqual(plan(d, fresh, fw), [], 'converged: every rule reads back as written');
    return { first, observed, applied: res.applied, fresh };
  };

  before(async () => {
    await execa('ip', ['netns', 'add', netns]);
    kernel = createKernel({ netns, filterPrefixes: [VETH_PREFIX] });
  });

  after(async () => {
    await execa('ip', ['netns', 'del', netns], { reject: false });
  });

  it('iptables: ip6tables nat holds masquerade/SNAT, DNAT and hairpin; the model predicts it; a deleted rule is repaired', async () => {
    const { first, observed, applied, fresh } = await converge(desired(), iptablesFirewall);
    assert.ok(first.some((a) => 'table' in a && a.table === 'nat6'));
    const model = afterActions(observed, applied, iptablesFirewall);
    assert.deepEqual(model?.nat6, fresh.nat6, 'the model holds what ip6tables-save reads');
    const nat6 = (await inNs('ip6tables-save', '-t', 'nat')).stdout;
    assert.match(nat6, /-A POSTROUTING -m comment --comment "ledgernet:hook" -j LEDGERNET-POSTROUTING/);
    assert.match(nat6, /-A LEDGERNET-POSTROUTING -s fd00:231:11::\/64 ! -o lnb-eeeeeeee444 .* -j SNAT --to-source 2001:db8::44/);
    assert.match(nat6, /-A LEDGERNET-DNAT -d fd00:99::1\/128 -p tcp -m tcp --dport 8083 .* -j DNAT --to-destination \[fd00:231:11::2\]:83/);
    assert.match((await inNs('iptables-save', '-t', 'nat')).stdout, /-j SNAT --to-source 192\.0\.2\.44/);

    await inNs('ip6tables', '-t', 'nat', '-D', 'LEDGERNET-POSTROUTING', '1');
    const drift = plan(desired(), await kernel.observe(), iptablesFirewall);
    assert.deepEqual(drift.map((a) => `${a.kind} ${'table' in a ? a.table : ''}/${'chain' in a ? a.chain : ''} ${a.reason}`), ['chain.write nat6/LEDGERNET-POSTROUTING drifted']);
    await converge(desired(), iptablesFirewall);
    await converge(none(), iptablesFirewall);
    assert.doesNotMatch((await inNs('ip6tables-save')).stdout + (await inNs('iptables-save')).stdout, /LEDGERNET|ledgernet:/);
  });

  it('nftables: dnat6/bound6/masq6 elements and chains read back (ip6tables nat emptied after a switch); a deleted element is repaired', async () => {
    await converge(desired(), iptablesFirewall);
    await converge(desired(), nftablesFirewall);
    assert.doesNotMatch((await inNs('ip6tables-save', '-t', 'nat')).stdout, /LEDGERNET|ledgernet:/, 'the iptables backend\'s IPv6 NAT is gone');
    const listed = (await inNs('nft', 'list', 'table', 'inet', 'ledgernet')).stdout;
    assert.match(listed, /tcp \. 8082 : fd00:231:11::2/);
    assert.match(listed, /fd00:99::1 \. tcp \. 8083 : fd00:231:11::2/);
    assert.match(listed, /snat ip6 to 2001:db8::44/);
    assert.match(listed, /snat ip to 192\.0\.2\.44/);
    assert.match(listed, /ip6 saddr vmap @masq6/);
    await inNs('nft', 'delete', 'element', 'inet', 'ledgernet', 'masq6', '{ fd00:231:11::/64 }');
    const drift = plan(desired(), await kernel.observe(), nftablesFirewall);
    assert.deepEqual(drift.map((a) => `${a.kind} ${a.reason} ${a.owner.networkId === NET_E}`), ['nft.element.add missing true']);
    await converge(desired(), nftablesFirewall);
    await converge(none(), nftablesFirewall);
    assert.equal((await inNs('nft', 'list', 'table', 'inet', 'ledgernet').catch((e: { exitCode: number }) => e)).exitCode, 1);
  });
});
