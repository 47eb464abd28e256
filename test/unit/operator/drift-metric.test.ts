// ledgernet_drift_repaired_total counts ledgernet's own objects that differed from the desired
// state and were set right, not Docker's own changes: Docker inserting its rules above ledgernet's
// FORWARD hook (the hook is moved back), a container Docker removed, links of a network Docker
// removed (orphans). The actions are the shapes the planner makes for those cases.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Action } from '../../../src/reconciler/actions.ts';
import type { PassResult } from '../../../src/reconciler/loop.ts';
import { Metrics } from '../../../src/operator/metrics.ts';

const SHARED = { networkId: null, endpointId: null };
const NET = { networkId: 'n1', endpointId: null };
const HOOK = '-m comment --comment ledgernet:hook -j LEDGERNET-FORWARD';

const pass = (trigger: string, applied: Action[]): PassResult => ({ trigger, planned: applied, applied, failures: [], lost: [], durationMs: 1, seq: 1 });

async function drift(m: Metrics): Promise<Record<string, number>> {
  const metric = await m.registry.getSingleMetric('ledgernet_drift_repaired_total')!.get();
  return Object.fromEntries(metric.values.filter((v) => v.value > 0).map((v) => [String(v.labels['kind']), v.value]));
}

describe('ledgernet_drift_repaired_total', () => {
  it('Docker put its rules above the hook: the hook moved back is not drift', async () => {
    const m = new Metrics();
    m.onPass(
      pass('timer', [
        { kind: 'hook.delete', table: 'filter', from: 'FORWARD', rule: HOOK, owner: SHARED, reason: 'drifted', detail: 'not right after DOCKER-USER' },
        { kind: 'hook.add', table: 'filter', from: 'FORWARD', rule: HOOK, position: 2, owner: SHARED, reason: 'missing' },
      ] as Action[]),
    );
    assert.deepEqual(await drift(m), {});
  });

  it('links of a network Docker removed (orphans) and a container Docker removed are not drift', async () => {
    const m = new Metrics();
    m.onPass(
      pass('timer', [
        { kind: 'link.delete', name: 'lnb-aaaa', owner: NET, reason: 'orphan' },
        { kind: 'endpoint.lost', name: 'lnv-bbbb', owner: { networkId: 'n1', endpointId: 'e1' }, reason: 'vanished' },
      ] as Action[]),
    );
    assert.deepEqual(await drift(m), {});
  });

  it('ledgernet objects changed or removed by hand are drift; what Docker asked for is not', async () => {
    const m = new Metrics();
    m.onPass(pass('kernel', [{ kind: 'hook.add', table: 'filter', from: 'FORWARD', rule: HOOK, position: 2, owner: SHARED, reason: 'missing' }] as Action[]));
    m.onPass(pass('timer', [{ kind: 'link.set', name: 'lnb-aaaa', mtu: 1500, owner: NET, reason: 'drifted', detail: 'mtu 1500 expected, 1400 found' }] as unknown as Action[]));
    m.onPass(pass('NetworkDriver.CreateNetwork', [{ kind: 'bridge.create', name: 'lnb-cccc', owner: NET, reason: 'missing' }] as unknown as Action[]));
    assert.deepEqual(await drift(m), { 'hook.add': 1, 'link.set': 1 });
  });
});
