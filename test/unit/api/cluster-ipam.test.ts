// RequestAddress of a cluster pool as the api runs it (src/api/ipam.ts, src/api/cluster.ts), over
// an in-memory log and a fake cluster whose KV bucket is a map of block → host: a container's
// static address (`docker run --ip`) is taken only in a block this host holds, claiming the block
// that holds it first; the gateway and aux addresses Docker asks for while it creates the network
// on each host are not held to that.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_POOLS, EMPTY_HOST, requestAddress, type IpamDeps } from '../../../src/api/ipam.ts';
import { DriverError } from '../../../src/errors.ts';
import { byDocker } from '../../../src/events/domain/cause.ts';
import type { ClusterNetwork, ClusterPort, StaticAddress } from '../../../src/events/domain/cluster.ts';
import type { Command } from '../../../src/events/domain/commands.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { fold } from '../../../src/events/domain/evolve.ts';
import { lookup, type State, type StoredEvent } from '../../../src/events/domain/types.ts';
import { given, NET_A, networkSpec, stamp } from '../../helpers/events.ts';

const POOL = 'ledgernet/10.240.0.0/24';
const DEFAULTS = { range: '10.231.0.0/16', size: 24 };
const pool: Command = {
  type: 'RequestPool',
  request: { pool: '10.240.0.0/24', subPool: null, v6: false, defaults: DEFAULTS, occupied: [], cluster: { name: 'blue', vni: 5000, blockLen: 26 } },
};
const network: Command = { type: 'CreateNetwork', spec: { ...networkSpec(NET_A, '10.240.0.0/24', '10.240.0.1/24'), options: { 'ledgernet.cluster': 'blue' } } };
const claim = (block: string): Command => ({ type: 'ClaimBlock', poolId: POOL, block });
const peerEndpoint = (address: string): Command => ({
  type: 'PeerChange',
  self: 'hA',
  change: { op: 'endpoint', cluster: 'blue', host: 'hB', endpointId: 'e1', endpoint: { host: 'hB', vtep: '192.0.2.2', endpointId: 'e1', address, mac: '02:42:0a:f0:00:42' } },
});

/** A store over a log in memory: decides and folds as the real one does. */
function memStore(...cmds: Command[]): IpamDeps['store'] & { readonly commands: Command[] } {
  let state: State = given(...cmds);
  const commands: Command[] = [];
  return {
    commands,
    get state() {
      return state;
    },
    async execute(cmd: Command): Promise<StoredEvent[]> {
      commands.push(cmd);
      const events = stamp(decide(cmd, state), state);
      state = fold(state, events);
      return events;
    },
  };
}

/** The cluster as this host hA sees it: `blocks` is the KV bucket's block keys (block → host). */
function fakeCluster(blocks: Map<string, string>): ClusterPort & { readonly asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    joinNetwork: () => Promise.reject(new Error('not in these tests')),
    claimBlock: () => Promise.reject(new Error('not in these tests')),
    claimBlockOf: async (net: ClusterNetwork, block: string, of: StaticAddress) => {
      asked.push(`${net.name} ${block} ${of.address} [${of.owned.join(' ')}]`);
      const holder = blocks.get(block) ?? 'hA';
      if (holder !== 'hA') throw new DriverError('LN_ERR_IPAM_ADDRESS', `address ${of.address} of cluster network ${net.name} lies in address block ${block}, which host ${holder} holds`);
      blocks.set(block, 'hA');
    },
  };
}

const deps = (store: IpamDeps['store'], cluster?: ClusterPort): IpamDeps => ({ store, host: EMPTY_HOST, defaultPools: DEFAULT_POOLS, cluster });
const body = (address: string, gateway = false) => ({ PoolID: POOL, Address: address, Options: gateway ? { RequestAddressType: 'com.docker.network.gateway' } : null });
const M = 'IpamDriver.RequestAddress';

async function refusedWith(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof DriverError && e.code === code && re.test(e.message));
}

describe('RequestAddress: a static address of a cluster pool', () => {
  it('in a block no host holds: that block is claimed in the bucket and recorded, then the address is taken', async () => {
    const store = memStore(pool, claim('10.240.0.0/26'), network);
    const cluster = fakeCluster(new Map([['10.240.0.0/26', 'hA']]));
    assert.deepEqual(await requestAddress(deps(store, cluster), body('10.240.0.70'), M), { Address: '10.240.0.70/24', Data: {} });
    assert.deepEqual(cluster.asked, ['blue 10.240.0.64/26 10.240.0.70 [10.240.0.0/26]']);
    assert.deepEqual(store.commands.map((c) => c.type), ['ClaimBlock', 'RequestAddress']);
    assert.deepEqual(lookup(store.state.pools, POOL)?.blocks, ['10.240.0.0/26', '10.240.0.64/26']);
    // A second address of that block: nothing more to claim.
    await requestAddress(deps(store, cluster), body('10.240.0.71'), M);
    assert.equal(cluster.asked.length, 1);
  });

  it("in another host's block: refused as the bucket says, nothing recorded", async () => {
    const store = memStore(pool, claim('10.240.0.0/26'), network);
    const cluster = fakeCluster(new Map([['10.240.0.64/26', 'hB']]));
    await refusedWith(requestAddress(deps(store, cluster), body('10.240.0.70'), M), 'LN_ERR_IPAM_ADDRESS', /block 10\.240\.0\.64\/26, which host hB holds/);
    assert.deepEqual(store.commands, []);
  });

  it("held by another host's container: refused naming that host, and no block is claimed for it", async () => {
    const store = memStore(pool, claim('10.240.0.0/26'), network, peerEndpoint('10.240.0.130'));
    const cluster = fakeCluster(new Map());
    await refusedWith(requestAddress(deps(store, cluster), body('10.240.0.130'), M), 'LN_ERR_IPAM_ADDRESS', /10\.240\.0\.130 in pool 10\.240\.0\.0\/24 \(cluster network blue\) is already in use by a container on host hB; pick another/);
    assert.deepEqual([cluster.asked, store.commands], [[], []]);
  });

  it('without the cluster (serve without --nats): outside this host\'s blocks it is refused as unavailable; inside them it is taken', async () => {
    const store = memStore(pool, claim('10.240.0.0/26'), network);
    await refusedWith(
      requestAddress(deps(store), body('10.240.0.70'), M),
      'LN_ERR_CLUSTER_UNAVAILABLE',
      /cluster network blue: this ledgernet runs without --nats; address block 10\.240\.0\.64\/26 \(of address 10\.240\.0\.70\) cannot be claimed/,
    );
    assert.deepEqual(store.commands, []);
    assert.deepEqual(await requestAddress(deps(store), body('10.240.0.10'), M), { Address: '10.240.0.10/24', Data: {} });
  });

  it('the gateway and aux addresses while Docker creates the network: no block claimed, taken on every host', async () => {
    // Host hB's blocks hold both addresses; this host has no block yet (as on a second host creating the network).
    const store = memStore(pool);
    const cluster = fakeCluster(new Map([['10.240.0.0/26', 'hB'], ['10.240.0.192/26', 'hB']]));
    assert.deepEqual(await requestAddress(deps(store, cluster), body('', true), M), { Address: '10.240.0.1/24', Data: {} });
    assert.deepEqual(await requestAddress(deps(store, cluster), body('10.240.0.200'), M), { Address: '10.240.0.200/24', Data: {} });
    assert.deepEqual(cluster.asked, []);
    // Once the network uses the pool, the same kind of request is a container's: its block is claimed (and here refused).
    await store.execute(network, byDocker('NetworkDriver.CreateNetwork'));
    await refusedWith(requestAddress(deps(store, cluster), body('10.240.0.201'), M), 'LN_ERR_IPAM_ADDRESS', /which host hB holds/);
  });
});
