// Drift is the kernel differing from what ledgernet last left there (reconciler/drift.ts), not
// from what it wants now. Through the real reconcile loop over real `ip` and `iptables` in a
// namespace made (and deleted) by this test: networks created one after the other
// (LEDGERNET-FORWARD and the other shared chains rewritten each time), a port published and
// revoked (route_localnet, the network's POSTROUTING chain, LEDGERNET-DNAT), Docker's
// custom-named bridge coming and going, some of it applied by passes that read the kernel: no
// drift counted, nothing at warn. A rule deleted and route_localnet set by hand are drift,
// counted and at warn. Needs root.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import type { Command } from '../../src/events/domain/commands.ts';
import { decide } from '../../src/events/domain/decide.ts';
import { fold } from '../../src/events/domain/evolve.ts';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { emptyState, type State } from '../../src/events/domain/types.ts';
import { createKernel } from '../../src/kernel/index.ts';
import { describeAction } from '../../src/reconciler/actions.ts';
import { Reconciler } from '../../src/reconciler/loop.ts';
import { Metrics } from '../../src/operator/metrics.ts';
import { EP_1, NET_A, NET_B, endpointSpec, networkSpec, stamp } from '../helpers/events.ts';
import { throwawayNetns } from '../helpers/netns.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';
const NET_C = 'c'.repeat(8) + '4'.repeat(56);
const then = (s: State, c: Command): State => fold(s, stamp(decide(c, s), s));

describe('drift through the real loop: what ledgernet wants changing is not drift, a hand edit is', { skip }, () => {
  const netns = throwawayNetns('lndrift');
  const inNs = (...args: string[]) => execa('ip', ['netns', 'exec', netns, ...args]);

  it('three networks and a published port: no drift; a rule deleted and route_localnet set by hand: drift', async () => {
    const metrics = new Metrics();
    const warned: string[] = [];
    const log = { info() {}, warn: (fields: unknown, msg?: string) => void warned.push(`${msg ?? ''} ${JSON.stringify(fields)}`), error() {}, debug() {} };
    let state = emptyState;
    const kernel = createKernel({ netns, filterPrefixes: [VETH_PREFIX] });
    const r = new Reconciler({ kernel, getState: () => state, log, onLost: async () => undefined, onPass: (p) => metrics.onPass(p), intervalMs: 0 });
    const drift = async () => {
      const metric = await metrics.registry.getSingleMetric('ledgernet_drift_repaired_total')!.get();
      return Object.fromEntries(metric.values.filter((v) => v.value > 0).map((v) => [String(v.labels['kind']), v.value]));
    };
    const pass = async (trigger: string) => {
      const p = await r.requestPass(trigger);
      assert.deepEqual(p.failures, []);
      return p.applied.map(describeAction);
    };
    try {
      assert.deepEqual(await pass('startup'), []);
      state = then(state, { type: 'CreateNetwork', spec: networkSpec(NET_A) });
      await pass('NetworkDriver.CreateNetwork');
      state = then(state, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) });
      await pass('NetworkDriver.CreateEndpoint');
      state = then(state, { type: 'CreateNetwork', spec: networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24') });
      const second = await pass('NetworkDriver.CreateNetwork');
      assert.ok(second.some((a) => a.startsWith('chain.write filter/LEDGERNET-FORWARD (drifted')), second.join('\n'));
      // The third through a pass that reads the kernel (docker-sync's): the model the others left is compared with iptables-save.
      state = then(state, { type: 'CreateNetwork', spec: networkSpec(NET_C, '10.231.9.0/24', '10.231.9.1/24') });
      const third = await pass('docker-network');
      assert.ok(third.some((a) => a.startsWith('chain.write filter/LEDGERNET-FORWARD (drifted')), third.join('\n'));
      state = then(state, { type: 'ProgramExternal', networkId: NET_A, endpointId: EP_1, portmap: [{ proto: 6, port: 80, hostIp: '', hostPort: 18093, hostPortEnd: 18093 }] });
      const published = await pass('timer');
      assert.ok(published.some((a) => a.startsWith('bridge.localnet')), published.join('\n'));
      state = then(state, { type: 'RevokeExternal', networkId: NET_A, endpointId: EP_1 });
      await pass('NetworkDriver.RevokeExternalConnectivity');
      state = then(state, { type: 'DeleteNetwork', networkId: NET_B });
      await pass('kernel');
      assert.deepEqual(await pass('timer'), []);
      // Docker's bridge network of a custom name (its isolation chain names it) comes and goes, as in a
      // dockerd restart: ledgernet's isolation of it is written and removed by passes that read the kernel.
      await inNs('iptables', '-N', 'DOCKER-ISOLATION-STAGE-2');
      await inNs('iptables', '-N', 'DOCKER-ISOLATION-STAGE-1');
      await inNs('iptables', '-A', 'DOCKER-ISOLATION-STAGE-1', '-i', 'mybr0', '!', '-o', 'mybr0', '-j', 'DOCKER-ISOLATION-STAGE-2');
      assert.ok((await pass('timer')).some((a) => a.startsWith('chain.write filter/LEDGERNET-FORWARD (drifted')));
      await inNs('iptables', '-F', 'DOCKER-ISOLATION-STAGE-1');
      assert.ok((await pass('kernel')).some((a) => a.startsWith('chain.write filter/LEDGERNET-FORWARD (drifted')));
      assert.deepEqual(warned, []);
      assert.deepEqual(await drift(), {});

      await inNs('iptables', '-D', 'LEDGERNET-FORWARD', '1');
      await inNs('sysctl', '-qw', `net.ipv4.conf.${state.networks[NET_C]!.bridge}.route_localnet=1`);
      const repaired = await pass('timer');
      assert.deepEqual(repaired.map((a) => a.split(' (')[0]), ['bridge.localnet ' + state.networks[NET_C]!.bridge, 'chain.write filter/LEDGERNET-FORWARD']);
      assert.deepEqual(await drift(), { 'bridge.localnet': 1, 'chain.write': 1 });
      assert.equal(warned.length, 1);
      assert.match(warned[0]!, /^reconcile pass repaired drift: /);
    } finally {
      await r.stop();
    }
  });
});
