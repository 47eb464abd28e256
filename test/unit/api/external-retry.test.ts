// Docker's empty-body retry of a ProgramExternalConnectivity or a Join cut off before the
// supervisor had journaled it: the worker's answer from its model and, for the first, the Joins,
// Leaves and Revokes the journal kept (src/api/external-retry.ts, join-retry.ts). Through the plugin's own `call` over a real event log (temp
// dir) and the FakeKernel, with bodies from a real dockerd (observed-docker.md §2).
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { EXTERNAL_RETRY, RECENT_MS, externalRetry } from '../../../src/api/external-retry.ts';
import { JOIN_RETRY, joinRetry } from '../../../src/api/join-retry.ts';
import { EXTERNAL_RETRY as SUPERVISOR_SPELLING, JOIN_RETRY as SUPERVISOR_JOIN } from '../../../src/supervisor/retries.ts';
import { readLog } from '../../../src/events/log/read.ts';
import type { EventStore } from '../../../src/events/log/store.ts';
import { pluginHarness, type PluginHarness } from '../../helpers/plugin-harness.ts';

const NET = '404f6704c3ccdc6e4d2ec4a484462b64600d586ecb6b5dda50c4010a8d5973be';
const INTERNAL_NET = 'cf347594c297de10fa4592c16d3a5e89d522c709af89b6a89c9b6b7e3c5ee0ce';
const EP1 = 'a8bbafba2420888ea04df22510037f17cb4829a8b6632a407ffb32281a344e8d';
const EP2 = 'ed3b6944b97936a3ac300a0a77308f79a05ff6dbd2949f55ca1d7145572908c4';
const EP3 = '5c1f0e2a9d7b4c3e8f6a1b2d3c4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60';
const NO_PORTS = { 'com.docker.network.endpoint.exposedports': [], 'com.docker.network.portmap': [] };
// observed-docker.md §2.8: `-p 127.0.0.1:8443:443/udp -p 8080:80 --expose 9000`
const PORTS = {
  'com.docker.network.endpoint.exposedports': [{ Proto: 6, Port: 9000 }, { Proto: 17, Port: 443 }, { Proto: 6, Port: 80 }],
  'com.docker.network.portmap': [
    { Proto: 17, IP: '', Port: 443, HostIP: '127.0.0.1', HostPort: 8443, HostPortEnd: 8443 },
    { Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080 },
  ],
};

/** How long an ambiguous retry waits here for the others' own calls (the daemon's RETRY_WAIT_MS is 10 s). */
const WAIT_MS = 1_500;

let dir: string;
let store: EventStore;
let harness: PluginHarness;
let call: PluginHarness['call'];

beforeEach(async () => {
  harness = await pluginHarness('ln-extretry-', undefined, { retryWaitMs: WAIT_MS });
  ({ dir, store, call } = harness);
});

afterEach(() => harness.close());

const ok = async (method: string, body: unknown): Promise<Record<string, unknown>> => {
  const r = await call(method, body);
  assert.equal(r.status, 200, `${method}: ${JSON.stringify(r.json)}`);
  return r.json;
};

async function network(id: string, subnet: number, internal = false): Promise<void> {
  await ok('NetworkDriver.CreateNetwork', {
    NetworkID: id,
    Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.internal': internal, 'com.docker.network.generic': {} },
    IPv4Data: [{ AddressSpace: 'LocalDefault', Gateway: `10.213.${subnet}.1/24`, Pool: `10.213.${subnet}.0/24` }],
    IPv6Data: [],
  });
}

/** CreateEndpoint and Join as Docker sends them; returns the Join's body (what the journal keeps). */
async function joined(net: string, ep: string, host: number, options: object, subnet = 0): Promise<object> {
  await ok('NetworkDriver.CreateEndpoint', { NetworkID: net, EndpointID: ep, Interface: { Address: `10.213.${subnet}.${host}/24`, AddressIPv6: '', MacAddress: '' }, Options: options });
  const body = { NetworkID: net, EndpointID: ep, SandboxKey: `/var/run/docker/netns/${ep.slice(0, 12)}`, Options: options };
  await ok('NetworkDriver.Join', body);
  return body;
}

const types = async (): Promise<string[]> => (await readLog(dir)).events.map((e) => e.type);
const retry = (joins: object[], teardowns: object[] = []) => call(EXTERNAL_RETRY, { joins, teardowns });
const refusal = (r: { status: number; json: Record<string, unknown> }): string => {
  assert.notEqual(r.status, 200, 'refused');
  return String(r.json['Err']);
};

describe('an empty ProgramExternalConnectivity retry that no journal entry matches', () => {
  it('the supervisor and the worker spell the internal call alike', () => {
    assert.equal(SUPERVISOR_SPELLING, EXTERNAL_RETRY);
    assert.equal(SUPERVISOR_JOIN, JOIN_RETRY);
  });

  it('one endpoint joined and not programmed: it is the call, programmed with its Join\'s published ports', async () => {
    await network(NET, 0);
    const j = await joined(NET, EP1, 2, PORTS);
    const r = await retry([j]);
    assert.deepEqual([r.status, r.json], [200, {}]);
    const ep = store.state.endpoints[EP1];
    assert.equal(ep?.programmed, true);
    assert.deepEqual(ep?.portmap.map((p) => `${p.hostIp}:${p.hostPort}->${p.port}/${p.proto}`).sort(), ['127.0.0.1:8443->443/17', ':8080->80/6']);
    // Its own ProgramExternalConnectivity, were it to come as well, changes nothing.
    const before = await types();
    await ok('NetworkDriver.ProgramExternalConnectivity', { NetworkID: NET, EndpointID: EP1, Options: PORTS });
    assert.deepEqual(await types(), before);
  });

  it('several endpoints joined, none publishing a port: answered {} and nothing is appended', async () => {
    await network(NET, 0);
    const js = [await joined(NET, EP1, 2, NO_PORTS), await joined(NET, EP2, 3, NO_PORTS)];
    const before = await types();
    const r = await retry(js);
    assert.deepEqual([r.status, r.json], [200, {}]);
    assert.deepEqual(await types(), before);
  });

  it('several endpoints joined, one publishing ports, and no call tells them apart: refused after the wait, naming it; nothing is appended', async () => {
    await network(NET, 0);
    const js = [await joined(NET, EP1, 2, NO_PORTS), await joined(NET, EP2, 3, PORTS)];
    const before = await types();
    const t0 = Date.now();
    const err = refusal(await retry(js));
    assert.ok(Date.now() - t0 >= WAIT_MS, 'it waited for the others\' calls first');
    assert.match(err, /request body is empty/);
    assert.match(err, /2 endpoints were joined .* and ed3b6944b979 publishes ports.*no call told them apart within 1\.5 s/);
    assert.match(err, /run the docker command again/);
    assert.deepEqual(await types(), before);
  });

  it('several joined, ports among them: the retry waits, and the other\'s own call rules it out; the one left is programmed with its Join\'s ports', async () => {
    await network(NET, 0);
    const js = [await joined(NET, EP1, 2, PORTS), await joined(NET, EP2, 3, NO_PORTS)];
    const pending = retry(js);
    // EP2's container goes on: its own ProgramExternalConnectivity, with its body, comes meanwhile.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(store.state.endpoints[EP1]?.programmed, false, 'nothing picked while two could be it');
    await ok('NetworkDriver.ProgramExternalConnectivity', { NetworkID: NET, EndpointID: EP2, Options: NO_PORTS });
    const r = await pending;
    assert.deepEqual([r.status, r.json], [200, {}]);
    const ep = store.state.endpoints[EP1];
    assert.equal(ep?.programmed, true);
    assert.deepEqual(ep?.portmap.map((p) => `${p.hostIp}:${p.hostPort}->${p.port}/${p.proto}`).sort(), ['127.0.0.1:8443->443/17', ':8080->80/6']);
  });

  it('an endpoint joined after the retry came is never its target: asked again among its first candidates only', async () => {
    await network(NET, 0);
    const js = [await joined(NET, EP1, 2, PORTS), await joined(NET, EP2, 3, NO_PORTS)];
    const now = Date.now();
    const first = externalRetry(store.state, now, js as never, []);
    assert.equal(first.kind, 'wait');
    const among = new Set(first.kind === 'wait' ? first.candidates : []);
    for (const ep of [EP1, EP2]) {
      await ok('NetworkDriver.Leave', { NetworkID: NET, EndpointID: ep });
      await ok('NetworkDriver.DeleteEndpoint', { NetworkID: NET, EndpointID: ep });
    }
    const j3 = await joined(NET, EP3, 4, PORTS);
    assert.equal(externalRetry(store.state, now, [...js, j3] as never, [], among).kind, 'refuse');
    assert.equal(externalRetry(store.state, now, [...js, j3] as never, []).kind, 'redo', 'a retry that came now could be its call');
  });

  it('a candidate whose Join the journal no longer holds: refused, naming it', async () => {
    await network(NET, 0);
    await joined(NET, EP1, 2, NO_PORTS);
    const j2 = await joined(NET, EP2, 3, NO_PORTS);
    assert.match(refusal(await retry([j2])), /endpoint a8bbafba2420 may be the one .* no longer holds its Join/);
  });

  it('an endpoint that left and is not deleted yet: refused (Docker may be moving its container\'s gateway)', async () => {
    await network(NET, 0);
    await joined(NET, EP1, 2, NO_PORTS);
    const j2 = await joined(NET, EP2, 3, NO_PORTS);
    await ok('NetworkDriver.Leave', { NetworkID: NET, EndpointID: EP1 });
    assert.match(refusal(await retry([j2], [{ NetworkID: NET, EndpointID: EP1 }])), /endpoint a8bbafba2420 left its container/);
    // Once it is deleted (the teardown is over), the one candidate left is the call.
    await ok('NetworkDriver.DeleteEndpoint', { NetworkID: NET, EndpointID: EP1 });
    assert.equal((await retry([j2], [{ NetworkID: NET, EndpointID: EP1 }])).status, 200);
    assert.equal(store.state.endpoints[EP2]?.programmed, true);
  });

  it('a Revoke of a still-joined endpoint makes it a candidate again (Docker 28 programs it anew)', async () => {
    await network(NET, 0);
    const j = await joined(NET, EP1, 2, PORTS);
    await ok('NetworkDriver.ProgramExternalConnectivity', { NetworkID: NET, EndpointID: EP1, Options: PORTS });
    assert.match(refusal(await retry([j])), /no endpoint was joined \(or revoked\)/, 'programmed: not a candidate');
    await ok('NetworkDriver.RevokeExternalConnectivity', { NetworkID: NET, EndpointID: EP1 });
    // Its Join is older than RECENT_MS here: the Revoke alone makes it a candidate.
    const later = Date.now() + RECENT_MS + 1_000;
    const r = externalRetry(store.state, later, [j as never], [{ NetworkID: NET, EndpointID: EP1 }]);
    assert.equal(r.kind, 'redo');
    assert.equal(externalRetry(store.state, later, [j as never], []).kind, 'refuse', 'without the Revoke its Join is too old');
  });

  it('endpoints on an internal network and joins older than RECENT_MS are not candidates', async () => {
    await network(INTERNAL_NET, 1, true);
    await network(NET, 0);
    const internalJoin = await joined(INTERNAL_NET, EP2, 3, PORTS, 1);
    const j = await joined(NET, EP1, 2, NO_PORTS);
    assert.deepEqual(externalRetry(store.state, Date.now(), [j as never, internalJoin as never], []), { kind: 'redo', body: j });
    assert.equal(externalRetry(store.state, Date.now() + RECENT_MS + 1_000, [j as never], []).kind, 'refuse');
  });

  it('nothing joined: refused', async () => {
    assert.match(refusal(await retry([])), /no endpoint was joined/);
  });
});

describe('an empty Join retry that no journal entry matches', () => {
  const created = (net: string, ep: string, host: number) =>
    ok('NetworkDriver.CreateEndpoint', { NetworkID: net, EndpointID: ep, Interface: { Address: `10.213.0.${host}/24`, AddressIPv6: '', MacAddress: '' }, Options: NO_PORTS });

  it('one endpoint created and not joined: it is the call, answered as its own Join (its veth, the gateway) and joined', async () => {
    await network(NET, 0);
    await created(NET, EP1, 2);
    const r = await call(JOIN_RETRY, '');
    assert.deepEqual([r.status, r.json], [200, { InterfaceName: { SrcName: 'lnp-a8bbafba242', DstPrefix: 'eth' }, Gateway: '10.213.0.1' }]);
    assert.equal(store.state.endpoints[EP1]?.joined, true);
    assert.equal(store.state.endpoints[EP1]?.sandboxKey, '', 'its sandbox key is not known');
  });

  it('two created and not joined, and no call tells them apart: refused after the wait, naming both; nothing is appended', async () => {
    await network(NET, 0);
    await created(NET, EP1, 2);
    await created(NET, EP2, 3);
    const before = await types();
    assert.match(refusal(await call(JOIN_RETRY, '')), /2 endpoints were created .* \(a8bbafba2420, ed3b6944b979\).*no call told them apart/);
    assert.deepEqual(await types(), before);
  });

  it('two created and not joined: the retry waits; the other\'s own Join rules it out, and the retry is answered as the one left', async () => {
    await network(NET, 0);
    await created(NET, EP1, 2);
    await created(NET, EP2, 3);
    const pending = call(JOIN_RETRY, '');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(store.state.endpoints[EP1]?.joined, false, 'nothing picked while two could be it');
    // EP2's container goes on: its Join, with its body, comes meanwhile; and a third endpoint is made.
    const own = await ok('NetworkDriver.Join', { NetworkID: NET, EndpointID: EP2, SandboxKey: '/var/run/docker/netns/ed3b6944b979', Options: NO_PORTS });
    await created(NET, EP3, 4);
    const r = await pending;
    assert.deepEqual([r.status, r.json], [200, { InterfaceName: { SrcName: 'lnp-a8bbafba242', DstPrefix: 'eth' }, Gateway: '10.213.0.1' }]);
    assert.notDeepEqual(own['InterfaceName'], r.json['InterfaceName']);
    assert.equal(store.state.endpoints[EP1]?.joined, true);
    assert.equal(store.state.endpoints[EP3]?.joined, false, 'made after the retry came: never its target');
  });

  it('two created: one rolled back by Docker (DeleteEndpoint) leaves the other as the call', async () => {
    await network(NET, 0);
    await created(NET, EP1, 2);
    await created(NET, EP2, 3);
    const pending = call(JOIN_RETRY, '');
    await new Promise((r) => setTimeout(r, 100));
    await ok('NetworkDriver.DeleteEndpoint', { NetworkID: NET, EndpointID: EP1 });
    const r = await pending;
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(store.state.endpoints[EP2]?.joined, true);
  });

  it('a Join answered just before the crash (its reply may be lost) is a candidate too: the created one\'s own Join rules it out, and the retry is answered with the answered Join\'s own body, changing nothing', async () => {
    await network(NET, 0);
    const answered = await joined(NET, EP1, 2, NO_PORTS);
    await created(NET, EP2, 3);
    const pending = call(JOIN_RETRY, { answered: [answered] });
    await new Promise((r) => setTimeout(r, 100));
    const before = await types();
    await ok('NetworkDriver.Join', { NetworkID: NET, EndpointID: EP2, SandboxKey: '/var/run/docker/netns/ed3b6944b979', Options: NO_PORTS });
    const r = await pending;
    assert.deepEqual([r.status, r.json], [200, { InterfaceName: { SrcName: 'lnp-a8bbafba242', DstPrefix: 'eth' }, Gateway: '10.213.0.1' }]);
    assert.deepEqual((await types()).slice(before.length), ['endpoint.joined'], 'only EP2\'s own Join appended');
    assert.equal(store.state.endpoints[EP1]?.sandboxKey, '/var/run/docker/netns/a8bbafba2420', 'its sandbox key kept');
  });

  it('a Join answered just before the crash whose container went on (its gateway programmed): ruled out, the created one is the call', async () => {
    await network(NET, 0);
    const answered = await joined(NET, EP1, 2, NO_PORTS);
    await created(NET, EP2, 3);
    const pending = call(JOIN_RETRY, { answered: [answered] });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(store.state.endpoints[EP2]?.joined, false, 'nothing picked while two could be it');
    await ok('NetworkDriver.ProgramExternalConnectivity', { NetworkID: NET, EndpointID: EP1, Options: NO_PORTS });
    const r = await pending;
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json['InterfaceName'], { SrcName: 'lnp-ed3b6944b97', DstPrefix: 'eth' });
    assert.equal(store.state.endpoints[EP2]?.joined, true);
  });

  it('joined ones, lost ones and ones created longer ago than RECENT_MS are not candidates', async () => {
    await network(NET, 0);
    await joined(NET, EP1, 2, NO_PORTS);
    assert.match(refusal(await call(JOIN_RETRY, '')), /no endpoint was created/);
    await created(NET, EP2, 3);
    assert.equal(joinRetry(store.state, Date.now()).kind, 'redo');
    assert.equal(joinRetry(store.state, Date.now() + RECENT_MS + 1_000).kind, 'refuse');
  });
});

