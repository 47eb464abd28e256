// Docker's empty-body retry of a CreateEndpoint cut off before it was journaled: answered `{}`
// after a durable marker, the endpoint created at the Join that names it, its addresses read
// from the container (src/api/deferred-endpoint.ts). Over the real plugin, log and reconciler,
// with a fake kernel and a fake container interface.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { CREATE_RETRY } from '../../../src/api/deferred-endpoint.ts';
import { JOIN_RETRY } from '../../../src/api/join-retry.ts';
import { EMPTY_HOST, type ContainerIface } from '../../../src/api/ipam.ts';
import { createPlugin } from '../../../src/api/plugin.ts';
import { pino } from 'pino';
import { CREATE_RETRY as SUPERVISOR_SPELLING } from '../../../src/supervisor/retries.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { evolve } from '../../../src/events/domain/evolve.ts';
import { DEFERRED_MS, emptyState, pendingDeferred, type State, type StoredEvent } from '../../../src/events/domain/types.ts';
import { readLog } from '../../../src/events/log/read.ts';
import type { EventStore } from '../../../src/events/log/store.ts';
import { pluginHarness, type PluginHarness } from '../../helpers/plugin-harness.ts';

const NET = '404f6704c3ccdc6e4d2ec4a484462b64600d586ecb6b5dda50c4010a8d5973be';
const EP1 = 'a8bbafba2420888ea04df22510037f17cb4829a8b6632a407ffb32281a344e8d';
const EP2 = 'ed3b6944b97936a3ac300a0a77308f79a05ff6dbd2949f55ca1d7145572908c4';
const EP3 = '5be0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8';
const PORTS = {
  'com.docker.network.endpoint.exposedports': [{ Proto: 6, Port: 80 }],
  'com.docker.network.portmap': [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 18080, HostPortEnd: 18080 }],
};

let dir: string;
let store: EventStore;
let harness: PluginHarness;
/** What the fake container interface shows, per sandbox key; reads are counted. */
let ifaces: Map<string, ContainerIface | null>;
let reads: string[];
let call: PluginHarness['call'];

beforeEach(async () => {
  ifaces = new Map();
  reads = [];
  const host = {
    ...EMPTY_HOST,
    containerIface: async (key: string, veth: string) => {
      reads.push(`${key} ${veth}`);
      return ifaces.get(key) ?? null;
    },
  };
  harness = await pluginHarness('ln-deferred-', host, { retryWaitMs: 1_500 });
  ({ dir, store, call } = harness);
});

afterEach(() => harness.close());

const ok = async (method: string, body: unknown): Promise<Record<string, unknown>> => {
  const r = await call(method, body);
  assert.equal(r.status, 200, `${method}: ${JSON.stringify(r.json)}`);
  return r.json;
};
const types = async (): Promise<string[]> => (await readLog(dir)).events.map((e) => e.type);
const key = (ep: string) => `/var/run/docker/netns/${ep.slice(0, 12)}`;
const joinBody = (ep: string, options: object = {}) => ({ NetworkID: NET, EndpointID: ep, SandboxKey: key(ep), Options: options });

async function network(v6 = false): Promise<void> {
  await ok('NetworkDriver.CreateNetwork', {
    NetworkID: NET,
    Options: { 'com.docker.network.enable_ipv6': v6, 'com.docker.network.generic': {} },
    IPv4Data: [{ AddressSpace: 'LocalDefault', Gateway: '10.213.0.1/24', Pool: '10.213.0.0/24' }],
    IPv6Data: v6 ? [{ AddressSpace: 'LocalDefault', Gateway: 'fd13::1/64', Pool: 'fd13::/64' }] : [],
  });
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok(), what);
}

describe("an empty CreateEndpoint retry that no journal entry matches", () => {
  it('is answered {} after a durable marker; the Join that names an unknown endpoint creates it and joins it', async () => {
    await network();
    assert.equal(SUPERVISOR_SPELLING, CREATE_RETRY, 'the supervisor asks for the call the worker serves');
    assert.deepEqual(await ok(CREATE_RETRY, ''), {});
    assert.deepEqual((await types()).slice(-1), ['endpoint.deferred']);
    assert.equal(pendingDeferred(store.state, Date.now()), 1);
    assert.ok(!Object.hasOwn(store.state.endpoints, EP1), 'nothing is created before the Join names it');

    ifaces.set(key(EP1), { address: '10.213.0.7/24', addressV6: null, mac: '6e:3f:11:2a:9c:04' });
    const answer = await ok('NetworkDriver.Join', joinBody(EP1));
    assert.deepEqual(answer, { InterfaceName: { SrcName: 'lnp-a8bbafba242', DstPrefix: 'eth' }, Gateway: '10.213.0.1' });
    const ep = store.state.endpoints[EP1];
    assert.equal(ep?.deferred, true);
    assert.equal(ep?.joined, true);
    assert.equal(ep?.sandboxKey, key(EP1));
    assert.equal(pendingDeferred(store.state, Date.now()), 0, 'the marker is used');

    await until('the addresses are read from the container', () => store.state.endpoints[EP1]?.address === '10.213.0.7/24');
    assert.equal(store.state.endpoints[EP1]?.mac, '6e:3f:11:2a:9c:04');
    assert.deepEqual(reads[0], `${key(EP1)} lnv-a8bbafba242`, "the endpoint's own veth, in the sandbox its Join named");
    assert.deepEqual((await types()).slice(-4), ['endpoint.deferred', 'endpoint.created', 'endpoint.joined', 'endpoint.addressed']);
  });

  it('without a marker a Join of an unknown endpoint is refused and nothing is appended', async () => {
    await network();
    const before = await types();
    const r = await call('NetworkDriver.Join', joinBody(EP1));
    assert.notEqual(r.status, 200);
    assert.match(String(r.json['Err']), /endpoint a8bbafba2420 is not known to ledgernet/);
    assert.deepEqual(await types(), before);
  });

  it('one marker per endpoint: two deferred calls create two endpoints from their own Joins, a third Join is refused', async () => {
    await network();
    await ok(CREATE_RETRY, '');
    await ok(CREATE_RETRY, '');
    ifaces.set(key(EP1), { address: '10.213.0.7/24', addressV6: null, mac: '6e:3f:11:2a:9c:04' });
    ifaces.set(key(EP2), { address: '10.213.0.8/24', addressV6: null, mac: '6e:3f:11:2a:9c:05' });
    assert.equal((await ok('NetworkDriver.Join', joinBody(EP2)))['InterfaceName'] !== undefined, true);
    assert.equal((await ok('NetworkDriver.Join', joinBody(EP1)))['InterfaceName'] !== undefined, true);
    const r = await call('NetworkDriver.Join', joinBody(EP3));
    assert.notEqual(r.status, 200, 'no marker left for a third');
    await until('each reads its own container', () => store.state.endpoints[EP1]?.address === '10.213.0.7/24' && store.state.endpoints[EP2]?.address === '10.213.0.8/24');
  });

  it('ProgramExternalConnectivity with ports is answered before the container is configured; the ports follow its addresses', async () => {
    await network();
    await ok(CREATE_RETRY, '');
    // An IPv6 host address too: the endpoint's families are not known yet, so it is not refused.
    const ports = { ...PORTS, 'com.docker.network.portmap': [...PORTS['com.docker.network.portmap'], { Proto: 6, IP: '', Port: 443, HostIP: '::', HostPort: 18443, HostPortEnd: 18443 }] };
    await ok('NetworkDriver.Join', joinBody(EP1, ports));
    // Docker configures the interface only after this call was answered.
    await ok('NetworkDriver.ProgramExternalConnectivity', { NetworkID: NET, EndpointID: EP1, Options: ports });
    assert.deepEqual(store.state.endpoints[EP1]?.portmap.map((p) => p.hostPort), [18080, 18443]);
    assert.equal(store.state.endpoints[EP1]?.address, null);
    ifaces.set(key(EP1), { address: '10.213.0.9/24', addressV6: null, mac: '6e:3f:11:2a:9c:06' });
    await until('the address is read once the container has it', () => store.state.endpoints[EP1]?.address === '10.213.0.9/24');
  });

  it('a read that fails (the namespace not bound to the key yet) is tried again', async () => {
    await network();
    await ok(CREATE_RETRY, '');
    let failures = 0;
    ifaces.set(key(EP1), { address: '10.213.0.5/24', addressV6: null, mac: '6e:3f:11:2a:9c:07' });
    const real = ifaces.get.bind(ifaces);
    ifaces.get = (k: string) => {
      if (failures++ < 3) throw new Error(`nsenter: cannot open ${k}: No such file or directory`);
      return real(k);
    };
    await ok('NetworkDriver.Join', joinBody(EP1));
    await until('read after three failed tries', () => store.state.endpoints[EP1]?.address === '10.213.0.5/24');
    assert.ok(failures >= 4);
  });

  it('a new process (a restart) reads the addresses a previous one had not read yet', async () => {
    await network();
    await ok(CREATE_RETRY, '');
    await ok('NetworkDriver.Join', joinBody(EP1));
    assert.equal(store.state.endpoints[EP1]?.address, null, 'the container shows nothing to the first process');
    const host = { ...EMPTY_HOST, containerIface: async () => ({ address: '10.213.0.6/24', addressV6: null, mac: '6e:3f:11:2a:9c:08' }) };
    createPlugin({ store, reconciler: harness.reconciler, log: pino({ level: 'silent' }), applyTimeoutMs: 5_000, host });
    await until('the new process read them', () => store.state.endpoints[EP1]?.address === '10.213.0.6/24');
  });

  it("a dual-stack network's Join answers the IPv6 gateway before the addresses are read", async () => {
    await network(true);
    await ok(CREATE_RETRY, '');
    const answer = await ok('NetworkDriver.Join', joinBody(EP1));
    assert.equal(answer['GatewayIPv6'], 'fd13::1');
  });

  it('an empty Join retry is refused while a marker waits for its Join (it may be that Join) and no call tells', async () => {
    await network();
    await ok('NetworkDriver.CreateEndpoint', { NetworkID: NET, EndpointID: EP2, Interface: { Address: '10.213.0.3/24', AddressIPv6: '', MacAddress: '' }, Options: {} });
    await ok(CREATE_RETRY, '');
    const r = await call(JOIN_RETRY, '');
    assert.notEqual(r.status, 200);
    assert.match(String(r.json['Err']), /could be the Join of one.*no call told them apart/);
    assert.equal(store.state.endpoints[EP2]?.joined, false, 'the one created endpoint was not taken for it');
  });

  it('an empty Join retry waits while a marker waits: once the marker\'s own Join used it, the one created endpoint is the call', async () => {
    await network();
    await ok('NetworkDriver.CreateEndpoint', { NetworkID: NET, EndpointID: EP2, Interface: { Address: '10.213.0.3/24', AddressIPv6: '', MacAddress: '' }, Options: {} });
    await ok(CREATE_RETRY, '');
    const pending = call(JOIN_RETRY, '');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(store.state.endpoints[EP2]?.joined, false);
    await ok('NetworkDriver.Join', joinBody(EP1)); // the deferred endpoint's Join, with its body
    const r = await pending;
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json['InterfaceName'], { SrcName: 'lnp-ed3b6944b97', DstPrefix: 'eth' });
    assert.equal(store.state.endpoints[EP2]?.joined, true);
  });

  it('an empty Join retry with a marker and no created endpoint is refused at once: it can only be the marker\'s Join, whose endpoint it does not name', async () => {
    await network();
    await ok(CREATE_RETRY, '');
    const t0 = Date.now();
    const r = await call(JOIN_RETRY, '');
    assert.match(String(r.json['Err']), /could be the Join of one/);
    assert.ok(Date.now() - t0 < 1_000, 'no wait');
  });
});

describe('the fold and decide of deferred endpoints', () => {
  const stored = (type: string, data: unknown, seq: number, at: string): StoredEvent => ({ type, data, seq, id: `t:${seq}`, host: 't', v: 1, at, prevhash: '', hash: '' }) as unknown as StoredEvent;

  it('a marker expires after DEFERRED_MS; a new marker drops the expired ones', () => {
    const t0 = Date.parse('2026-12-01T00:00:00.000Z');
    let s: State = evolve(emptyState, stored('endpoint.deferred', { reason: 'r' }, 1, new Date(t0).toISOString()));
    assert.equal(pendingDeferred(s, t0 + 1), 1);
    assert.equal(pendingDeferred(s, t0 + DEFERRED_MS), 0);
    s = evolve(s, stored('endpoint.deferred', { reason: 'r' }, 2, new Date(t0 + DEFERRED_MS + 5).toISOString()));
    assert.deepEqual(s.deferred, [new Date(t0 + DEFERRED_MS + 5).toISOString()]);
  });

  it('AddressEndpoint: only for an endpoint created at its Join, with addresses in its subnets', async () => {
    await network();
    await ok('NetworkDriver.CreateEndpoint', { NetworkID: NET, EndpointID: EP2, Interface: { Address: '10.213.0.3/24', AddressIPv6: '', MacAddress: '' }, Options: {} });
    const cmd = (endpointId: string, address: string) => ({ type: 'AddressEndpoint' as const, networkId: NET, endpointId, address, addressV6: null, mac: '6e:3f:11:2a:9c:04' });
    assert.throws(() => decide(cmd(EP2, '10.213.0.4/24'), store.state), /has its addresses from its CreateEndpoint/);
    await ok(CREATE_RETRY, '');
    await ok('NetworkDriver.Join', joinBody(EP1));
    assert.throws(() => decide(cmd(EP1, '10.99.0.4/24'), store.state), /not a host address in the subnets/);
    assert.equal(decide(cmd(EP1, '10.213.0.4/24'), store.state).length, 1);
  });
});
