// The cluster's metrics, read from the heartbeat at scrape time: the gauges follow it (zero
// without the cluster, or before this host joined), the counters move on by what happened since
// the last scrape and never go back.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HeartbeatStats } from '../../../src/events/index.ts';
import { Metrics } from '../../../src/operator/metrics.ts';

async function value(m: Metrics, name: string): Promise<number> {
  const metric = m.registry.getSingleMetric(name);
  assert.ok(metric, name);
  return (await metric.get()).values[0]?.value ?? 0;
}

const NAMES = ['ledgernet_cluster_in_touch', 'ledgernet_cluster_hosts_heard', 'ledgernet_cluster_heartbeat_failures_total', 'ledgernet_cluster_hosts_expired_total', 'ledgernet_cluster_networks_retired_total', 'ledgernet_cluster_conflicts', 'ledgernet_cluster_keys_repaired_total'];
const all = async (m: Metrics) => Promise.all(NAMES.map((n) => value(m, n)));

describe('ledgernet_cluster_* metrics', () => {
  it('follow the heartbeat; zero without the cluster', async () => {
    const m = new Metrics();
    m.refreshCluster();
    assert.deepEqual(await all(m), [0, 0, 0, 0, 0, 0, 0], 'serve without --nats');
    let stats: HeartbeatStats | null = null;
    m.clusterSource = () => stats;
    m.refreshCluster();
    assert.deepEqual(await all(m), [0, 0, 0, 0, 0, 0, 0], 'not joined yet');
    stats = { inTouch: true, hostsHeard: 2, failures: 3, expired: 1, retired: 0, repaired: 1, conflicts: [] };
    m.refreshCluster();
    assert.deepEqual(await all(m), [1, 2, 3, 1, 0, 0, 1]);
    stats = { inTouch: false, hostsHeard: 1, failures: 5, expired: 1, retired: 2, repaired: 2, conflicts: ['cluster network sage: …'] };
    m.refreshCluster();
    m.refreshCluster();
    assert.deepEqual(await all(m), [0, 1, 5, 1, 2, 1, 2], 'counters moved on by the difference, once');
  });
});
