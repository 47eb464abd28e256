// The nftables backend's egress policy and its model (`after`), over real `nft -j list table`
// captures (fixtures/nft/): list-table.egress-states.json is EGRESS_COMMANDS + EGRESS_MERGED
// written by this backend into a real nft, list-table.firewall-states.json FIREWALL_COMMANDS
// (test/integration/nftables.test.ts checks the same shapes live, test/integration/model.test.ts
// a life of networks planned against the model). Interval sets are written merged, as nft reads
// them back; the table predicted after a pass plans what a fresh read plans: nothing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from '../../../src/events/domain/commands.ts';
import { addressMatch } from '../../../src/kernel/nftables/intervals.ts';
import { nftablesFirewall } from '../../../src/kernel/nftables/index.ts';
import { parseNftTable } from '../../../src/kernel/nftables/parse.ts';
import type { KernelSnapshot, NftTable } from '../../../src/kernel/types.ts';
import { afterActions } from '../../../src/reconciler/apply.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { plan } from '../../../src/reconciler/plan.ts';
import { renderPlan } from '../../../src/reconciler/render.ts';
import { EP_1, NET_A, endpointSpec, networkSpec } from '../../helpers/events.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';
import { EGRESS_COMMANDS, EGRESS_MERGED, FIREWALL_COMMANDS, NET_C, NET_E } from '../../helpers/firewall-states.ts';
import { readFixture } from '../../helpers/fixtures.ts';
import { given } from '../../helpers/state.ts';

const capture = (name: string) => parseNftTable(readFixture(`nft/list-table.${name}.json`), 'inet', 'ledgernet');
const EGRESS = [...EGRESS_COMMANDS, ...EGRESS_MERGED];

async function snapshot(nftables: NftTable | null): Promise<KernelSnapshot> {
  return { ...(await new FakeKernel().observe()), nftables };
}

/** The nftables part of the plan for `commands` against `s`. */
function nftPlan(commands: readonly Command[], s: KernelSnapshot) {
  const d = desiredFromState(given(...commands));
  return plan({ bridges: [], veths: [], firewall: d.firewall }, s, nftablesFirewall).filter((a) => a.kind.startsWith('nft.'));
}

/** Plans `commands` against `from`, predicts the table after, and returns the plan against the prediction (should be empty). */
async function predictFrom(from: NftTable | null, commands: readonly Command[]) {
  const s = await snapshot(from);
  const actions = nftPlan(commands, s);
  const model = afterActions(s, actions, nftablesFirewall);
  assert.ok(model, 'the nftables backend predicts its own changes');
  return { actions, model, again: nftPlan(commands, model) };
}

describe('nftables egress policy', () => {
  it('merges CIDRs as nft reads an anonymous interval set back', () => {
    assert.deepEqual(addressMatch(4, ['10.0.0.0/8']), { prefix: { addr: '10.0.0.0', len: 8 } });
    assert.equal(addressMatch(4, ['192.0.2.7/32']), '192.0.2.7', 'a host is a plain address');
    assert.deepEqual(addressMatch(4, ['10.1.0.0/24', '10.0.0.0/8', '203.0.113.3/32', '203.0.113.2/32', '198.51.100.3/32', '198.51.100.4/32']), {
      set: [{ prefix: { addr: '10.0.0.0', len: 8 } }, { range: ['198.51.100.3', '198.51.100.4'] }, { prefix: { addr: '203.0.113.2', len: 31 } }],
    });
    assert.deepEqual(addressMatch(6, ['2001:db8::2/128', '2001:db8::1/128', '::ffff:0:0/96', '2001:db8:0:1::/64']), {
      set: [{ prefix: { addr: '::ffff:0.0.0.0', len: 96 } }, { range: ['2001:db8::1', '2001:db8::2'] }, { prefix: { addr: '2001:db8:0:1::', len: 64 } }],
    });
    assert.deepEqual(addressMatch(4, ['0.0.0.0/0']), { prefix: { addr: '0.0.0.0', len: 0 } });
    assert.equal(addressMatch(6, ['fd00:0:0:1:0:0:0:1/128']), 'fd00:0:0:1::1', 'the longest zero run becomes ::');
  });

  it('the capture plans nothing; the chain holds own subnets, deny, allow, then the family rejects, as nft prints them', async () => {
    const t = capture('egress-states');
    assert.deepEqual(nftPlan(EGRESS, await snapshot(t)), []);
    const fresh = renderPlan(nftPlan(EGRESS, await snapshot(null)));
    assert.match(fresh, /\+ ct state new iifname vmap @egress/);
    assert.match(fresh, new RegExp(`\\+ ct state new jump net-${NET_E}-egress`));
    assert.match(fresh, /\+ ct original ip daddr \{ 10\.0\.0\.0\/8, 198\.51\.100\.3-198\.51\.100\.4, 203\.0\.113\.2\/31 \} reject/);
    assert.match(fresh, /\+ meta l4proto tcp ct original proto-dst 80 ct original ip daddr 203\.0\.113\.0\/24 return\n[^\n]*udp[^\n]*\n[^\n]*icmp[^\n]*\n[^\n]*ip6 daddr 2001:db8::\/32 return\n[^\n]*reject with icmp port-unreachable\n[^\n]*reject with icmpv6 port-unreachable/);
  });

  it('the egress map exists only while a network has a policy, and goes with the last one', async () => {
    const t = capture('egress-states');
    const gone = nftPlan([{ type: 'CreateNetwork', spec: networkSpec(NET_A) }], await snapshot(t));
    assert.ok(gone.some((a) => a.kind === 'nft.set.delete' && a.set === 'egress'));
    assert.ok(gone.some((a) => a.kind === 'nft.chain.write' && a.chain === 'input'), 'input no longer looks egress up');
    assert.ok(!('egress' in capture('firewall-states').sets));
  });
});

describe('nftables model (after): the table predicted after a pass plans nothing', () => {
  it('a port published: two elements, and the prediction is converged', async () => {
    const more: Command[] = [
      ...FIREWALL_COMMANDS,
      { type: 'ProgramExternal', networkId: NET_C, endpointId: 'e3'.repeat(4) + '4'.repeat(56), portmap: [{ proto: 6, port: 80, hostIp: '', hostPort: 9100, hostPortEnd: 9100 }] },
    ];
    const { actions, again, model } = await predictFrom(capture('firewall-states'), more);
    assert.ok(actions.length > 0);
    assert.deepEqual(again, []);
    assert.ok(model.nftables?.sets['dnat_addr']?.elements.some((e) => JSON.stringify(e).includes('9100')));
  });

  it('the networks of one capture replaced by those of the other (egress policies added, then removed)', async () => {
    const up = await predictFrom(capture('firewall-states'), EGRESS);
    assert.deepEqual(up.again, []);
    const down = await predictFrom(capture('egress-states'), [{ type: 'CreateNetwork', spec: networkSpec(NET_A) }, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) }]);
    assert.deepEqual(down.again, []);
    assert.ok(!('egress' in (down.model.nftables?.sets ?? {})));
  });

  it('no table yet, the last network gone, and a table rebuilt after a hand edit', async () => {
    const first = await predictFrom(null, EGRESS);
    assert.deepEqual(first.again, []);
    const last = await predictFrom(capture('egress-states'), []);
    assert.equal(last.model.nftables, null, 'the table is gone');
    const t = capture('egress-states');
    const broken = { ...t, sets: { ...t.sets, bridges: { ...t.sets['bridges']!, flags: [] } } };
    const rebuilt = await predictFrom(broken, EGRESS);
    assert.equal(rebuilt.actions[0]?.kind, 'nft.table.delete');
    assert.deepEqual(rebuilt.again, []);
    assert.deepEqual(rebuilt.model.nftables, first.model.nftables, 'the same table as one written from nothing');
  });
});
