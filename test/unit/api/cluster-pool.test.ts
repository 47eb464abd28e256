// RequestPool of a cluster network (`--ipam-opt ledgernet.cluster=NAME`) over a real log and
// store; the cluster's KV bucket is a stub that keeps one network per name and refuses another
// subnet or size as src/events/cluster/networks.ts does (test/integration/cluster-kv.test.ts runs
// the real one on a nats-server).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { requestClusterPool } from '../../../src/api/cluster.ts';
import { DriverError } from '../../../src/errors.ts';
import type { ClusterNetwork, ClusterPort, JoinRequest } from '../../../src/events/domain/cluster.ts';
import { fold } from '../../../src/events/domain/evolve.ts';
import { emptyState } from '../../../src/events/domain/types.ts';
import { EventLog } from '../../../src/events/log/log.ts';
import { EventStore } from '../../../src/events/log/store.ts';

let dirs: string[];
let joins: JoinRequest[];
const networks = new Map<string, ClusterNetwork>();

const cluster: ClusterPort = {
  async joinNetwork(req) {
    joins.push(req);
    const had = networks.get(req.name);
    if (had) {
      if ((req.subnet !== null && req.subnet !== had.subnet) || (req.size !== undefined && !had.subnet.endsWith(`/${req.size}`))) {
        throw new DriverError('LN_ERR_CLUSTER_SUBNET', `cluster network ${req.name} already has subnet ${had.subnet}`);
      }
      return had;
    }
    const net = { name: req.name, subnet: req.subnet ?? req.propose([]), vni: 4242, blockLen: 28, createdBy: 'h1' };
    networks.set(req.name, net);
    return net;
  },
  claimBlock: async () => {
    throw new Error('no block is claimed in these tests');
  },
  claimBlockOf: async () => undefined,
};

/** A host of the cluster: its own log and store; its host's addresses take 10.231.0.0/24. */
async function host() {
  const dir = await mkdtemp(join(tmpdir(), 'ln-cluster-pool-'));
  dirs.push(dir);
  const { events, log } = await EventLog.open(dir, { host: `h${dirs.length}` });
  const store = new EventStore(log, fold(emptyState, events));
  const deps = { store, cluster, defaultPool: { range: '10.231.0.0/16', size: 24 }, occupied: async () => ['10.231.0.1/24'] };
  return {
    store,
    ask: (name: string, pool: string, v6 = false) => requestClusterPool(deps, { name, pool, subPool: '', v6 }, 'IpamDriver.RequestPool'),
    pools: () => Object.values(store.state.pools).map((p) => p.pool),
  };
}

beforeEach(() => {
  dirs = [];
  joins = [];
  networks.clear();
});
afterEach(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('a cluster network asked for by its size only (Docker 29: --subnet 0.0.0.0/26)', () => {
  it('gets a subnet of that size from the default pool, around the host\'s prefixes; another host asking the same size joins it, another size is refused', async () => {
    const [h1, h2, h3] = [await host(), await host(), await host()];
    await h1.ask('blue', '0.0.0.0/26');
    assert.deepEqual(h1.pools(), ['10.231.1.0/26']);
    assert.deepEqual([joins[0]?.subnet, joins[0]?.size], [null, 26]);
    await h2.ask('blue', '0.0.0.0/26');
    assert.deepEqual(h2.pools(), ['10.231.1.0/26']);
    await assert.rejects(h3.ask('blue', '0.0.0.0/24'), /cluster network blue already has subnet 10\.231\.1\.0\/26/);
    assert.deepEqual(h3.pools(), []);
    for (const h of [h1, h2, h3]) await h.store.close();
  });

  it('a size outside the default pool is refused naming it; an IPv6 size is not an IPv4 subnet', async () => {
    const h = await host();
    await assert.rejects(h.ask('green', '0.0.0.0/12'), /--subnet 0\.0\.0\.0\/12 asks for an automatic \/12, which does not fit in the default IPv4 pool 10\.231\.0\.0\/16/);
    await assert.rejects(h.ask('green', '::/56'), /--subnet ::\/56 is not an IPv4 CIDR/);
    assert.deepEqual(h.pools(), []);
    await h.store.close();
  });

  it('0.0.0.0/0, and any subnet the log would refuse as taking the host\'s traffic, is refused before the cluster holds it', async () => {
    const h = await host();
    for (const pool of ['0.0.0.0/0', '127.0.0.0/16', '169.254.0.0/16', '10.0.0.0/7']) {
      await assert.rejects(h.ask('red', pool), (e: unknown) => e instanceof DriverError && e.code === 'LN_ERR_INVALID_OPTION' && e.message.includes(`--subnet ${pool} is refused`), pool);
    }
    assert.equal(joins.length, 0, 'the cluster was never asked');
    assert.deepEqual(h.pools(), []);
    await h.store.close();
  });
});
