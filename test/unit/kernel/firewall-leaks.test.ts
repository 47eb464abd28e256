// Holes a review proved with real packets, closed in both backends (the packets themselves:
// test/integration/firewall-leaks.test.ts):
// - a port published on 127.0.0.1 reachable from the LAN and other containers (moby#41872): no
//   DNAT of loopback destinations from PREROUTING / prerouting;
// - IPv6 forwarded from and to a network without IPv6 (internal or with an egress policy too);
// - packets conntrack marks INVALID past egress_deny / egress_allow and (nftables) isolation.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderAcceptOnly, renderChains } from '../../../src/kernel/iptables/render.ts';
import { renderTable } from '../../../src/kernel/nftables/render.ts';
import type { FirewallPolicy } from '../../../src/kernel/types.ts';
import { applyActions } from '../../../src/reconciler/apply.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { plan } from '../../../src/reconciler/plan.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';
import { FIREWALL_COMMANDS } from '../../helpers/firewall-states.ts';
import { given } from '../../helpers/state.ts';

const policy = (): FirewallPolicy => desiredFromState(given(...FIREWALL_COMMANDS)).firewall;
const json = (v: unknown) => JSON.stringify(v);
const LOOPBACK_MATCH = json({ match: { op: '!=', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: { prefix: { addr: '127.0.0.0', len: 8 } } } });

describe('a port published on 127.0.0.1 is not DNATed from outside the host', () => {
  it('iptables: PREROUTING jumps to LEDGERNET-DNAT not for 127.0.0.0/8; OUTPUT still does', () => {
    const dnat = renderChains(policy()).find((c) => c.table === 'nat' && c.name === 'LEDGERNET-DNAT');
    assert.deepEqual(
      dnat?.hooks.map((h) => `${h.from} ${h.rule}`),
      [
        'PREROUTING ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -m comment --comment "ledgernet:hook" -j LEDGERNET-DNAT',
        'OUTPUT -m addrtype --dst-type LOCAL -m comment --comment "ledgernet:hook" -j LEDGERNET-DNAT',
      ],
    );
  });

  it('iptables: a host with the old PREROUTING hook converges to the new one', async () => {
    const k = new FakeKernel();
    const desired = desiredFromState(given(...FIREWALL_COMMANDS));
    assert.deepEqual((await applyActions(plan(desired, await k.observe()), k)).failures, []);
    const pre = k.nat.get('PREROUTING')!.rules;
    const i = pre.findIndex((r) => r.endsWith('-j LEDGERNET-DNAT'));
    const old = '-m addrtype --dst-type LOCAL -m comment --comment "ledgernet:hook" -j LEDGERNET-DNAT';
    pre.splice(i, 1, old);
    const actions = plan(desired, await k.observe());
    assert.deepEqual(
      actions.map((a) => `${a.kind} ${a.reason} ${'rule' in a ? a.rule : ''}`),
      [`hook.delete orphan ${old}`, `hook.add missing ! -d 127.0.0.0/8 ${old}`],
    );
    assert.deepEqual((await applyActions(actions, k)).failures, []);
    assert.deepEqual(plan(desired, await k.observe()), []);
    assert.deepEqual(k.nat.get('PREROUTING')!.rules.filter((r) => r.includes('LEDGERNET-DNAT')), [`! -d 127.0.0.0/8 ${old}`]);
  });

  it('nftables: the IPv4 dnat rules of prerouting skip 127.0.0.0/8; those of output do not', () => {
    const t = renderTable(policy())!;
    const ipv4Dnat = (chain: string) => t.chains.get(chain)!.rules.filter((r) => json(r).includes('"family":"ip"'));
    assert.equal(ipv4Dnat('prerouting').length, 2);
    assert.ok(ipv4Dnat('prerouting').every((r) => json(r[0]) === LOOPBACK_MATCH), json(ipv4Dnat('prerouting')));
    assert.equal(ipv4Dnat('output').length, 2);
    assert.ok(ipv4Dnat('output').every((r) => !json(r).includes(LOOPBACK_MATCH)));
  });
});

describe('a network without IPv6 forwards no IPv6', () => {
  // FIREWALL_COMMANDS: C is IPv4 only; A and B have IPv6 data.
  const c = () => policy().networks.find((n) => !n.ipv6)!;

  it('iptables: filter6 drops IPv6 from and to its bridge (not inside it), before any accept', () => {
    const b = c().bridge;
    const chains = renderChains(policy()).filter((ch) => ch.table === 'filter6');
    const drops = [`-i ${b} ! -o ${b} `, `! -i ${b} -o ${b} `];
    const rules = chains.flatMap((ch) => ch.rules);
    for (const d of drops) assert.ok(rules.some((r) => r.startsWith(d) && r.endsWith(':no-ipv6" -j DROP')), `${d}… -j DROP in ${rules.join('\n')}`);
    // The drops are in the early bucket (before isolation, egress and every accept but replies).
    const early = chains.find((ch) => ch.name === `LEDGERNET-EARLY-${b.charAt(4)}`);
    assert.ok(early?.rules.some((r) => r.startsWith(drops[0]!)));
    assert.ok(!chains.some((ch) => ch.networkId === c().networkId), 'no chain of its own in filter6');
    assert.ok(!renderChains(policy()).some((ch) => ch.table === 'filter' && ch.rules.some((r) => r.includes(':no-ipv6'))), 'nothing in the IPv4 table');
  });

  it('iptables accept-only (nftables backend): filter6 holds the same few accepts as filter, no line per network (the table drops its IPv6)', () => {
    const [v4, v6] = renderAcceptOnly(policy(), 'accept');
    assert.ok(policy().networks.some((n) => !n.ipv6), 'the policy has a network without IPv6');
    assert.deepEqual(v6?.rules, v4?.rules);
    assert.ok(v6?.rules.every((r) => r.endsWith('-j ACCEPT') && !policy().networks.some((n) => r.includes(n.bridge))), v6?.rules.join('\n'));
  });

  it('nftables: its from and to chains start with a drop of IPv6 not inside the bridge', () => {
    const n = c();
    const t = renderTable(policy())!;
    const ipv6 = { match: { op: '==', left: { meta: { key: 'nfproto' } }, right: 'ipv6' } };
    const notHere = (dir: string) => ({ match: { op: '!=', left: { meta: { key: dir } }, right: n.bridge } });
    assert.deepEqual(t.chains.get(`net-${n.networkId}-from`)!.rules[0], [ipv6, notHere('oifname'), { drop: null }]);
    assert.deepEqual(t.chains.get(`net-${n.networkId}-to`)!.rules[0], [ipv6, notHere('iifname'), { drop: null }]);
    const v6 = policy().networks.find((m) => m.ipv6)!;
    assert.ok(!json(t.chains.get(`net-${v6.networkId}-from`)!.rules).includes('"right":"ipv6"'), 'a network with IPv6 has no such drop');
  });
});

describe('packets conntrack marks INVALID do not leave a ledgernet network', () => {
  const INVALID = json([{ match: { op: 'in', left: { ct: { key: 'state' } }, right: 'invalid' } }, { drop: null }]);

  it('iptables: LEDGERNET-FORWARD drops INVALID from our bridges after isolation, before the egress jumps and accepts', () => {
    for (const table of ['filter', 'filter6'] as const) {
      const fwd = renderChains(policy()).find((ch) => ch.table === table && ch.name === 'LEDGERNET-FORWARD')!.rules;
      const i = fwd.indexOf('-i lnb-+ -m conntrack --ctstate INVALID -m comment --comment "ledgernet:invalid" -j DROP');
      assert.ok(i > 0, `${table}: ${fwd.join('\n')}`);
      assert.ok(fwd.slice(i + 1).every((r) => !r.includes('isolation')), 'after isolation');
      assert.ok(fwd.slice(0, i).every((r) => !r.includes('LEDGERNET-EGRESS-') && !r.includes('LEDGERNET-LATE-')), 'before the egress jumps and accepts');
    }
  });

  it('nftables: every from chain drops INVALID before its egress jump and accepts out; every to chain before anything lets it in', () => {
    const t = renderTable(policy())!;
    for (const n of policy().networks) {
      const from = t.chains.get(`net-${n.networkId}-from`)!.rules.map(json);
      const i = from.indexOf(INVALID);
      assert.ok(i >= 0, from.join('\n'));
      // Before it only what stays inside the bridge (icc, hairpin, internal, IPv6 of a network without it).
      assert.ok(from.slice(0, i).every((r) => r.includes(`"right":"${n.bridge}"`) || r.includes('"drop"')), from.slice(0, i).join('\n'));
      assert.ok(from.slice(i).some((r) => r.includes('"oifname"}},"right":"@docker_bridges"')) || n.internal, 'before isolation from Docker');
      const to = t.chains.get(`net-${n.networkId}-to`)!.rules.map(json);
      const j = to.indexOf(INVALID);
      assert.ok(j >= 0 && to.slice(0, j).every((r) => r.includes('"drop"')), to.join('\n'));
    }
  });
});
