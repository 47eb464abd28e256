// A Docker pass plans the firewall from the last plan (partial.ts, FirewallBackend.planFrom):
// against a kernel that holds all of the last plan, it must plan exactly what the full plan of the
// new policy plans, for a network added, removed or changed (only its policy object is new).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from '../../../../src/events/domain/commands.ts';
import { iptablesFirewall } from '../../../../src/kernel/index.ts';
import { afterRestore } from '../../../../src/kernel/iptables/evolve.ts';
import type { FirewallChange, FirewallPolicy, IptablesTable, KernelSnapshot } from '../../../../src/kernel/types.ts';
import { desiredFromState } from '../../../../src/reconciler/desired.ts';
import { EGRESS_COMMANDS, FIREWALL_COMMANDS, GATEWAY_COMMANDS } from '../../../helpers/firewall-states.ts';
import { given } from '../../../helpers/state.ts';

const builtins = (name: string, chains: readonly string[]): IptablesTable => ({ name, chains: Object.fromEntries(chains.map((c) => [c, { name: c, policy: 'ACCEPT', rules: [] }])) });
const FILTER = ['INPUT', 'FORWARD', 'OUTPUT'];
const NAT = ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'];
const EMPTY = {
  links: [], addrs: [], routeLocalnet: {}, qdiscs: [], ingressRedirects: {}, nftables: null,
  filter: { ...builtins('filter', FILTER), chains: { ...builtins('filter', FILTER).chains, FORWARD: { name: 'FORWARD', policy: 'DROP', rules: ['-j DOCKER-USER', '-o br-1 -j DOCKER'] } } },
  nat: builtins('nat', NAT), filter6: builtins('filter', FILTER), nat6: builtins('nat', NAT),
  mangle: builtins('mangle', ['PREROUTING']), mangle6: builtins('mangle', ['PREROUTING']),
} as unknown as KernelSnapshot;

const key = (c: FirewallChange) => JSON.stringify(c);
const sorted = (cs: readonly FirewallChange[]) => cs.map(key).sort();

/** The kernel once the full plan of `policy` landed on it. */
const holding = (policy: FirewallPolicy) => afterRestore(EMPTY, iptablesFirewall.plan(policy, EMPTY));

function assertSame(next: FirewallPolicy, before: FirewallPolicy): FirewallChange[] {
  const model = holding(before);
  const full = iptablesFirewall.plan(next, model);
  const from = iptablesFirewall.planFrom?.(next, before, model) ?? [];
  assert.deepEqual(sorted(from), sorted(full));
  return from;
}

const STATES: Readonly<Record<string, readonly Command[]>> = { firewall: FIREWALL_COMMANDS, egress: EGRESS_COMMANDS, gateway: GATEWAY_COMMANDS };

describe('the iptables plan from the last plan', () => {
  for (const [name, commands] of Object.entries(STATES)) {
    const policy = desiredFromState(given(...commands)).firewall;
    it(`${name}: each network removed, re-added, and changed plans what the full plan plans`, () => {
      assert.ok(policy.networks.length >= 2);
      for (const n of policy.networks) {
        const without = { ...policy, networks: policy.networks.filter((m) => m !== n) };
        assert.ok(assertSame(without, policy).length > 0, 'removing a network changes the firewall');
        assert.ok(assertSame(policy, without).length > 0, 'adding it back too');
        const flipped = { ...policy, networks: policy.networks.map((m) => (m === n ? { ...m, icc: !m.icc, published: !m.published } : m)) };
        assertSame(flipped, policy);
      }
    });
  }

  it('plans nothing for the same policy, and everything of a first network', () => {
    const policy = desiredFromState(given(...FIREWALL_COMMANDS)).firewall;
    assert.deepEqual(assertSame(policy, policy), []);
    const none = { ...policy, networks: [] };
    assertSame({ ...policy, networks: policy.networks.slice(0, 1) }, none);
  });
});
