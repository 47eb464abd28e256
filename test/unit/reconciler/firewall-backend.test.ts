// The firewall seam: the reconciler hands the policy (typed data) to a FirewallBackend and routes
// the firewall changes back to it; nothing of iptables is spelled on the reconciler's side.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FirewallBackend, FirewallChange, FirewallPolicy } from '../../../src/kernel/types.ts';
import { applyActions } from '../../../src/reconciler/apply.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { plan } from '../../../src/reconciler/plan.ts';
import { EP_1, NET_A, NET_B } from '../../helpers/events.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';
import { EP_3, FIREWALL_COMMANDS, NET_C } from '../../helpers/firewall-states.ts';
import { given } from '../../helpers/state.ts';

const SHARED = { networkId: null, endpointId: null };

/** A backend that wants one chain per network and records what it is asked to apply. */
function recordingBackend(): FirewallBackend & { policies: FirewallPolicy[]; applied: FirewallChange[][] } {
  const policies: FirewallPolicy[] = [];
  const applied: FirewallChange[][] = [];
  return {
    name: 'recording',
    policies,
    applied,
    plan(policy) {
      policies.push(policy);
      return policy.networks.map((n) => ({ kind: 'chain.write', table: 'test', chain: n.bridge, rules: [], owner: SHARED, reason: 'missing' }));
    },
    async apply(changes) {
      applied.push([...changes]);
      return changes.filter((c) => c.kind === 'chain.write' && c.chain.endsWith(NET_C.slice(0, 11))).map((change) => ({ change, message: 'refused (test)' }));
    },
    after: (observed) => observed,
  };
}

describe('firewall backend seam', () => {
  it('plans from the policy as data and applies the firewall changes through the backend given', async () => {
    const k = new FakeKernel();
    const backend = recordingBackend();
    const actions = plan(desiredFromState(given(...FIREWALL_COMMANDS)), await k.observe(), backend);
    const [policy] = backend.policies;
    assert.deepEqual(
      policy?.networks.map((n) => [n.networkId, n.internal, n.icc, n.ipv6, n.allow?.length ?? null, n.masquerade, n.published]),
      [
        [NET_A, false, false, true, 4, [], true],
        [NET_B, true, true, true, null, [], false],
        [NET_C, false, true, false, null, ['10.231.9.0/24'], true],
      ],
    );
    assert.deepEqual(policy?.networks.find((n) => n.networkId === NET_A)?.forwards.map((f) => [f.endpointId, f.proto, f.hostPorts, f.port]), [[EP_1, 'tcp', [8080, 8080], 80]]);
    assert.ok(policy?.networks.find((n) => n.networkId === NET_C)?.forwards.every((f) => f.endpointId === EP_3));
    const fw = actions.filter((a) => a.kind === 'chain.write');
    assert.equal(fw.length, 3);
    const { failures } = await applyActions(actions, k, backend);
    assert.deepEqual(backend.applied, [fw]);
    assert.deepEqual(failures.map((f) => f.message), ['refused (test)']);
    assert.equal(k.calls.filter((c) => c.kind === 'restoreIptables').length, 0, 'no iptables behind its back');
  });
});
