// The egress policy as data (firewall.ts) and as iptables rules (kernel/iptables/egress.ts):
// golden plans, then apply to the in-memory kernel and plan again: nothing left to do.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyActions } from '../../../src/reconciler/apply.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { plan } from '../../../src/reconciler/plan.ts';
import { renderPlan } from '../../../src/reconciler/render.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';
import { EGRESS_COMMANDS, NET_D } from '../../helpers/firewall-states.ts';
import { NET_A, NET_B, networkSpec } from '../../helpers/events.ts';
import { assertGolden } from '../../helpers/golden.ts';
import { flatWrites } from '../../helpers/iptables-flat.ts';
import { given } from '../../helpers/state.ts';

const firewallOnly = (a: { kind: string }) => a.kind.startsWith('chain.') || a.kind.startsWith('hook.');

describe('egress policy', () => {
  it('is typed data in the firewall policy: own subnets, deny, allow (null when not given)', () => {
    const nets = desiredFromState(given(...EGRESS_COMMANDS)).firewall.networks;
    const a = nets.find((n) => n.networkId === NET_A);
    const b = nets.find((n) => n.networkId === NET_B);
    const d = nets.find((n) => n.networkId === NET_D);
    assert.deepEqual(a?.egress?.own, ['10.231.7.0/24', 'fd00:231:7::/64']);
    assert.equal(a?.egress?.allow, null);
    assert.equal(a?.egress?.deny.length, 7);
    assert.deepEqual(b?.egress?.deny, [{ family: 4, cidr: '203.0.113.9/32', proto: null, ports: null }]);
    assert.deepEqual(b?.egress?.allow?.map((i) => i.cidr), ['203.0.113.0/24', '0.0.0.0/0', '198.51.100.0/24', '2001:db8::/32']);
    assert.deepEqual(d?.egress?.allow?.map((i) => `${i.family} ${i.cidr}`), ['4 203.0.113.0/24']);
    const plain = desiredFromState(given({ type: 'CreateNetwork', spec: networkSpec(NET_A) })).firewall.networks[0];
    assert.equal(plain?.egress, null);
  });

  it('renders one chain per network and family, jumped to from FORWARD and INPUT (golden), and converges', async () => {
    const k = new FakeKernel();
    const desired = desiredFromState(given(...EGRESS_COMMANDS));
    const actions = plan(desired, await k.observe()).filter(firewallOnly);
    assertGolden('plans/egress=deny+allow+both,actual=empty.txt', renderPlan(actions));
    const chains = actions.flatMap((a) => (a.kind === 'chain.write' ? [`${a.table}/${a.chain}`] : []));
    const bucketsAndOwn = (t: string) => [
      ...['a', 'b'].flatMap((c) => [`${t}/LEDGERNET-EARLY-${c}`, `${t}/LEDGERNET-EGRESS-${c}`, `${t}/LEDGERNET-LATE-${c}`]),
      ...['aaaaaaaa0000', 'bbbbbbbb1111', 'dddddddd3333'].flatMap((id) => [`${t}/LEDGERNET-EG-${id}`, `${t}/LEDGERNET-ING-${id}`, `${t}/LEDGERNET-LAN-${id}`]),
      `${t}/LEDGERNET-FORWARD`,
      `${t}/LEDGERNET-INPUT`,
    ];
    assert.deepEqual(chains.sort(), [
      ...bucketsAndOwn('filter'),
      ...bucketsAndOwn('filter6'),
      'mangle/LEDGERNET-DIRECT',
      'mangle/LEDGERNET-DIRECT-a',
      'mangle/LEDGERNET-DIRECT-b',
      'mangle6/LEDGERNET-DIRECT',
      'mangle6/LEDGERNET-DIRECT-a',
      'mangle6/LEDGERNET-DIRECT-b',
      'nat/LEDGERNET-DNAT',
      'nat/LEDGERNET-POSTROUTING',
      'nat/LEDGERNET-POSTROUTING-a',
      'nat/LEDGERNET-POSTROUTING-b',
      'nat6/LEDGERNET-POSTROUTING',
    ].sort());
    const rules = (table: string, chain: string) => {
      const a = actions.find((x) => x.kind === 'chain.write' && x.table === table && x.chain === chain);
      return a?.kind === 'chain.write' ? a.rules : [];
    };
    // Deny wins: B's deny item comes before its allow items; an allow-list ends in a reject.
    const b4 = rules('filter', 'LEDGERNET-EG-bbbbbbbb1111');
    assert.match(b4[0] ?? '', /--ctorigdst 10\.231\.8\.0\/24 .*-j RETURN$/);
    assert.match(b4[1] ?? '', /--ctorigdst 203\.0\.113\.9 .*egress-deny" -j REJECT/);
    assert.match(b4.at(-1) ?? '', /egress-default" -j REJECT --reject-with icmp-port-unreachable$/);
    // D allows only IPv4 items: its IPv6 chain is the own subnet, then a reject.
    assert.equal(rules('filter6', 'LEDGERNET-EG-dddddddd3333').length, 2);
    // The jump comes after isolation and before any ingress accept.
    const fwd = flatWrites(actions, 'filter');
    const jump = fwd.findIndex((r) => r.includes('-j LEDGERNET-EG-aaaaaaaa0000'));
    assert.ok(jump > fwd.findLastIndex((r) => r.includes('ledgernet:isolation')));
    assert.ok(jump < fwd.findIndex((r) => r.includes(':published"') || r.includes(':ingress"')));
    assert.deepEqual((await applyActions(actions, k)).failures, []);
    assert.deepEqual(plan(desired, await k.observe()).filter(firewallOnly), []);
    // The networks gone: every egress chain and the jumps to them go too, in one pass.
    const gone = plan(desiredFromState(given()), await k.observe());
    assert.deepEqual((await applyActions(gone, k)).failures, []);
    assert.deepEqual([...k.chains.keys(), ...k.filter6.keys()].filter((c) => c.startsWith('LEDGERNET')), []);
  });
});
