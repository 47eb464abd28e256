// A Docker pass plans the firewall from the last plan (FirewallBackend.planFrom: iptables/partial.ts,
// nftables/partial.ts): against a kernel that holds all of the last plan, it must plan exactly what
// the full plan of the new policy plans, for a network added, removed or changed (only its policy
// object is new), on each backend.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from '../../../src/events/domain/commands.ts';
import { iptablesFirewall, nftablesFirewall } from '../../../src/kernel/index.ts';
import type { FirewallBackend, FirewallChange, FirewallPolicy, IptablesTable, KernelSnapshot } from '../../../src/kernel/types.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { EGRESS_COMMANDS, EGRESS_MERGED, FIREWALL_COMMANDS, GATEWAY_COMMANDS } from '../../helpers/firewall-states.ts';
import { NAT6_COMMANDS } from '../../helpers/nat6-states.ts';
import { given } from '../../helpers/state.ts';

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

const STATES: Readonly<Record<string, readonly Command[]>> = {
  firewall: FIREWALL_COMMANDS,
  egress: EGRESS_COMMANDS,
  'egress merged': [...EGRESS_MERGED, ...FIREWALL_COMMANDS],
  gateway: GATEWAY_COMMANDS,
  nat6: NAT6_COMMANDS,
};

for (const backend of [iptablesFirewall, nftablesFirewall] as const) {
  /** The kernel once the full plan of `policy` landed on it (the backend's own model of it). */
  const holding = (policy: FirewallPolicy): KernelSnapshot => {
    const model = backend.after(EMPTY, backend.plan(policy, EMPTY));
    assert.ok(model, 'the backend predicts the kernel after its plan');
    assert.deepEqual(backend.plan(policy, model), [], 'the model holds all of the plan');
    return model;
  };

  function assertSame(next: FirewallPolicy, before: FirewallPolicy): FirewallChange[] {
    const model = holding(before);
    const full = backend.plan(next, model);
    const from = (backend as FirewallBackend).planFrom?.(next, before, model);
    assert.ok(from, `${backend.name} plans from the last plan`);
    assert.deepEqual(sorted(from), sorted(full));
    return from;
  }

  describe(`the ${backend.name} plan from the last plan`, () => {
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
          const unpublished = { ...policy, networks: policy.networks.map((m) => (m === n ? { ...m, forwards: [] } : m)) };
          assertSame(unpublished, policy);
          assertSame(policy, unpublished);
        }
      });
    }

    it('plans nothing for the same policy, and everything of a first network or of the last one gone', () => {
      const policy = desiredFromState(given(...FIREWALL_COMMANDS)).firewall;
      assert.deepEqual(assertSame(policy, policy), []);
      const none = { ...policy, networks: [] };
      assertSame({ ...policy, networks: policy.networks.slice(0, 1) }, none);
      assertSame(none, { ...policy, networks: policy.networks.slice(0, 1) });
    });

    it('a published port that moves from one network to another, and vxlan peers that change', () => {
      const policy = desiredFromState(given(...FIREWALL_COMMANDS)).firewall;
      const [a, b] = policy.networks.filter((n) => n.forwards.length > 0);
      assert.ok(a && b, 'two networks publish ports');
      // The same host ports, now to a container of the other network.
      const ports = a.forwards.map((f) => ({ ...f, ip: b.forwards[0]?.ip ?? f.ip, endpointId: b.forwards[0]?.endpointId ?? f.endpointId }));
      const moved = { ...policy, networks: policy.networks.map((m) => (m === a ? { ...m, forwards: [] } : m === b ? { ...m, forwards: [...m.forwards, ...ports] } : m)) };
      assert.ok(assertSame(moved, policy).length > 0);
      assertSame(policy, moved);
      const peers = { ...policy, vxlanPeers: ['192.0.2.10', '192.0.2.11'] };
      assert.ok(assertSame(peers, policy).length > 0);
      assertSame(policy, peers);
    });
  });
}
