// The gateway-mode and direct-access shapes (kernel/iptables/gateway-mode.ts,
// kernel/nftables/gateway-mode.ts) loaded into a real iptables/ip6tables and a real nft in a
// throwaway namespace, per backend: every rule reads back exactly as written (the plan is then
// empty), a protection rule deleted by hand is planned back, and removing the networks leaves
// none of it. Needs root.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel, type Kernel } from '../../src/kernel/index.ts';
import { iptablesFirewall } from '../../src/kernel/iptables/index.ts';
import { nftablesFirewall } from '../../src/kernel/nftables/index.ts';
import type { FirewallBackend } from '../../src/kernel/types.ts';
import { applyActions } from '../../src/reconciler/apply.ts';
import { desiredFromState, type DesiredState } from '../../src/reconciler/desired.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { renderPlan } from '../../src/reconciler/render.ts';
import { GATEWAY_COMMANDS } from '../helpers/firewall-states.ts';
import { given } from '../helpers/state.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

for (const fw of [iptablesFirewall, nftablesFirewall] as FirewallBackend[]) {
  describe(`gateway modes round-trip through the real ${fw.name}`, { skip }, () => {
    const netns = `lngwm-${process.pid}-${randomBytes(3).toString('hex')}`;
    let kernel: Kernel;
    const run = (...args: string[]) => execa('ip', ['netns', 'exec', netns, ...args]);
    const desired: DesiredState = { bridges: [], veths: [], firewall: desiredFromState(given(...GATEWAY_COMMANDS)).firewall };

    before(async () => {
      await execa('ip', ['netns', 'add', netns]);
      kernel = createKernel({ netns, filterPrefixes: [VETH_PREFIX] });
    });

    after(async () => {
      await execa('ip', ['netns', 'del', netns], { reject: false });
    });

    it('writes every shape, then plans nothing; a protection rule deleted by hand comes back', async () => {
      assert.deepEqual((await applyActions(plan(desired, await kernel.observe(), fw), kernel, fw)).failures, []);
      const again = plan(desired, await kernel.observe(), fw);
      assert.deepEqual(again, [], `rules that do not read back as written:\n${renderPlan(again)}`);
      if (fw.name === 'iptables') await run('iptables', '-t', 'mangle', '-D', 'LEDGERNET-DIRECT-c', '3');
      else await run('nft', 'delete', 'element', 'inet', 'ledgernet', 'direct6', '{ fd00:231:8::/64 }');
      const drift = plan(desired, await kernel.observe(), fw);
      assert.match(renderPlan(drift), fw.name === 'iptables' ? /\+ -d 10\.231\.9\.0\/24 ! -i lnb-cccccccc222 .*-j DROP/ : /\+ nft\.element\.add inet ledgernet\/direct6 fd00:231:8::\/64 : jump/);
      assert.deepEqual((await applyActions(drift, kernel, fw)).failures, []);
      assert.deepEqual(plan(desired, await kernel.observe(), fw), []);
    });

    it('removing the networks removes the protection and every rule of the modes', async () => {
      const none: DesiredState = { bridges: [], veths: [], firewall: desiredFromState(given()).firewall };
      assert.deepEqual((await applyActions(plan(none, await kernel.observe(), fw), kernel, fw)).failures, []);
      for (const cmd of ['iptables-save', 'ip6tables-save']) assert.doesNotMatch((await run(cmd)).stdout, /LEDGERNET|ledgernet:/);
      assert.equal((await run('nft', 'list', 'tables')).stdout.includes('ledgernet'), false);
    });
  });
}
