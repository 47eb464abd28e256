// Docker's passes plan only the networks their intents changed (reconciler/scoped.ts), against the
// kernel model: a life of networks, endpoints, ports, rates and gateway modes, one intent at a
// time as the daemon folds them, through the reconcile loop on a real kernel in a throwaway
// namespace, with both firewall backends. After every pass a full read must find nothing left
// to do. Needs root.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { withNetns } from '../../bench/offline/netns.ts';
import type { Command } from '../../src/events/domain/commands.ts';
import { decide } from '../../src/events/domain/decide.ts';
import { evolve } from '../../src/events/domain/evolve.ts';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { emptyState, type State } from '../../src/events/domain/types.ts';
import { createKernel, iptablesFirewall, nftablesFirewall, type Kernel } from '../../src/kernel/index.ts';
import type { FirewallBackend } from '../../src/kernel/types.ts';
import { describeAction } from '../../src/reconciler/actions.ts';
import { desiredFromState } from '../../src/reconciler/desired.ts';
import { Reconciler, type PassResult } from '../../src/reconciler/loop.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { EP_1, EP_2, NET_A, NET_B, endpointSpec, networkSpec, stamp } from '../helpers/events.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

const NET_C = 'c'.repeat(64);
const NET_D = 'd'.repeat(64);
const EP_3 = 'e3'.repeat(4) + '4'.repeat(56);
const EP_4 = 'f4'.repeat(32);
const tcp = (hostPort: number, port: number) => ({ proto: 6, port, hostIp: '', hostPort, hostPortEnd: hostPort });

/** One intent per pass, as Docker sends them. */
const LIFE: readonly Command[] = [
  { type: 'CreateNetwork', spec: { ...networkSpec(NET_A), options: { 'ledgernet.icc': 'false' } } },
  { type: 'CreateNetwork', spec: { ...networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24'), ipv6: true, ipv6Data: [{ pool: 'fd00:231:8::/64', gateway: 'fd00:231:8::1/64', aux: {} }] } },
  { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) },
  { type: 'Join', networkId: NET_A, endpointId: EP_1, sandboxKey: '/var/run/docker/netns/1' },
  { type: 'ProgramExternal', networkId: NET_A, endpointId: EP_1, portmap: [tcp(18080, 80)] },
  { type: 'CreateEndpoint', spec: { ...endpointSpec(NET_B, EP_2, '10.231.8.2/24'), addressV6: 'fd00:231:8::2/64' } },
  { type: 'ProgramExternal', networkId: NET_B, endpointId: EP_2, portmap: [tcp(18081, 81)] },
  { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_3, '10.231.7.3/24') },
  { type: 'CreateNetwork', spec: { ...networkSpec(NET_C, '10.231.9.0/24', '10.231.9.1/24'), options: { 'ledgernet.ingress_rate': '10mbit', 'ledgernet.egress_rate': '20mbit' } } },
  { type: 'CreateEndpoint', spec: endpointSpec(NET_C, EP_4, '10.231.9.2/24') },
  {
    type: 'CreateNetwork',
    spec: { ...networkSpec(NET_D, '10.231.10.0/24', '10.231.10.1/24'), options: { 'com.docker.network.bridge.gateway_mode_ipv4': 'routed', 'ledgernet.egress_deny': '10.0.0.0/8' } },
  },
  { type: 'RevokeExternal', networkId: NET_A, endpointId: EP_1 },
  { type: 'DeleteEndpoint', networkId: NET_C, endpointId: EP_4 },
  { type: 'DeleteNetwork', networkId: NET_C },
  { type: 'Leave', networkId: NET_A, endpointId: EP_1 },
  { type: 'DeleteEndpoint', networkId: NET_A, endpointId: EP_1 },
  { type: 'DeleteEndpoint', networkId: NET_A, endpointId: EP_3 },
  { type: 'DeleteEndpoint', networkId: NET_B, endpointId: EP_2 },
  { type: 'DeleteNetwork', networkId: NET_D },
  { type: 'DeleteNetwork', networkId: NET_B },
  { type: 'DeleteNetwork', networkId: NET_A },
];

const silent = { info() {}, warn() {}, error() {}, debug() {} };

describe('scoped passes against the model converge a real kernel', { skip }, () => {
  for (const fw of [iptablesFirewall, nftablesFirewall] as FirewallBackend[]) {
    it(`each intent's pass plans its networks only, and a full read then finds nothing to do (${fw.name})`, async () => {
      await withNetns('lnscoped', (netns) => life(createKernel({ netns, filterPrefixes: [VETH_PREFIX] }), fw));
    });
  }
});

async function life(kernel: Kernel, fw: FirewallBackend): Promise<void> {
  let state: State = emptyState;
  const passes: PassResult[] = [];
  const r = new Reconciler({ kernel, firewall: fw, getState: () => state, log: silent, onLost: async () => undefined, onPass: (p) => passes.push(p), intervalMs: 0 });
  try {
    await r.requestPass('startup');
    for (const [i, cmd] of LIFE.entries()) {
      state = stamp(decide(cmd, state), state).reduce(evolve, state);
      const p = await r.requestPass(`NetworkDriver.${cmd.type}`);
      assert.deepEqual(p.failures.map((f) => `${describeAction(f.action)}: ${f.message}`), [], `step ${i} (${cmd.type})`);
      assert.equal(p.scoped, true, `step ${i} (${cmd.type}) was planned for its networks only`);
      const left = plan(desiredFromState(state), await kernel.observe(), fw).map(describeAction);
      assert.deepEqual(left, [], `step ${i} (${cmd.type}): a full read finds nothing left to do`);
    }
    assert.deepEqual(r.reads, { full: 1, model: LIFE.length });
    assert.ok(passes.some((p) => p.applied.some((a) => a.kind === 'link.delete')), 'the life went down again');
  } finally {
    await r.stop();
  }
}
