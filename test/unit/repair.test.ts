// `ledgernet repair`'s plan: what Docker and ledgernet disagree on after a crash, and only what
// two reads of Docker agree on (an endpoint mid-`docker run` is not garbage).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { releaseCommand } from '../../src/events/domain/release.ts';
import { describeFinding, planRepair, type DockerEndpoint, type DockerView } from '../../src/operator/repair.ts';
import { dockerHolds, readDocker } from '../../src/operator/docker-holds.ts';
import type { DockerApi } from '../../src/operator/docker-api.ts';
import { EP_1, EP_2, NET_A, NET_B, endpointSpec, given, networkSpec } from '../helpers/events.ts';

const view = (nets: Record<string, readonly DockerEndpoint[]>, subnets: Record<string, string[]> = {}): DockerView => ({
  networks: new Map(Object.keys(nets).map((id) => [id, `net-${id.slice(0, 4)}`])),
  endpoints: new Map(Object.entries(nets)),
  subnets: new Map(Object.entries(subnets).map(([k, v]) => [k, new Set(v)])),
  subnetNetworks: new Map(Object.keys(subnets).map((k) => [k, ['net']])),
});
const ep = (endpointId: string, name: string, sandbox = true): DockerEndpoint => ({ endpointId, name, sandbox });

describe('planRepair', () => {
  const state = given(
    { type: 'CreateNetwork', spec: networkSpec(NET_A) },
    { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) },
    { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_2, '10.231.7.3/24') },
  );

  it('agrees: nothing to repair', () => {
    const v = view({ [NET_A]: [ep(EP_1, 'c1'), ep(EP_2, 'c2')] });
    assert.deepEqual(planRepair(state, v, v), []);
  });

  it('an endpoint Docker does not know (abandoned after a crash) is released; one Docker lists is not', () => {
    const v = view({ [NET_A]: [ep(EP_1, 'c1')] });
    const f = planRepair(state, v, v);
    assert.deepEqual(f.map((x) => [x.kind, x.kind === 'release-endpoint' && x.endpointId]), [['release-endpoint', EP_2]]);
    assert.match(describeFinding(f[0]!), /release endpoint e2e2e2e2/);
  });

  it('Docker holding an endpoint with no sandbox in both reads: force-disconnect by its name; in one read only: left alone', () => {
    const stale = view({ [NET_A]: [ep(EP_1, 'c1'), ep(EP_2, 'gone', false)] });
    const f = planRepair(state, stale, stale);
    assert.deepEqual(f.map((x) => x.kind === 'disconnect' && [x.container, x.networkName]), [['gone', `net-${NET_A.slice(0, 4)}`]]);
    const joining = view({ [NET_A]: [ep(EP_1, 'c1'), ep(EP_2, 'c2')] });
    assert.deepEqual(planRepair(state, stale, joining), [], 'it got a sandbox between the reads: a docker run in progress');
  });

  it('Docker holding an endpoint ledgernet lost: force-disconnect it', () => {
    const other = 'f'.repeat(64);
    const v = view({ [NET_A]: [ep(EP_1, 'c1'), ep(EP_2, 'c2'), ep(other, 'c3')] });
    assert.deepEqual(planRepair(state, v, v).map((x) => x.kind === 'disconnect' && x.endpointId), [other]);
  });

  it('what ledgernet did not hold yet at the first read of Docker (a call in progress) is never released', () => {
    // Before the first read: the network and EP_1. A docker run makes EP_2 (and another network is
    // created) while repair waits; Docker stores neither before the second read.
    const before = given({ type: 'CreateNetwork', spec: networkSpec(NET_A) }, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) });
    const now = given(
      { type: 'CreateNetwork', spec: networkSpec(NET_A) },
      { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) },
      { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_2, '10.231.7.3/24') },
      { type: 'CreateNetwork', spec: networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24') },
    );
    const v = view({ [NET_A]: [ep(EP_1, 'c1')] });
    assert.deepEqual(planRepair(now, v, v, before), []);
    // Without that view of the past, both would be taken for garbage.
    assert.deepEqual(planRepair(now, v, v).map((f) => f.kind).sort(), ['release-endpoint', 'release-network']);
  });

  it('a network Docker does not have in either read is released; one that appears in the second read is not', () => {
    const two = given({ type: 'CreateNetwork', spec: networkSpec(NET_A) }, { type: 'CreateNetwork', spec: networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24') });
    const onlyA = view({ [NET_A]: [] });
    assert.deepEqual(planRepair(two, onlyA, onlyA).map((x) => [x.kind, x.kind === 'release-network' && x.networkId]), [['release-network', NET_B]]);
    assert.deepEqual(planRepair(two, onlyA, view({ [NET_A]: [], [NET_B]: [] })), []);
  });
});

describe('releaseCommand for endpoints (used by repair)', () => {
  it('an endpoint id (or unique 12+ hex prefix) that is no network id becomes DeleteEndpoint', () => {
    const state = given({ type: 'CreateNetwork', spec: networkSpec(NET_A) }, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) });
    assert.deepEqual(releaseCommand(state, EP_1.slice(0, 12)), { type: 'DeleteEndpoint', networkId: NET_A, endpointId: EP_1 });
    assert.throws(() => releaseCommand(state, 'cafecafecafe'), /no ledgernet network id starts with cafecafecafe, nor any endpoint id/);
  });
});

describe('planRepair: ledgernet IPAM', () => {
  it('an address Docker does not hold is released, the gateway and held ones are not; a pool no network uses is released', () => {
    const defaults = { range: '10.231.0.0/16', size: 24 };
    const request = { pool: '10.231.40.0/24', subPool: null, v6: false, defaults, occupied: [] };
    const first = given({ type: 'RequestPool', request });
    const poolId = Object.keys(first.pools)[0] as string;
    const ask = (gateway: boolean) => ({ type: 'RequestAddress' as const, poolId, address: null, gateway, name: null });
    const state = given({ type: 'RequestPool', request }, ask(true), ask(false), ask(false));
    const held = Object.keys(state.pools[poolId]?.allocated ?? {});
    assert.equal(held.length, 3, `gateway and two addresses: ${held.join(' ')}`);
    const [gw, a1, a2] = held as [string, string, string];
    const v = view({}, { '10.231.40.0/24': [gw, a1] });
    assert.deepEqual(planRepair(state, v, v).map((f) => f.kind === 'release-address' && f.address), [a2]);
    assert.deepEqual(planRepair(state, view({}), view({})).map((f) => f.kind), ['release-pool']);
    assert.deepEqual(releaseCommand(state, a2), { type: 'ReleaseAddress', poolId, address: a2 });
  });
});

describe('readDocker: subnets and addresses as ledgernet records them', () => {
  it("Docker's API shows a subnet as the user typed it (fd00:1:0:0::/64, an unmasked 10.231.41.9/24): a pool in use is neither repaired nor released", async () => {
    const defaults = { range: '10.231.0.0/16', size: 24 };
    const state = given(
      { type: 'RequestPool', request: { pool: 'fd00:1:0:0::/64', subPool: null, v6: true, defaults, occupied: [] } },
      { type: 'RequestPool', request: { pool: '10.231.41.0/24', subPool: null, v6: false, defaults, occupied: [] } },
    );
    assert.deepEqual(Object.values(state.pools).map((p) => p.pool).sort(), ['10.231.41.0/24', 'fd00:1::/64']);
    const net = {
      Id: 'a'.repeat(64),
      Name: 'typed',
      IPAM: { Driver: 'ledgernet', Config: [{ Subnet: 'fd00:1:0:0::/64', Gateway: 'fd00:1:0:0::1' }, { Subnet: '10.231.41.9/24' }] },
      Containers: { c: { Name: 'web', EndpointID: 'b'.repeat(64), IPv6Address: 'fd00:1:0:0::5/64', IPv4Address: '10.231.41.5/24' } },
    };
    const docker = { listNetworks: async () => [net], inspectNetwork: async () => net } as unknown as DockerApi;
    const v = await readDocker(docker, state);
    assert.deepEqual([...v.subnets.keys()].sort(), ['10.231.41.0/24', 'fd00:1::/64']);
    for (const a of ['fd00:1::1', 'fd00:1::5']) assert.ok(v.subnets.get('fd00:1::/64')?.has(a), a);
    assert.deepEqual(planRepair(state, v, v).filter((f) => f.kind === 'release-pool'), []);
    assert.match(dockerHolds(releaseCommand(state, 'fd00:1::/64'), state, v) ?? '', /Docker's network typed still uses pool fd00:1::\/64/);
  });
});

// `ledgernet release` takes only what Docker no longer has: what it still holds is refused by name.
describe('dockerHolds: what release refuses', () => {
  const defaults = { range: '10.231.0.0/16', size: 24 };
  const request = { pool: '10.231.40.0/24', subPool: null, v6: false, defaults, occupied: [] };
  const poolId = Object.keys(given({ type: 'RequestPool', request }).pools)[0] as string;
  const ask = { type: 'RequestAddress' as const, poolId, address: null, gateway: false, name: null };
  const state = given(
    { type: 'CreateNetwork', spec: networkSpec(NET_A) },
    { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) },
    { type: 'CreateNetwork', spec: networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24') },
    { type: 'RequestPool', request },
    ask,
  );
  const address = Object.keys(state.pools[poolId]?.allocated ?? {})[0] as string;
  const holds = (target: string, v: DockerView) => dockerHolds(releaseCommand(state, target), state, v);

  it('a network Docker lists, naming it and its containers; one Docker lacks is released', () => {
    const v = view({ [NET_A]: [ep(EP_1, 'web-1')] });
    assert.equal(holds(NET_A.slice(0, 12), v), `Docker still has network ${NET_A.slice(0, 12)} (net-${NET_A.slice(0, 4)}; attached: web-1): remove it with \`docker network rm net-${NET_A.slice(0, 4)}\` once its containers are gone`);
    assert.equal(holds(NET_B.slice(0, 12), v), null);
  });

  it('an endpoint Docker holds: its container and the disconnect; without a container: ledgernet repair', () => {
    assert.match(holds(EP_1.slice(0, 12), view({ [NET_A]: [ep(EP_1, 'web-1')] })) ?? '', /for container web-1 on network net-.*docker network disconnect net-\S+ web-1/);
    assert.match(holds(EP_1.slice(0, 12), view({ [NET_A]: [ep(EP_1, 'ep-x', false)] })) ?? '', /no container attached \(its removal was lost\): `ledgernet repair`/);
    assert.equal(holds(EP_1.slice(0, 12), view({ [NET_A]: [ep(EP_2, 'other')] })), null);
  });

  it('a pool a Docker network uses, and an address Docker holds in it; the others are released', () => {
    const v = view({}, { '10.231.40.0/24': [address] });
    assert.equal(holds('10.231.40.0/24', v), "Docker's network net still uses pool 10.231.40.0/24: remove it first");
    assert.match(holds(address, v) ?? '', new RegExp(`Docker still holds ${address.replaceAll('.', '\\.')} in pool 10\\.231\\.40\\.0/24`));
    assert.equal(holds(address, view({}, { '10.231.40.0/24': [] })), null);
    assert.equal(holds('10.231.40.0/24', view({})), null);
  });
});
