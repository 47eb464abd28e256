// A network's connected subnet route deleted by hand (`ip route del`) is drift: the full observe
// reads the routes, the plan puts it back (`route.add`), a pass repairs it. Against real `ip` in
// a namespace made (and deleted) by this test, both ways the full observe reads the kernel
// (rtnetlink in this process, and `ip` processes); what the kernel holds is checked with
// `ip -j route` directly. Needs root.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { createKernel, type Kernel } from '../../src/kernel/index.ts';
import { describeAction } from '../../src/reconciler/actions.ts';
import { desiredFromState } from '../../src/reconciler/desired.ts';
import { Reconciler, type PassResult } from '../../src/reconciler/loop.ts';
import { plan } from '../../src/reconciler/plan.ts';
import { Metrics } from '../../src/operator/metrics.ts';
import { NET_A, given, networkSpec } from '../helpers/events.ts';
import { throwawayNetns } from '../helpers/netns.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';
const silent = { info() {}, warn() {}, error() {}, debug() {} };

const STATE = given({
  type: 'CreateNetwork',
  spec: { ...networkSpec(NET_A, '10.231.7.0/24', '10.231.7.1/24'), ipv6: true, ipv6Data: [{ pool: 'fd00:231:7::/64', gateway: 'fd00:231:7::1/64', aux: {} }] },
});
const BRIDGE = STATE.networks[NET_A]?.bridge ?? '';
const FOREIGN = 'br-foreign';

interface IpRoute {
  dst: string;
  dev: string;
  protocol?: string;
  scope?: string;
  prefsrc?: string;
  metric?: number;
}

for (const reads of ['netlink', 'processes'] as const) {
  describe(`a deleted bridge subnet route is drift, repaired by the full pass (reads: ${reads})`, { skip }, () => {
    const netns = throwawayNetns('lnroute');
    const ip = (...args: string[]) => execa('ip', ['-n', netns, ...args]);
    const routes = async (family: 4 | 6, dev: string): Promise<IpRoute[]> =>
      JSON.parse((await ip('-j', `-${family}`, 'route', 'show', 'table', 'main', 'dev', dev)).stdout) as IpRoute[];
    /** A reconciler of STATE over the namespace's kernel (no timer: the test asks for its passes), stopped after `body`. */
    const withReconciler = async (body: (kernel: Kernel, r: Reconciler) => Promise<void>, onPass?: (p: PassResult) => void): Promise<void> => {
      const kernel = createKernel({ netns, filterPrefixes: [VETH_PREFIX], interfaceReads: reads });
      const r = new Reconciler({ kernel, getState: () => STATE, log: silent, onLost: async () => undefined, intervalMs: 0, ...(onPass ? { onPass } : {}) });
      try {
        await body(kernel, r);
      } finally {
        await r.stop();
      }
    };

    it('plans route.add (drifted) for both families, a timer pass restores them as the kernel made them, counted as drift, and the next plan is empty', async () => {
      const metrics = new Metrics();
      await withReconciler(async (kernel, r) => {
        const first = await r.requestPass('startup');
        assert.deepEqual(first.failures, []);
        const made4 = await routes(4, BRIDGE);
        const made6 = (await routes(6, BRIDGE)).filter((x) => x.dst === 'fd00:231:7::/64');
        assert.equal(made4.length, 1);
        assert.equal(made6.length, 1);

        await ip('route', 'del', '10.231.7.0/24', 'dev', BRIDGE);
        await ip('-6', 'route', 'del', 'fd00:231:7::/64', 'dev', BRIDGE);
        assert.deepEqual(await routes(4, BRIDGE), []);

        const planned = plan(desiredFromState(STATE), await kernel.observe()).map(describeAction);
        assert.deepEqual(planned, [`route.add 10.231.7.0/24 dev ${BRIDGE} (drifted: deleted (the kernel makes it only when the address is added or the bridge comes up))`, `route.add fd00:231:7::/64 dev ${BRIDGE} (drifted: deleted (the kernel makes it only when the address is added or the bridge comes up))`]);

        const pass = await r.requestPass('timer');
        assert.deepEqual(pass.failures, []);
        assert.deepEqual(pass.applied.map(describeAction), planned);
        // What the kernel makes for the address itself, field for field.
        assert.deepEqual(await routes(4, BRIDGE), made4);
        assert.deepEqual((await routes(6, BRIDGE)).filter((x) => x.dst === 'fd00:231:7::/64'), made6);
        assert.deepEqual(made4.map((x) => [x.protocol, x.scope, x.prefsrc]), [['kernel', 'link', '10.231.7.1']]);
        assert.deepEqual(made6.map((x) => [x.protocol, x.metric]), [['kernel', 256]]);

        const drift = (await metrics.registry.getSingleMetric('ledgernet_drift_repaired_total')?.get())?.values.find((v) => v.labels.kind === 'route.add');
        assert.equal(drift?.value, 2);
        assert.deepEqual(plan(desiredFromState(STATE), await kernel.observe()), []);
      }, metrics.onPass);
    });

    it('a bridge set down is link drift, not route drift: bringing it up brings its route back', async () => {
      await withReconciler(async (kernel, r) => {
        assert.deepEqual((await r.requestPass('startup')).failures, []);
        await ip('link', 'set', BRIDGE, 'down');
        assert.deepEqual(await routes(4, BRIDGE), []);
        const planned = plan(desiredFromState(STATE), await kernel.observe()).map(describeAction);
        assert.ok(!planned.some((a) => a.startsWith('route.add')), planned.join('\n'));
        assert.ok(planned.some((a) => a.startsWith(`link.set ${BRIDGE}`)), planned.join('\n'));
        assert.deepEqual((await r.requestPass('timer')).failures, []);
        assert.equal((await routes(4, BRIDGE)).length, 1);
        assert.deepEqual(plan(desiredFromState(STATE), await kernel.observe()), []);
      });
    });

    it("never plans or touches the route of someone else's bridge", async () => {
      await ip('link', 'add', FOREIGN, 'type', 'bridge');
      await withReconciler(async (kernel, r) => {
        await ip('link', 'set', FOREIGN, 'up');
        await ip('addr', 'add', '10.231.99.1/24', 'dev', FOREIGN);
        await ip('route', 'del', '10.231.99.0/24', 'dev', FOREIGN);
        const pass = await r.requestPass('timer');
        assert.deepEqual(pass.failures, []);
        assert.ok(!pass.planned.some((a) => describeAction(a).includes(FOREIGN) || describeAction(a).includes('10.231.99.')), pass.planned.map(describeAction).join('\n'));
        assert.deepEqual(await routes(4, FOREIGN), []);
        assert.deepEqual(plan(desiredFromState(STATE), await kernel.observe()), []);
      }).finally(() => ip('link', 'del', FOREIGN));
    });

    it("a route to the subnet moved to another device is a conflict: reported, a pass leaves it and fails nothing; removed, ledgernet's is back", async () => {
      await ip('link', 'add', 'lnr-uplink', 'type', 'bridge');
      await withReconciler(async (kernel, r) => {
        assert.deepEqual((await r.requestPass('startup')).failures, []);
        await ip('link', 'set', 'lnr-uplink', 'up');
        await ip('route', 'replace', '10.231.7.0/24', 'dev', 'lnr-uplink');
        assert.deepEqual(await routes(4, BRIDGE), [], 'replace moved it');
        const planned = plan(desiredFromState(STATE), await kernel.observe());
        assert.deepEqual(planned.map((a) => `${a.kind} ${a.reason}`), ['route.conflict conflict']);
        assert.match(describeAction(planned[0]!), /the route to 10\.231\.7\.0\/24 goes through lnr-uplink, not lnb-[0-9a-f]+: someone else's, left alone; .*\(ip route del 10\.231\.7\.0\/24 dev lnr-uplink\)/);
        const pass = await r.requestPass('timer');
        assert.deepEqual([pass.applied, pass.failures], [[], []]);
        assert.equal((await routes(4, 'lnr-uplink')).length, 1, 'left alone');
        await ip('route', 'del', '10.231.7.0/24', 'dev', 'lnr-uplink');
        assert.deepEqual((await r.requestPass('timer')).applied.map((a) => a.kind), ['route.add']);
        assert.equal((await routes(4, BRIDGE)).length, 1);
        assert.deepEqual(plan(desiredFromState(STATE), await kernel.observe()), []);
      }).finally(() => ip('link', 'del', 'lnr-uplink'));
    });

    it("an operator's blackhole on the subnet is a conflict, not a deleted route: reported, a pass leaves it; removed, ledgernet's is back", async () => {
      await withReconciler(async (kernel, r) => {
        assert.deepEqual((await r.requestPass('startup')).failures, []);
        await ip('route', 'replace', 'blackhole', '10.231.7.0/24');
        assert.deepEqual(await routes(4, BRIDGE), [], 'replace took its place');
        const planned = plan(desiredFromState(STATE), await kernel.observe());
        assert.deepEqual(planned.map((a) => `${a.kind} ${a.reason}`), ['route.conflict conflict']);
        assert.match(describeAction(planned[0]!), /the route to 10\.231\.7\.0\/24 goes through no device \(blackhole, unreachable or prohibit\), not lnb-[0-9a-f]+: .*\(ip route del 10\.231\.7\.0\/24\)/);
        const pass = await r.requestPass('timer');
        assert.deepEqual([pass.applied, pass.failures], [[], []]);
        assert.match((await ip('route', 'show', '10.231.7.0/24')).stdout, /^blackhole 10\.231\.7\.0\/24/, 'left alone');
        await ip('route', 'del', 'blackhole', '10.231.7.0/24');
        assert.deepEqual((await r.requestPass('timer')).applied.map((a) => a.kind), ['route.add']);
        assert.equal((await routes(4, BRIDGE)).length, 1);
        assert.deepEqual(plan(desiredFromState(STATE), await kernel.observe()), []);
      });
    });
  });
}
