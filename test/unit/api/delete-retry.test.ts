// Docker's empty-body retry of a DeleteEndpoint cut off before it was journaled is answered `{}`
// (src/api/delete-retry.ts); endpoints still not deleted LEFT_MS after their Leave are deleted
// (src/operator/left-endpoints.ts). Over the real plugin and log, with a fake kernel.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { DELETE_RETRY } from '../../../src/api/delete-retry.ts';
import { LEFT_MS, leftUndeleted, startLeftSweeper } from '../../../src/operator/left-endpoints.ts';
import { DELETE_RETRY as SUPERVISOR_SPELLING } from '../../../src/supervisor/retries.ts';
import { readLog } from '../../../src/events/log/read.ts';
import type { EventStore } from '../../../src/events/log/store.ts';
import { pluginHarness, type PluginHarness } from '../../helpers/plugin-harness.ts';

const NET = '404f6704c3ccdc6e4d2ec4a484462b64600d586ecb6b5dda50c4010a8d5973be';
const EP1 = 'a8bbafba2420888ea04df22510037f17cb4829a8b6632a407ffb32281a344e8d';
const EP2 = 'ed3b6944b97936a3ac300a0a77308f79a05ff6dbd2949f55ca1d7145572908c4';
const EP3 = '5be0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8';

let harness: PluginHarness;
let store: EventStore;

beforeEach(async () => {
  harness = await pluginHarness('ln-delretry-');
  store = harness.store;
});
afterEach(() => harness.close());

const ok = async (method: string, body: unknown): Promise<Record<string, unknown>> => {
  const r = await harness.call(method, body);
  assert.equal(r.status, 200, `${method}: ${JSON.stringify(r.json)}`);
  return r.json;
};
const ids = { NetworkID: NET };

async function endpoint(ep: string, host: number, join: boolean): Promise<void> {
  await ok('NetworkDriver.CreateEndpoint', { ...ids, EndpointID: ep, Interface: { Address: `10.213.0.${host}/24`, AddressIPv6: '', MacAddress: '' }, Options: {} });
  if (join) await ok('NetworkDriver.Join', { ...ids, EndpointID: ep, SandboxKey: `/var/run/docker/netns/${ep.slice(0, 12)}`, Options: {} });
}

describe('an empty DeleteEndpoint retry that no journal entry matches', () => {
  beforeEach(async () => {
    await ok('NetworkDriver.CreateNetwork', {
      ...ids,
      Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': {} },
      IPv4Data: [{ AddressSpace: 'LocalDefault', Gateway: '10.213.0.1/24', Pool: '10.213.0.0/24' }],
      IPv6Data: [],
    });
  });

  it('leftUndeleted: only endpoints that left at least LEFT_MS ago and did not join again', async () => {
    await endpoint(EP1, 2, true);
    await endpoint(EP2, 3, true);
    await endpoint(EP3, 4, false);
    await ok('NetworkDriver.Leave', { ...ids, EndpointID: EP1 });
    const left = Date.parse(store.state.endpoints[EP1]?.leftAt ?? '');
    assert.ok(Number.isFinite(left), 'the Leave is recorded with its time');
    assert.deepEqual(leftUndeleted(store.state, left + LEFT_MS), [{ networkId: NET, endpointId: EP1 }]);
    assert.deepEqual(leftUndeleted(store.state, left + LEFT_MS - 1), [], 'not before LEFT_MS');
    await ok('NetworkDriver.Join', { ...ids, EndpointID: EP1, SandboxKey: '/var/run/docker/netns/x', Options: {} });
    assert.equal(store.state.endpoints[EP1]?.leftAt, undefined, 'joined again (a sandbox Refresh): no longer left');
    assert.deepEqual(leftUndeleted(store.state, left + LEFT_MS), []);
  });

  it('the retry is answered {} at once and changes nothing', async () => {
    assert.equal(SUPERVISOR_SPELLING, DELETE_RETRY, 'the supervisor asks for the call the worker serves');
    await endpoint(EP1, 2, true);
    const before = (await readLog(harness.dir)).events.length;
    assert.deepEqual(await ok(DELETE_RETRY, ''), {});
    assert.equal((await readLog(harness.dir)).events.length, before);
  });

  it('the sweeper deletes an endpoint that left and was never deleted; joined and never-joined ones stay', async () => {
    await endpoint(EP1, 2, true);
    await endpoint(EP2, 3, true);
    await endpoint(EP3, 4, false);
    await ok('NetworkDriver.Leave', { ...ids, EndpointID: EP1 });
    const passes: string[] = [];
    const stop = startLeftSweeper({ store, converge: (t) => passes.push(t), log: { warn: () => undefined, error: () => undefined }, leftMs: 2_000, intervalMs: 50 });
    try {
      // (leftMs once 300: a slow fsync of the Leave plus a late timer on a busy CI ate the 150 ms margin.)
      await new Promise((r) => setTimeout(r, 150));
      assert.ok(store.state.endpoints[EP1], 'not before leftMs');
      for (let i = 0; i < 500 && store.state.endpoints[EP1]; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(store.state.endpoints[EP1], undefined, 'deleted');
      assert.deepEqual(passes, ['lost DeleteEndpoint'], 'a pass removes its veth and rules');
      assert.ok(store.state.endpoints[EP2]?.joined, 'the joined one stays');
      assert.ok(store.state.endpoints[EP3], 'the one between CreateEndpoint and Join stays');
      assert.deepEqual((await readLog(harness.dir)).events.map((e) => e.type).slice(-1), ['endpoint.deleted']);
      // Docker's own DeleteEndpoint for it, if it still comes, is answered as for any endpoint already gone.
      await ok('NetworkDriver.DeleteEndpoint', { ...ids, EndpointID: EP1 });
    } finally {
      await stop();
    }
  });
});
