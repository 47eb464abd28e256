// Docker's empty-body retry of a CreateNetwork cut off before it was journaled: answered `{}`
// after a durable marker, the network taken from Docker's API once Docker stored it
// (src/api/deferred-network.ts). The rebuilt bodies against Docker 20.10's real list and what
// ledgernet made of the real CreateNetwork bodies (fixtures/docker-protocol/adopt/); the rules over
// the real plugin, log and reconciler, with a fake kernel and a fake Docker API.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { NETWORK_RETRY, createNetworkBody, type DockerNetworkView } from '../../../src/api/deferred-network.ts';
import { toNetworkSpec } from '../../../src/api/wire.ts';
import { NETWORK_RETRY as SUPERVISOR_SPELLING } from '../../../src/supervisor/retries.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { evolve, fold } from '../../../src/events/domain/evolve.ts';
import { DEFERRED_MS, emptyState, pendingDeferredNetworks, type NetworkSpec, type State, type StoredEvent } from '../../../src/events/domain/types.ts';
import { readLog } from '../../../src/events/log/read.ts';
import { pluginHarness, type PluginHarness } from '../../helpers/plugin-harness.ts';

const FIXTURES = new URL('../../../fixtures/docker-protocol/adopt/', import.meta.url);
const listed = JSON.parse(readFileSync(new URL('networks.v20.10.json', FIXTURES), 'utf8')) as (DockerNetworkView & { Name: string })[];
const events = readFileSync(new URL('events.jsonl', FIXTURES), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as StoredEvent);
const created = new Map(events.flatMap((e) => (e.type === 'network.created' ? [[e.data.networkId, e.data] as const] : [])));
/** Ledgernet's IPAM as it was when those networks were created (their pools and gateways), without the networks. */
const ipamOnly: State = fold(emptyState, events.filter((e) => e.type !== 'network.created'));
const V20 = async () => '20.10.24+dfsg1';
const ctx = { names: new Set(['ledgernet']), state: ipamOnly, version: V20 };

async function rebuilt(n: DockerNetworkView, c = ctx): Promise<NetworkSpec> {
  const r = await createNetworkBody(n, c);
  if ('problem' in r) throw new Error(r.problem);
  return toNetworkSpec('NetworkDriver.CreateNetwork', r.body);
}
/**
 * A spec as those events hold it: recorded before ledgernet kept each subnet's AddressSpace.
 * The AddressSpace a rebuilt body gives is checked on its own (ledgernet's for ledgernet IPAM).
 */
function asRecorded<S extends Pick<NetworkSpec, 'ipv4Data' | 'ipv6Data'>>(spec: S): S {
  const strip = (list: NetworkSpec['ipv4Data']) => list.map(({ addressSpace: _space, ...d }) => d);
  return { ...spec, ipv4Data: strip(spec.ipv4Data), ipv6Data: strip(spec.ipv6Data) };
}
const named = (name: string): DockerNetworkView => {
  const n = listed.find((x) => x.Name === name);
  assert.ok(n, name);
  return n;
};

describe("a CreateNetwork body rebuilt from Docker's network list (Docker 20.10's real list and bodies)", () => {
  for (const n of listed) {
    it(`${n.Name}: what ledgernet made of Docker's own CreateNetwork`, async () => {
      const spec = await rebuilt(n);
      assert.deepEqual(asRecorded(spec), created.get(n.Id));
      const space = n.IPAM?.Driver === 'ledgernet' ? 'ledgernet-local' : 'LocalDefault';
      assert.deepEqual([...spec.ipv4Data, ...spec.ipv6Data].map((d) => d.addressSpace), [...spec.ipv4Data, ...spec.ipv6Data].map(() => space));
    });
  }

  it('the gateways the list does not show: ledgernet IPAM, and Docker IPAM with and without --ip-range', async () => {
    assert.equal((await rebuilt(named('fix-ln-ipam'))).ipv4Data[0]?.gateway, '10.231.242.1/24');
    assert.equal((await rebuilt(named('fix-subnet-opts'))).ipv4Data[0]?.gateway, '10.231.240.1/24');
    assert.equal((await rebuilt(named('fix-range'))).ipv4Data[0]?.gateway, '10.233.241.0/16');
    assert.equal((await rebuilt(named('fix-range-base'))).ipv4Data[0]?.gateway, '10.232.0.1/16');
    assert.equal((await rebuilt(named('fix-v6-range'))).ipv6Data[0]?.gateway, 'fd00:231:244:0:1::/64');
  });

  it('refuses, naming why, what it cannot know: --ip-range without --gateway on another engine, a third-party IPAM, two gateways in one pool', async () => {
    const later = await createNetworkBody(named('fix-range'), { ...ctx, version: async () => '28.3.1' });
    assert.match('problem' in later ? later.problem : '', /subnet 10\.233\.0\.0\/16: .*--ip-range 10\.233\.241\.0\/24.*Docker 28\.3\.1.*--gateway/);
    const third = await createNetworkBody({ ...named('fix-subnet-opts'), IPAM: { Driver: 'other-ipam', Config: [{ Subnet: '10.231.240.0/24' }] } }, ctx);
    assert.match('problem' in third ? third.problem : '', /does not show the gateway IPAM driver other-ipam gave it/);
    // A gateway the list shows needs no rule, whatever the IPAM.
    const shown = await createNetworkBody({ ...named('fix-subnet-opts'), IPAM: { Driver: 'other-ipam', Config: [{ Subnet: '10.231.240.0/24', Gateway: '10.231.240.9' }] } }, ctx);
    assert.ok('body' in shown);
    const pool = Object.values(ipamOnly.pools).find((p) => p.pool === '10.231.242.0/24');
    assert.ok(pool);
    const twice: State = { ...ipamOnly, pools: { ...ipamOnly.pools, other: { ...pool, poolId: 'other', allocated: { '10.231.242.9': { kind: 'gateway', name: null, seq: 1 } } } } };
    const r = await createNetworkBody(named('fix-ln-ipam'), { ...ctx, state: twice });
    assert.match('problem' in r ? r.problem : '', /2 gateway addresses in that pool \(10\.231\.242\.1, 10\.231\.242\.9\)/);
  });
});

describe('the markers in the log', () => {
  const stored = (type: string, data: unknown, seq: number, at: string): StoredEvent => ({ type, data, seq, at, id: `t:${seq}`, host: 't', v: 1, prevhash: '', hash: '' }) as unknown as StoredEvent;
  const spec = created.get(named('fix-auto').Id) as NetworkSpec;

  it('a network taken from Docker needs a marker and uses the oldest; a marker expires after DEFERRED_MS', () => {
    assert.throws(() => decide({ type: 'CreateNetwork', spec: { ...spec, adopted: true } }, emptyState), /no CreateNetwork was answered without its body/);
    const t0 = Date.parse('2026-12-02T05:00:00Z');
    let s = evolve(emptyState, stored('network.deferred', { reason: 'r' }, 1, new Date(t0).toISOString()));
    s = evolve(s, stored('network.deferred', { reason: 'r' }, 2, new Date(t0 + 10).toISOString()));
    assert.equal(pendingDeferredNetworks(s, t0 + 20).length, 2);
    assert.deepEqual(decide({ type: 'CreateNetwork', spec: { ...spec, adopted: true } }, s).map((e) => e.type), ['network.created']);
    s = evolve(s, stored('network.created', { ...spec, adopted: true }, 3, new Date(t0 + 20).toISOString()));
    assert.deepEqual(s.deferredNetworks, [new Date(t0 + 10).toISOString()], 'the oldest marker is used');
    assert.equal(pendingDeferredNetworks(s, t0 + 10 + DEFERRED_MS).length, 0, 'expired');
    // A network Docker sent with its body uses none.
    s = evolve(s, stored('network.created', { ...spec, networkId: 'f'.repeat(64), bridge: 'lnb-fffffffffff' }, 4, new Date(t0 + 30).toISOString()));
    assert.equal(s.deferredNetworks?.length, 1);
  });
});

describe('an empty CreateNetwork retry that no journal entry matches', () => {
  const NET = named('fix-subnet-opts');
  let harness: PluginHarness;
  let call: PluginHarness['call'];
  /** What the fake Docker lists; `lists` counts the reads. */
  let dockerHas: DockerNetworkView[];
  let lists: number;

  beforeEach(async () => {
    dockerHas = [];
    lists = 0;
    const networks = {
      list: async () => {
        lists += 1;
        return dockerHas;
      },
      version: V20,
    };
    harness = await pluginHarness('ln-deferred-net-', undefined, { retryWaitMs: 3_000, docker: { networks, driverName: () => 'ledgernet' } });
    call = harness.call;
  });
  afterEach(() => harness.close());

  const ok = async (method: string, body: unknown): Promise<Record<string, unknown>> => {
    const r = await call(method, body);
    assert.equal(r.status, 200, `${method}: ${JSON.stringify(r.json)}`);
    return r.json;
  };
  const types = async (): Promise<string[]> => (await readLog(harness.dir)).events.map((e) => e.type).filter((t) => t !== 'reconcile.applied');
  const endpoint = (net: string) => ({ NetworkID: net, EndpointID: 'a8bbafba2420888ea04df22510037f17cb4829a8b6632a407ffb32281a344e8d', Interface: { Address: '10.231.240.2/24', AddressIPv6: '', MacAddress: '' }, Options: {} });
  /** As Docker lists the network it stored after the `{}`: created a moment before the retry. */
  const stored = (n: DockerNetworkView, agoMs = 2_000): DockerNetworkView => ({ ...n, Created: new Date(Date.now() - agoMs).toISOString() });

  it("is answered {} after a durable marker; the network Docker then stores is taken from its API as Docker's own CreateNetwork would have made it", async () => {
    assert.equal(SUPERVISOR_SPELLING, NETWORK_RETRY, 'the supervisor asks for the call the worker serves');
    assert.deepEqual(await ok(NETWORK_RETRY, ''), {});
    assert.deepEqual((await types()).slice(-1), ['network.deferred']);
    // Docker stores the network once it has the answer; a bridge-driver network made then is not ours.
    dockerHas = [stored(NET), { ...stored(named('fix-auto')), Id: 'b'.repeat(64), Driver: 'bridge' }];
    for (let i = 0; i < 200 && !Object.hasOwn(harness.store.state.networks, NET.Id); i++) await new Promise((r) => setTimeout(r, 10));
    const net = harness.store.state.networks[NET.Id];
    assert.ok(net, 'the network is known');
    const { createdSeq: _s, adopted, ...spec } = net;
    assert.equal(adopted, true);
    assert.deepEqual(asRecorded(spec), created.get(NET.Id), "the same network Docker's own CreateNetwork made");
    assert.equal(pendingDeferredNetworks(harness.store.state, Date.now()).length, 0, 'the marker is used');
    assert.ok(!Object.hasOwn(harness.store.state.networks, 'b'.repeat(64)), "another driver's network is left alone");
    await ok('NetworkDriver.CreateEndpoint', endpoint(NET.Id));
  });

  it('a CreateEndpoint naming the network before ledgernet took it waits for it', async () => {
    await ok(NETWORK_RETRY, '');
    // Docker lists it only 300 ms later (it was storing it): the CreateEndpoint came first.
    setTimeout(() => (dockerHas = [stored(NET)]), 300);
    const t0 = Date.now();
    await ok('NetworkDriver.CreateEndpoint', endpoint(NET.Id));
    assert.ok(Date.now() - t0 >= 250, 'it waited');
    assert.ok(Object.hasOwn(harness.store.state.endpoints, endpoint(NET.Id).EndpointID));
    assert.deepEqual((await types()).slice(-3), ['network.deferred', 'network.created', 'endpoint.created']);
  });

  it('without a marker nothing is taken and a CreateEndpoint on an unknown network is refused at once, without asking Docker', async () => {
    dockerHas = [stored(NET)];
    const r = await call('NetworkDriver.CreateEndpoint', endpoint(NET.Id));
    assert.notEqual(r.status, 200);
    assert.match(String(r.json['Err']), /network 6a07e5bd9402/);
    assert.equal(lists, 0);
    assert.deepEqual(await types(), []);
  });

  it('a network Docker is removing (its DeleteNetwork came, Docker still lists it) is not taken', async () => {
    await ok(NETWORK_RETRY, '');
    await ok('NetworkDriver.DeleteNetwork', { NetworkID: NET.Id });
    dockerHas = [stored(NET)];
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(lists > 0, 'Docker was asked');
    assert.equal(Object.keys(harness.store.state.networks).length, 0);
    assert.equal(pendingDeferredNetworks(harness.store.state, Date.now()).length, 1, 'the marker waits for another network');
  });

  it('a network made long before the retry is not taken; one that cannot be taken fails its CreateEndpoint with the reason', async () => {
    await ok(NETWORK_RETRY, '');
    // Docker's retries end 30 s after the first attempt: a network made a minute before is another matter.
    dockerHas = [stored(NET, 60_000)];
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(lists > 0, 'Docker was asked');
    assert.equal(Object.keys(harness.store.state.networks).length, 0);
    // Options ledgernet refuses (as it would have refused Docker's own call).
    dockerHas = [{ ...stored(NET), Options: { 'com.docker.network.driver.mtu': 'lots' } }];
    const r = await call('NetworkDriver.CreateEndpoint', endpoint(NET.Id));
    assert.notEqual(r.status, 200);
    assert.match(String(r.json['Err']), /network 6a07e5bd9402 was created while ledgernet was being restarted .* cannot take it from Docker's API: .*mtu.*; remove it \(docker network rm\) and create it again/);
    assert.deepEqual(await types(), ['network.deferred'], 'nothing else was appended');
  });
});

describe('without Docker\'s API (--docker-socket \'\')', () => {
  it("the retry is refused, naming the option; nothing is appended", async () => {
    const h = await pluginHarness('ln-deferred-net-off-');
    try {
      const r = await h.call(NETWORK_RETRY, '');
      assert.notEqual(r.status, 200);
      assert.match(String(r.json['Err']), /request body is empty.*does not read Docker's API \(--docker-socket ''\)/);
      assert.deepEqual((await readLog(h.dir)).events, []);
    } finally {
      await h.close();
    }
  });
});
