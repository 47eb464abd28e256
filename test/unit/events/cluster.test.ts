// Cluster networks, the pure part: VNIs, blocks, allocation from a host's own blocks, the check
// that ties a network to its cluster pool, and the option.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DriverError } from '../../../src/errors.ts';
import { hostKey, hostOfKey } from '../../../src/events/cluster/host-keys.ts';
import { blockAt, blockCount, blockIndex, blockLenFor, clusterCommand, clusterGateway, firstVni, nextVni, pickFromBlocks } from '../../../src/events/domain/cluster.ts';
import type { Command } from '../../../src/events/domain/commands.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { checkNetworkOptions } from '../../../src/events/domain/options.ts';
import { lookup } from '../../../src/events/domain/types.ts';
import { given, NET_A, networkSpec } from '../../helpers/events.ts';

const DEFAULTS = { range: '10.231.0.0/16', size: 24 };
const POOL = 'ledgernet/10.240.0.0/24';
const clusterPool: Command = {
  type: 'RequestPool',
  request: { pool: '10.240.0.0/24', subPool: null, v6: false, defaults: DEFAULTS, occupied: [], cluster: { name: 'blue', vni: 5000, blockLen: 26 } },
};
const addr = (gateway = false, address: string | null = null): Command => ({ type: 'RequestAddress', poolId: POOL, address, gateway, name: null });
const claim = (block: string): Command => ({ type: 'ClaimBlock', poolId: POOL, block });

function refused(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof DriverError && re.test(e.message));
}

describe('cluster: VNIs and blocks', () => {
  it('a name always tries the same VNI first, inside 4096 … 2^24-1; the next one wraps', () => {
    assert.equal(firstVni('blue'), firstVni('blue'));
    assert.notEqual(firstVni('blue'), firstVni('green'));
    for (const n of ['a', 'blue', 'x'.repeat(63)]) assert.ok(firstVni(n) >= 4096 && firstVni(n) < 2 ** 24);
    assert.equal(nextVni(2 ** 24 - 1), 4096);
  });

  it('blocks are /26, or a quarter of a smaller subnet', () => {
    assert.equal(blockLenFor('10.240.0.0/16'), 26);
    assert.equal(blockCount('10.240.0.0/16', 26), 1024);
    assert.equal(blockLenFor('10.240.0.0/28'), 30);
    assert.equal(blockAt('10.240.0.0/16', 26, 5), '10.240.1.64/26');
    assert.equal(clusterGateway('10.240.0.0/16'), '10.240.0.1');
  });
});

describe('cluster: addresses from the host\'s own blocks', () => {
  it('no block: dynamic addresses are refused; the gateway is the first address on every host', () => {
    const s = given(clusterPool, addr(true));
    assert.equal(Object.keys(lookup(s.pools, POOL)!.allocated)[0], '10.240.0.1');
    assert.equal(pickFromBlocks(lookup(s.pools, POOL)!), null);
    refused(() => decide(addr(), s), /blocks this host claimed in 10\.240\.0\.0\/24 are full/);
  });

  it('addresses come from the claimed blocks in order, skipping the gateway and network address', () => {
    let s = given(clusterPool, addr(true), claim('10.240.0.192/26'), claim('10.240.0.0/26'));
    assert.deepEqual(lookup(s.pools, POOL)!.blocks, ['10.240.0.192/26', '10.240.0.0/26']);
    const got: string[] = [];
    for (let i = 0; i < 64; i++) {
      const [ev] = decide(addr(), s);
      assert.ok(ev?.type === 'address.requested');
      got.push(ev.data.address);
      s = given(clusterPool, addr(true), claim('10.240.0.192/26'), claim('10.240.0.0/26'), ...got.map((a) => addr(false, a)));
    }
    assert.equal(got[0], '10.240.0.192');
    assert.equal(got[63], '10.240.0.2', 'the second block once the first is full (its .255 is the broadcast); .0 and the gateway .1 skipped');
    assert.ok(!got.includes('10.240.0.255'), 'the broadcast address is never handed out');
  });

  it('a block claimed twice is recorded once; ClaimBlock on a pool that is not a cluster pool is refused', () => {
    const s = given(clusterPool, claim('10.240.0.0/26'));
    assert.deepEqual(decide(claim('10.240.0.0/26'), s), []);
    const plain = given({ type: 'RequestPool', request: { pool: '10.241.0.0/24', subPool: null, v6: false, defaults: DEFAULTS, occupied: [] } });
    refused(() => decide({ type: 'ClaimBlock', poolId: 'ledgernet/10.241.0.0/24', block: '10.241.0.0/26' }, plain), /not a cluster pool/);
  });
});

describe("cluster: a container's static address (docker run --ip)", () => {
  // The cluster network on this host, on its pool: from then on, a static address is a container's.
  const network: Command = {
    type: 'CreateNetwork',
    spec: { ...networkSpec(NET_A, '10.240.0.0/24', '10.240.0.1/24'), options: { 'ledgernet.cluster': 'blue' } },
  };
  const peerEndpoint = (address: string, endpointId = 'e1'): Command => ({
    type: 'PeerChange',
    self: 'hA',
    change: { op: 'endpoint', cluster: 'blue', host: 'hB', endpointId, endpoint: { host: 'hB', vtep: '192.0.2.2', endpointId, address, mac: '02:42:0a:f0:00:42' } },
  });
  // The gateway and an aux address (while Docker creates the network), this host's block 10.240.0.0/26, then the network.
  const created = [clusterPool, addr(true), addr(false, '10.240.0.200'), claim('10.240.0.0/26'), network];
  const address = (events: readonly { type: string; data: unknown }[]) => (events[0]?.type === 'address.requested' ? (events[0].data as { address: string }).address : null);

  it("another host's container at the address: refused naming the address, the pool and that host", () => {
    const s = given(...created, peerEndpoint('10.240.0.66'));
    refused(() => decide(addr(false, '10.240.0.66'), s), /^address 10\.240\.0\.66 in pool 10\.240\.0\.0\/24 \(cluster network blue\) is already in use by a container on host hB; pick another$/);
    // Also inside this host's own block (the peers say so, whatever the blocks say).
    const own = given(...created, peerEndpoint('10.240.0.5', 'e2'));
    refused(() => decide(addr(false, '10.240.0.5'), own), /10\.240\.0\.5 .* in use by a container on host hB/);
  });

  it("an address outside this host's blocks is refused naming its block and this host's; inside them it is taken", () => {
    const s = given(...created);
    refused(
      () => decide(addr(false, '10.240.0.130'), s),
      /address 10\.240\.0\.130 in pool 10\.240\.0\.0\/24 \(cluster network blue\) lies in address block 10\.240\.0\.128\/26, which this host does not hold \(its blocks: 10\.240\.0\.0\/26\).*leave out --ip/,
    );
    assert.equal(address(decide(addr(false, '10.240.0.10'), s)), '10.240.0.10');
    // Once the block is claimed (api/cluster.ts ensureBlockOf records it), the address is taken.
    assert.equal(address(decide(addr(false, '10.240.0.130'), given(...created, claim('10.240.0.128/26')))), '10.240.0.130');
    // No block at all yet.
    refused(() => decide(addr(false, '10.240.0.10'), given(clusterPool, addr(true), network)), /its blocks: none yet/);
  });

  it('the gateway and aux addresses, asked for on every host while the network is created, are not held to the blocks or peers', () => {
    // No block, and another host has a container at the aux address already: Docker creating the network on this host must work.
    const before = given(clusterPool, peerEndpoint('10.240.0.200'));
    const gw = decide(addr(true), before);
    assert.equal(address(gw), '10.240.0.1');
    assert.equal(address(decide(addr(false, '10.240.0.200'), given(clusterPool, peerEndpoint('10.240.0.200'), addr(true)))), '10.240.0.200');
    // A gateway request is exempt also once a network uses the pool; a static address no longer is.
    const used = given(clusterPool, peerEndpoint('10.240.0.200'), network);
    assert.equal(address(decide(addr(true), used)), '10.240.0.1');
    refused(() => decide(addr(false, '10.240.0.200'), used), /in use by a container on host hB/);
    refused(() => decide(addr(false, '10.240.0.201'), used), /lies in address block 10\.240\.0\.192\/26, which this host does not hold/);
    // A network on a plain pool: no cluster rules.
    const plain = given(
      { type: 'RequestPool', request: { pool: '10.241.0.0/24', subPool: null, v6: false, defaults: DEFAULTS, occupied: [] } },
      { type: 'CreateNetwork', spec: networkSpec(NET_A, '10.241.0.0/24', '10.241.0.1/24') },
    );
    assert.equal(address(decide({ type: 'RequestAddress', poolId: 'ledgernet/10.241.0.0/24', address: '10.241.0.130', gateway: false, name: null }, plain)), '10.241.0.130');
  });
});

describe('cluster: the network and its pool', () => {
  const spec = (cluster: string, subnet = '10.240.0.0/24') => ({
    ...networkSpec(NET_A, subnet, `${clusterGateway(subnet)}/24`),
    options: { 'ledgernet.cluster': cluster },
  });

  it('ledgernet.cluster is checked like every option', () => {
    assert.doesNotThrow(() => checkNetworkOptions({ 'ledgernet.cluster': 'blue' }));
    assert.throws(() => checkNetworkOptions({ 'ledgernet.cluster': 'bl ue' }), /option ledgernet\.cluster=bl ue is invalid: expected a cluster network name/);
  });

  it('a cluster network on its cluster pool is created', () => {
    const s = given(clusterPool);
    assert.equal(decide({ type: 'CreateNetwork', spec: spec('blue') }, s)[0]?.type, 'network.created');
  });

  it('without ledgernet IPAM (or another cluster\'s pool) it is refused, showing the right command', () => {
    const right = clusterCommand('blue').replace(/[[\].]/g, '\\$&');
    refused(() => decide({ type: 'CreateNetwork', spec: spec('blue', '10.250.0.0/24') }, given()), new RegExp(`needs ledgernet IPAM .*: ${right}$`));
    refused(() => decide({ type: 'CreateNetwork', spec: spec('green') }, given(clusterPool)), /its pool belongs to cluster network blue/);
  });
});

describe('host names in KV keys', () => {
  it('one token each, one-to-one; names that were tokens already stay as they were', () => {
    const names = ['h1', 'web_1', 'web-1', 'node1.example.com', 'web.1', 'web=2e1', 'a/b', 'hôte', ''];
    const tokens = names.map(hostKey);
    assert.deepEqual(tokens.slice(0, 3), ['h1', 'web_1', 'web-1']);
    assert.equal(hostKey('node1.example.com'), 'node1=2eexample=2ecom');
    for (const t of tokens) assert.match(t, /^[A-Za-z0-9_=-]*$/, t);
    assert.equal(new Set(tokens).size, names.length, tokens.join(' '));
    assert.deepEqual(tokens.map(hostOfKey), names);
  });
});

describe('blockIndex', () => {
  it('undoes blockAt; null for what is not a block of the subnet', () => {
    for (const [subnet, len] of [['10.240.0.0/16', 26], ['10.240.7.0/24', 26], ['10.240.7.0/28', 30]] as const) {
      for (let i = 0; i < Math.min(blockCount(subnet, len), 40); i++) assert.equal(blockIndex(subnet, len, blockAt(subnet, len, i)), i);
    }
    assert.equal(blockIndex('10.240.7.0/24', 26, '10.240.8.0/26'), null, 'outside the subnet');
    assert.equal(blockIndex('10.240.7.0/24', 26, '10.240.7.0/25'), null, 'another size');
    assert.equal(blockIndex('10.240.7.0/24', 26, '10.240.6.192/26'), null, 'before the subnet');
    assert.equal(blockIndex('10.240.7.0/24', 26, 'junk'), null);
  });
});

