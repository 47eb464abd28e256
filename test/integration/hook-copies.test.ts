// Copies of ledgernet's FORWARD hook (as `iptables-restore --noflush` of a backup adds them),
// against a real iptables in a throwaway namespace, per backend (the nftables backend keeps its
// hook in iptables' FORWARD too): one pass (one restore) deletes every copy by rule and adds one
// back in its place, no one else's rule is touched, and the next plan is empty. Needs root.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel } from '../../src/kernel/index.ts';
import { iptablesFirewall } from '../../src/kernel/iptables/index.ts';
import { nftablesFirewall } from '../../src/kernel/nftables/index.ts';
import { applyActions } from '../../src/reconciler/apply.ts';
import { desiredFromState, type DesiredState } from '../../src/reconciler/desired.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { renderPlan } from '../../src/reconciler/render.ts';
import { EP_1, NET_A, endpointSpec, networkSpec } from '../helpers/events.ts';
import { throwawayNetns } from '../helpers/netns.ts';
import { given } from '../helpers/state.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

/** Docker 28's FORWARD: its jumps, with ledgernet's hook to go between them. */
const DOCKER_RULES = `*filter
:DOCKER-USER - [0:0]
:DOCKER-FORWARD - [0:0]
-A FORWARD -j DOCKER-USER
-A FORWARD -j DOCKER-FORWARD
-A DOCKER-USER -j RETURN
COMMIT
`;

const HOOK = '-A FORWARD -m comment --comment "ledgernet:hook" -j LEDGERNET-FORWARD';

for (const backend of [iptablesFirewall, nftablesFirewall]) {
  describe(`${backend.name}: copies of the FORWARD hook are repaired in one pass`, { skip }, () => {
    const netns = throwawayNetns('lnhook');
    const ipt = (...args: string[]) => execa('ip', ['netns', 'exec', netns, 'iptables', ...args]);
    const forward = async () => (await execa('ip', ['netns', 'exec', netns, 'iptables-save', '-c', '-t', 'filter'])).stdout.split('\n').filter((l) => l.includes('-A FORWARD '));
    const desired = (): DesiredState => ({
      bridges: [],
      veths: [],
      firewall: desiredFromState(given({ type: 'CreateNetwork', spec: networkSpec(NET_A) }, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) })).firewall,
    });

    it('deletes every copy by rule, adds one back in place, touches no other rule, and the next plan is empty', async () => {
      const kernel = createKernel({ netns, filterPrefixes: [VETH_PREFIX] });
      await kernel.iptablesRestore(DOCKER_RULES);
      assert.deepEqual((await applyActions(plan(desired(), await kernel.observe(), backend), kernel, backend)).failures, []);
      const converged = await forward();
      assert.deepEqual(converged, ['[0:0] -A FORWARD -j DOCKER-USER', `[0:0] ${HOOK}`, '[0:0] -A FORWARD -j DOCKER-FORWARD']);
      // Someone else's rules around the copies, with counters: they must come through untouched.
      await ipt('-A', 'FORWARD', '-c', '7', '700', '-s', '192.0.2.1', '-j', 'ACCEPT');
      await ipt('-A', 'FORWARD', '-m', 'comment', '--comment', 'ledgernet:hook', '-j', 'LEDGERNET-FORWARD');
      await ipt('-I', 'FORWARD', '1', '-m', 'comment', '--comment', 'ledgernet:hook', '-j', 'LEDGERNET-FORWARD');
      const foreign = '[7:700] -A FORWARD -s 192.0.2.1/32 -j ACCEPT';
      const drift = plan(desired(), await kernel.observe(), backend);
      const hook = HOOK.slice('-A FORWARD '.length);
      const deleted = `  - hook.delete filter/FORWARD ${hook} (drifted: 3 copies: all go, one is added back in its place)`;
      assert.deepEqual(
        renderPlan(drift)
          .split('\n')
          .filter((l) => l.includes('hook.')),
        [deleted, deleted, deleted, `  + hook.add filter/FORWARD ${hook} (missing)`],
      );
      assert.deepEqual((await applyActions(drift, kernel, backend)).failures, []);
      assert.deepEqual(await forward(), [...converged, foreign]);
      const again = plan(desired(), await kernel.observe(), backend);
      assert.deepEqual(again, [], `not converged:\n${JSON.stringify(again, null, 2)}`);
    });
  });
}
