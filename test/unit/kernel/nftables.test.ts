// The nftables backend's plan over a real `nft -j list table` capture (fixtures/nft/): a converged
// table plans nothing, a published port added is one element in each port map (no chain is
// rewritten), a network added is its own chains and map elements, and the dry-run shows it all in
// the same +/~/- form. The capture is the FIREWALL_COMMANDS state written by this backend into a
// real nft (test/integration/nftables.test.ts checks the same round trip live).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from '../../../src/events/domain/commands.ts';
import { iptablesFirewall } from '../../../src/kernel/iptables/index.ts';
import { nftablesFirewall } from '../../../src/kernel/nftables/index.ts';
import { describeElements } from '../../../src/kernel/nftables/describe.ts';
import { parseNftTable } from '../../../src/kernel/nftables/parse.ts';
import type { KernelSnapshot } from '../../../src/kernel/types.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { plan } from '../../../src/reconciler/plan.ts';
import { renderPlan } from '../../../src/reconciler/render.ts';
import { EP_2, endpointSpec, networkSpec } from '../../helpers/events.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';
import { FIREWALL_COMMANDS, NET_C } from '../../helpers/firewall-states.ts';
import { readFixture } from '../../helpers/fixtures.ts';
import { given } from '../../helpers/state.ts';

const table = () => parseNftTable(readFixture('nft/list-table.firewall-states.json'), 'inet', 'ledgernet');

async function snapshot(nftables: KernelSnapshot['nftables']): Promise<KernelSnapshot> {
  return { ...(await new FakeKernel().observe()), ...(nftables === undefined ? {} : { nftables }) };
}

/** The firewall part of the plan for `commands` (links aside), nftables changes only. */
async function nftPlan(commands: readonly Command[], nftables: KernelSnapshot['nftables']) {
  const d = desiredFromState(given(...commands));
  return plan({ bridges: [], veths: [], firewall: d.firewall }, await snapshot(nftables), nftablesFirewall).filter((a) => a.kind.startsWith('nft.'));
}

const NET_D = 'dddddddd' + '3'.repeat(56);
const EP_D = 'e4'.repeat(4) + '5'.repeat(56);

describe('nftables backend plan', () => {
  it('parses the capture: sets, maps, base chains with their hooks, per-network chains', () => {
    const t = table();
    assert.deepEqual(Object.keys(t.sets).sort(), [
      'bound6_addr', 'bound6_port', 'bound_addr', 'bound_port', 'bridges', 'direct4', 'direct6', 'dnat6_addr', 'dnat6_port', 'dnat_addr', 'dnat_port', 'docker_bridges', 'from', 'masq', 'masq6', 'nat_to', 'to',
    ]);
    assert.deepEqual(t.chains['forward']?.hook, { type: 'filter', hook: 'forward', prio: 0, policy: 'accept' });
    assert.equal(t.chains['forward']?.rules.length, 2);
    assert.ok(t.chains[`net-${NET_C}-from`]);
  });

  it('a converged table plans nothing', async () => {
    assert.deepEqual(await nftPlan(FIREWALL_COMMANDS, table()), []);
  });

  it('a port published by another endpoint is one element in each port map, no chain rewritten', async () => {
    const more: Command[] = [
      ...FIREWALL_COMMANDS,
      { type: 'ProgramExternal', networkId: NET_C, endpointId: 'e3'.repeat(4) + '4'.repeat(56), portmap: [{ proto: 6, port: 80, hostIp: '', hostPort: 9100, hostPortEnd: 9100 }] },
    ];
    const actions = await nftPlan(more, table());
    // The endpoint already published other ports: its portmap is replaced, so compare by set.
    const added = actions.filter((a) => a.kind === 'nft.element.add').map((a) => ('text' in a ? `${a.set} ${a.text}` : ''));
    assert.ok(added.includes('dnat_addr tcp . 9100 : 10.231.9.2') && added.includes('dnat_port tcp . 9100 : 80'), added.join('\n'));
    assert.deepEqual(actions.filter((a) => a.kind.startsWith('nft.chain') || a.kind.startsWith('nft.set') || a.kind === 'nft.table.delete'), []);
  });

  it('a network added is its own chains and map elements; shared chains are not rewritten', async () => {
    const more: Command[] = [
      ...FIREWALL_COMMANDS,
      { type: 'CreateNetwork', spec: networkSpec(NET_D, '10.231.10.0/24', '10.231.10.1/24') },
      { type: 'CreateEndpoint', spec: endpointSpec(NET_D, EP_D, '10.231.10.2/24') },
    ];
    const actions = await nftPlan(more, table());
    const chains = actions.filter((a) => a.kind === 'nft.chain.write').map((a) => ('chain' in a ? a.chain : ''));
    assert.deepEqual(chains.sort(), [`net-${NET_D}-direct`, `net-${NET_D}-from`, `net-${NET_D}-masq`, `net-${NET_D}-to`]);
    assert.ok(actions.every((a) => a.owner.networkId === NET_D), 'every change is the new network\'s');
    const out = renderPlan(actions);
    assert.match(out, new RegExp(`\\+ nft\\.element\\.add inet ledgernet/from "lnb-dddddddd333" : jump net-${NET_D}-from \\(missing\\)`));
    assert.match(out, /\+ nft\.element\.add inet ledgernet\/masq 10\.231\.10\.0\/24 : jump/);
    assert.match(out, /\+ meta nfproto ipv4 oifname != @bridges accept/, "IPv4 only: the network has no IPv6 data");
  });

  it('no table: every set and chain is written; no networks: the table goes; the iptables backend removes it', async () => {
    const fresh = await nftPlan(FIREWALL_COMMANDS, null);
    assert.equal(fresh.filter((a) => a.kind === 'nft.set.write').length, 17);
    assert.ok(fresh.every((a) => a.reason === 'missing'));
    assert.deepEqual((await nftPlan([], table())).map((a) => `${a.kind} ${a.reason}`), ['nft.table.delete orphan']);
    const d = desiredFromState(given(...FIREWALL_COMMANDS));
    const viaIptables = plan({ bridges: [], veths: [], firewall: d.firewall }, await snapshot(table()), iptablesFirewall);
    assert.deepEqual(viaIptables.filter((a) => a.kind.startsWith('nft.')).map((a) => a.kind), ['nft.table.delete']);
    // nft not installed: nothing of nftables to plan for the iptables backend.
    const without = plan({ bridges: [], veths: [], firewall: d.firewall }, await snapshot(undefined), iptablesFirewall);
    assert.deepEqual(without.filter((a) => a.kind.startsWith('nft.')), []);
  });

  it('a rule added a second time is one unexpected rule, listed with -, not an order difference', async () => {
    const t = table();
    const forward = t.chains['forward']!;
    const twice = { ...t, chains: { ...t.chains, forward: { ...forward, rules: [...forward.rules, forward.rules[0]!] } } };
    const actions = await nftPlan(FIREWALL_COMMANDS, twice);
    assert.deepEqual(renderPlan(actions).split('\n').slice(1, 3), [
      '  ~ nft.chain.write inet ledgernet/forward (drifted: 2 rules expected, 3 found (0 missing, 1 unexpected))',
      '      - iifname vmap @from',
    ]);
  });

  it('the dry-run shows hand edits in nft syntax (a counter, a verdict in a map), and the elements of a set written whole', async () => {
    const t = table();
    const forward = t.chains['forward']!;
    const from = t.sets['from']!;
    const [first, ...others] = from.elements;
    const edited = {
      ...t,
      chains: { ...t.chains, forward: { ...forward, rules: [[{ counter: { packets: 0, bytes: 0 } }, { drop: null }], ...forward.rules.slice(1)] } },
      sets: { ...t.sets, from: { ...from, elements: [[(first as unknown[])[0], { accept: null }], ...others] } },
    };
    const shown = renderPlan(await nftPlan(FIREWALL_COMMANDS, edited));
    assert.match(shown, /~ nft\.chain\.write inet ledgernet\/forward \(drifted: [^\n]*\n\s+\+ iifname vmap @from\n\s+- counter drop\n/);
    assert.match(shown, /- nft\.element\.delete inet ledgernet\/from "lnb-aaaaaaaa000" : accept \(orphan\)/);
    assert.doesNotMatch(shown, /[{}]/, 'no JSON');
    // The table deleted: each set is listed with the elements it will be written with.
    const fresh = renderPlan(await nftPlan(FIREWALL_COMMANDS, null));
    assert.match(fresh, /\+ nft\.set\.write inet ledgernet\/dnat_addr \(missing\)\n\s+\+ tcp \. 8080 : 10\.231\.7\.2\n(\s+\+ [^\n]+\n){5}\s+\+ udp \. 5353 : 10\.231\.9\.2\n\s+\+ nft\.set\.write inet ledgernet\/dnat_port/);
    // Many: the first 20, then how many more.
    const many = describeElements(Array.from({ length: 25 }, (_, i) => [{ concat: ['tcp', 10000 + i] }, '10.231.9.2']));
    assert.deepEqual([many.length, many[0], many[19], many[20]], [21, '+ tcp . 10000 : 10.231.9.2', '+ tcp . 10019 : 10.231.9.2', '+ … and 5 more']);
  });

  it('a set declared otherwise (a hand edit) rebuilds the table in one transaction', async () => {
    const t = table();
    const broken = { ...t, sets: { ...t.sets, bridges: { ...t.sets['bridges']!, flags: [] } } };
    const actions = await nftPlan(FIREWALL_COMMANDS, broken);
    assert.equal(actions[0]?.kind, 'nft.table.delete');
    assert.equal(actions[0]?.reason, 'drifted');
    assert.ok(actions.slice(1).every((a) => a.reason === 'missing'));
  });

  it('a container without published ports changes nothing; a table read again with a chain gone is planned anew', async () => {
    const snap = await snapshot(table());
    const planFor = (commands: readonly Command[], observed: KernelSnapshot) =>
      plan({ bridges: [], veths: [], firewall: desiredFromState(given(...commands)).firewall }, observed, nftablesFirewall).filter((a) => a.kind.startsWith('nft.'));
    const withContainer: Command[] = [...FIREWALL_COMMANDS, { type: 'CreateEndpoint', spec: endpointSpec(NET_C, EP_D, '10.231.9.9/24') }];
    assert.deepEqual(planFor(FIREWALL_COMMANDS, snap), []);
    // The same tables (the model of a pass that wrote nothing) and an equal policy: nothing, again.
    assert.deepEqual(planFor(withContainer, snap), []);
    // A full read finds a per-network chain deleted by hand: same policy, new tables, the chain is repaired.
    const { [`net-${NET_C}-from`]: _, ...chains } = snap.nftables!.chains;
    const actions = planFor(withContainer, { ...snap, nftables: { ...snap.nftables!, chains } });
    assert.deepEqual(actions.map((a) => `${a.kind} ${'chain' in a ? a.chain : ''} ${a.reason}`), [`nft.chain.write net-${NET_C}-from missing`]);
    // And the table as it was plans nothing once more.
    assert.deepEqual(planFor(withContainer, snap), []);
  });
});
