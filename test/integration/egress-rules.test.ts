// The egress policy's chains (kernel/iptables/egress.ts) loaded into a real iptables and
// ip6tables (nf_tables backend) in a throwaway namespace: each rule reads back with iptables-save
// exactly as written (the plan is then empty), a rule deleted by hand is planned back and
// repaired, and removing the networks removes every chain and jump in one pass (the jumps go
// before the chains they reach). Needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel, type Kernel } from '../../src/kernel/index.ts';
import { renderChains } from '../../src/kernel/iptables/index.ts';
import { applyActions } from '../../src/reconciler/apply.ts';
import { desiredFromState, type DesiredState } from '../../src/reconciler/desired.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { renderPlan } from '../../src/reconciler/render.ts';
import { EGRESS_COMMANDS } from '../helpers/firewall-states.ts';
import { given } from '../helpers/state.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

describe('egress chains round-trip through iptables-restore and iptables-save', { skip }, () => {
  const netns = `lneg-${process.pid}-${randomBytes(3).toString('hex')}`;
  let kernel: Kernel;
  const save = async (cmd: 'iptables-save' | 'ip6tables-save') => (await execa('ip', ['netns', 'exec', netns, cmd])).stdout;
  const desired: DesiredState = { bridges: [], veths: [], firewall: desiredFromState(given(...EGRESS_COMMANDS)).firewall };

  before(async () => {
    await execa('ip', ['netns', 'add', netns]);
    kernel = createKernel({ netns, filterPrefixes: [VETH_PREFIX] });
  });

  after(async () => {
    await execa('ip', ['netns', 'del', netns], { reject: false });
  });

  it('writes every egress shape, then plans nothing; a rule deleted by hand comes back', async () => {
    const first = plan(desired, await kernel.observe());
    assert.deepEqual((await applyActions(first, kernel)).failures, []);
    const again = plan(desired, await kernel.observe());
    assert.deepEqual(again, [], `rules that do not read back as written:\n${renderPlan(again)}`);
    const text = { filter: await save('iptables-save'), filter6: await save('ip6tables-save') };
    const chains = renderChains(desired.firewall).filter((c) => c.name.startsWith('LEDGERNET-EG-'));
    assert.equal(chains.length, 6, 'three networks, both families');
    for (const c of chains) {
      for (const r of c.rules) assert.ok(text[c.table as 'filter' | 'filter6'].includes(`-A ${c.name} ${r}\n`), `${c.table}: ${r}`);
    }
    assert.match(text.filter6, /-A INPUT -m comment --comment "ledgernet:hook" -j LEDGERNET-INPUT/);

    await execa('ip', ['netns', 'exec', netns, 'iptables', '-D', 'LEDGERNET-EG-aaaaaaaa0000', '2']);
    await execa('ip', ['netns', 'exec', netns, 'ip6tables', '-D', 'LEDGERNET-INPUT', '1']);
    const drift = plan(desired, await kernel.observe());
    assert.deepEqual(drift.map((a) => `${a.kind} ${'table' in a ? a.table : ''}/${'chain' in a ? a.chain : ''} ${a.reason}`), [
      'chain.write filter/LEDGERNET-EG-aaaaaaaa0000 drifted',
      'chain.write filter6/LEDGERNET-INPUT drifted',
    ]);
    assert.match(renderPlan(drift), /\+ -m conntrack --ctorigdst 10\.0\.0\.0\/8 .*egress-deny" -j REJECT/, 'the dry-run names the missing rule');
    assert.deepEqual((await applyActions(drift, kernel)).failures, []);
    assert.deepEqual(plan(desired, await kernel.observe()), []);
  });

  it('removing the networks removes every egress chain and jump in one pass', async () => {
    const gone = plan({ bridges: [], veths: [], firewall: desiredFromState(given()).firewall }, await kernel.observe());
    assert.deepEqual((await applyActions(gone, kernel)).failures, []);
    assert.doesNotMatch(await save('iptables-save'), /LEDGERNET|ledgernet:/);
    assert.doesNotMatch(await save('ip6tables-save'), /LEDGERNET|ledgernet:/);
  });
});
