// Docker's custom-named bridges (kernel/docker-bridges.ts) over a real `iptables-save` of Docker
// 20.10 with three networks of its own (fixtures/iptables/filter.docker-networks.txt): the names
// its patterns do not cover are read from its isolation chains, and both firewall backends isolate
// ledgernet's networks from them as from docker0 and br-*.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dockerBridgesOf } from '../../../src/kernel/docker-bridges.ts';
import { iptablesFirewall } from '../../../src/kernel/iptables/index.ts';
import { parseIptablesSave } from '../../../src/kernel/iptables/parse.ts';
import { nftablesFirewall } from '../../../src/kernel/nftables/index.ts';
import type { FirewallBackend, KernelSnapshot } from '../../../src/kernel/types.ts';
import { desiredFromState } from '../../../src/reconciler/desired.ts';
import { plan } from '../../../src/reconciler/plan.ts';
import { renderPlan } from '../../../src/reconciler/render.ts';
import { EP_1, NET_A, endpointSpec, networkSpec } from '../../helpers/events.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';
import { readFixture } from '../../helpers/fixtures.ts';
import { given } from '../../helpers/state.ts';

const dockerFilter = () => parseIptablesSave(readFixture('iptables/filter.docker-networks.txt'), 'filter');

async function snapshot(filter = dockerFilter()): Promise<KernelSnapshot> {
  return { ...(await new FakeKernel().observe()), filter, nftables: null };
}

const desired = () => desiredFromState(given({ type: 'CreateNetwork', spec: networkSpec(NET_A, '10.231.1.0/24', '10.231.1.1/24') }, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1, '10.231.1.2/24') }));

const planWith = (fw: FirewallBackend, s: KernelSnapshot) => renderPlan(plan(desired(), s, fw));

describe("Docker's custom-named bridges", () => {
  it("are read from Docker's isolation chains: custom names only, an internal network's too, each once", async () => {
    assert.deepEqual(dockerBridgesOf(await snapshot(), 'lnb-'), ['dkcustom0', 'dkinternal0']);
    const none = await new FakeKernel().observe();
    assert.deepEqual(dockerBridgesOf(none, 'lnb-'), [], 'no Docker chains (iptables off): none');
  });

  it("Docker 28's chains (no isolation stages): DOCKER-BRIDGE, DOCKER-CT and DOCKER-INTERNAL name them; DOCKER and DOCKER-USER never", async () => {
    // The layout of moby's integration/network/bridge/iptablesdoc for a custom-named network and an internal one.
    const chain = (name: string, rules: string[]) => [name, { name, policy: null, rules }] as const;
    const filter = {
      name: 'filter',
      chains: Object.fromEntries([
        chain('FORWARD', ['-j DOCKER-USER', '-j DOCKER-FORWARD']),
        chain('DOCKER', ['! -i docker0 -o docker0 -j DROP', '! -i eth1 -o custom28 -j ACCEPT']),
        chain('DOCKER-BRIDGE', ['-o docker0 -j DOCKER', '-o custom28 -j DOCKER']),
        chain('DOCKER-CT', ['-o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT', '-o custom28 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT']),
        chain('DOCKER-FORWARD', ['-j DOCKER-CT', '-j DOCKER-INTERNAL', '-j DOCKER-BRIDGE', '-i docker0 -j ACCEPT', '-i custom28 ! -o custom28 -j ACCEPT']),
        chain('DOCKER-INTERNAL', ['! -s 198.51.100.0/24 -o internal28 -j DROP', '! -d 198.51.100.0/24 -i internal28 -j DROP']),
        chain('DOCKER-USER', ['-i eth0 -o custom28 -j DROP', '-j RETURN']),
      ]),
    };
    assert.deepEqual(dockerBridgesOf({ ...(await snapshot()), filter }, 'lnb-'), ['custom28', 'internal28']);
  });

  it("ip6tables' chains count too; wildcards and ledgernet's own names never", async () => {
    const rules = ['-i v6only0 ! -o v6only0 -j DOCKER-ISOLATION-STAGE-2', '-i lnb-abc ! -o lnb-abc -j DROP', '-o wild+ -j DROP', '-o dkcustom0 -j DROP'];
    const filter6 = { name: 'filter', chains: { 'DOCKER-ISOLATION-STAGE-1': { name: 'DOCKER-ISOLATION-STAGE-1', policy: null, rules } } };
    assert.deepEqual(dockerBridgesOf({ ...(await snapshot()), filter6 }, 'lnb-'), ['dkcustom0', 'dkinternal0', 'v6only0']);
  });

  it('iptables: isolated both ways like docker0 and br-+; without them, no rule names them', async () => {
    const out = planWith(iptablesFirewall, await snapshot());
    for (const b of ['dkcustom0', 'dkinternal0']) {
      assert.match(out, new RegExp(`-i lnb-\\+ -o ${b} -m conntrack ! --ctstate DNAT .*-j DROP`), `ledgernet → ${b}`);
      assert.match(out, new RegExp(`-i ${b} -o lnb-\\+ -m conntrack ! --ctstate DNAT .*-j DROP`), `${b} → ledgernet`);
    }
    assert.match(out, /-i lnb-\+ -o br-\+ -m conntrack/);
    const plain = planWith(iptablesFirewall, await snapshot(parseIptablesSave(readFixture('iptables/filter.empty.txt'), 'filter')));
    assert.doesNotMatch(plain, /dkcustom0/);
  });

  it("a name Docker's chains still hold that a ledgernet network has now (Docker's network removed, the model not read since) is not Docker's", async () => {
    const d = desiredFromState(given({ type: 'CreateNetwork', spec: { ...networkSpec(NET_A, '10.231.1.0/24', '10.231.1.1/24'), bridge: 'dkcustom0' } }));
    const out = renderPlan(plan(d, await snapshot(), iptablesFirewall));
    assert.equal(out.split('\n').filter((l) => l.includes('-i dkcustom0 -o dkcustom0 -m conntrack')).length, 1, 'one isolation line, as for any custom bridge of ours');
    assert.match(out, /-i dkcustom0 -o dkinternal0 -m conntrack ! --ctstate DNAT .*-j DROP/, 'the other Docker bridge is still isolated');
    const set = plan(d, await snapshot(), nftablesFirewall).find((a) => a.kind === 'nft.set.write' && 'set' in a && a.set === 'docker_bridges');
    assert.ok(set && 'elements' in set);
    assert.deepEqual([...(set.elements as string[])].sort(), ['br-*', 'dkinternal0', 'docker0', 'docker_gwbridge']);
  });

  it('nftables: elements of the docker_bridges set, which both isolation rules look up', async () => {
    const actions = plan(desired(), await snapshot(), nftablesFirewall);
    const set = actions.find((a) => a.kind === 'nft.set.write' && 'set' in a && a.set === 'docker_bridges');
    assert.ok(set && 'elements' in set, 'the set is written');
    assert.deepEqual([...(set.elements as string[])].sort(), ['br-*', 'dkcustom0', 'dkinternal0', 'docker0', 'docker_gwbridge']);
    const out = renderPlan(actions);
    assert.match(out, /oifname @docker_bridges ct status & dnat == 0 drop/);
    assert.match(out, /iifname @docker_bridges ct status & dnat == 0 drop/);
  });
});
