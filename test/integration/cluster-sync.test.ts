// Two hosts' logs kept in step through the cluster's KV bucket on a real nats-server: an endpoint
// created on h2 becomes peer.member.joined + peer.endpoint.added in h1's log, its deletion
// peer.endpoint.removed; h1 records nothing of a cluster it does not have, and nothing twice.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { ClusterKv } from '../../src/events/cluster/kv.ts';
import { readPeer } from '../../src/events/cluster/peer-records.ts';
import { syncCluster } from '../../src/events/cluster/sync.ts';
import type { Command } from '../../src/events/domain/commands.ts';
import { decide } from '../../src/events/domain/decide.ts';
import { fold } from '../../src/events/domain/evolve.ts';
import { emptyState, type State, type StoredEvent } from '../../src/events/domain/types.ts';
import { waitFor } from '../helpers/docker.ts';
import { endpointSpec, NET_A, networkSpec, stamp } from '../helpers/events.ts';
import { createNatsServer, type NatsServer } from '../helpers/nats.ts';
import { byLedgernet } from '../../src/events/domain/cause.ts';

/** A log in memory: decide, stamp, fold, tell the listeners. */
function memoryStore() {
  const listeners: ((events: readonly StoredEvent[], state: State) => void)[] = [];
  const store = {
    state: emptyState as State,
    log: [] as StoredEvent[],
    async execute(cmd: Command, _cause?: unknown) {
      const events = stamp(decide(cmd, store.state), store.state);
      store.state = fold(store.state, events);
      store.log.push(...events);
      for (const l of listeners) l(events, store.state);
      return events;
    },
    onEvents: (l: (events: readonly StoredEvent[], state: State) => void) => void listeners.push(l),
  };
  return store;
}

const BLUE: Command[] = [
  { type: 'RequestPool', request: { pool: '10.240.0.0/24', subPool: null, v6: false, defaults: { range: '10.231.0.0/16', size: 24 }, occupied: [], cluster: { name: 'blue', vni: 5000, blockLen: 26 } } },
  { type: 'CreateNetwork', spec: { ...networkSpec(NET_A, '10.240.0.0/24', '10.240.0.1/24'), options: { 'ledgernet.cluster': 'blue' } } },
];

let nats: NatsServer;
const conns: NatsConnection[] = [];
const stops: { stop(): void }[] = [];
before(async () => {
  nats = await createNatsServer();
});
after(async () => {
  for (const s of stops) s.stop();
  for (const nc of conns) await nc.close();
  await nats?.stop();
});

async function host(name: string, vtep: string, warned: { key?: string; msg: string }[] = []) {
  const nc = await connect({ servers: nats.url });
  conns.push(nc);
  const log = { info: () => undefined, warn: (o: object, msg: string) => void warned.push({ ...(o as { key?: string }), msg }) };
  const kv = await ClusterKv.open(nc, { host: name, vtep, replicas: 1, log });
  const store = memoryStore();
  const errors: unknown[] = [];
  stops.push(await syncCluster({ kv, store, host: name, onError: (e) => errors.push(e) }));
  return { kv, store, errors };
}

describe('cluster sync through the KV bucket', () => {
  it('h2\'s endpoint appears in h1\'s log as peer events and goes again; nothing is recorded twice', async () => {
    const h1 = await host('h1', '192.0.2.1');
    const h2 = await host('h2', '192.0.2.2');
    for (const c of BLUE) await h1.store.execute(c, byLedgernet('test'));
    for (const c of BLUE) await h2.store.execute(c, byLedgernet('test'));
    await h2.kv.joinNetwork({ name: 'blue', subnet: '10.240.0.0/24', propose: () => 'unused' });
    const ep = { ...endpointSpec(NET_A, 'e2'.repeat(32)), address: '10.240.0.66/24', mac: '02:42:0a:f0:00:42' };
    await h2.store.execute({ type: 'CreateEndpoint', spec: ep }, byLedgernet('test'));
    const peers = () => h1.store.state.peers?.['blue'];
    await waitFor(() => peers()?.endpoints[ep.endpointId], { timeoutMs: 5_000, what: 'h2\'s endpoint in h1\'s log' });
    assert.deepEqual(peers()?.members, { h2: { host: 'h2', vtep: '192.0.2.2' } });
    assert.deepEqual(peers()?.endpoints[ep.endpointId], { host: 'h2', vtep: '192.0.2.2', endpointId: ep.endpointId, address: '10.240.0.66', mac: '02:42:0a:f0:00:42' });
    await h2.store.execute({ type: 'DeleteEndpoint', networkId: NET_A, endpointId: ep.endpointId }, byLedgernet('test'));
    await waitFor(() => peers() && Object.keys(peers()!.endpoints).length === 0, { timeoutMs: 5_000, what: 'the endpoint gone from h1\'s log' });
    const types = h1.store.log.map((e) => e.type).filter((t) => t.startsWith('peer.'));
    assert.deepEqual(types, ['peer.member.joined', 'peer.endpoint.added', 'peer.endpoint.removed']);
    assert.equal(h2.store.state.peers, undefined, 'h2 records nothing of itself');
    assert.deepEqual([...h1.errors, ...h2.errors], []);
  });

  it('keys that are not a peer\'s are no change; one that holds no VTEP is its removal', () => {
    assert.equal(readPeer('networks.blue', '{}', null), null);
    const gone = { op: 'member', cluster: 'blue', host: 'h2', member: null };
    assert.deepEqual(readPeer('members.blue.h2', '{"host":"h2"}', null), { change: gone, problem: '"vtep" is missing, not an IP address' });
    assert.deepEqual(readPeer('members.blue.h2', null, null), { change: gone, problem: null });
  });

  it("another host's records with bad values are dropped at the boundary, said once per key naming the key and the field, and a valid endpoint that turns bad is removed", async () => {
    const warned: { key?: string; msg: string }[] = [];
    const h1 = await host('h1', '192.0.2.1', warned);
    const red: Command[] = [
      { type: 'RequestPool', request: { pool: '10.241.0.0/24', subPool: null, v6: false, defaults: { range: '10.231.0.0/16', size: 24 }, occupied: [], cluster: { name: 'red', vni: 5001, blockLen: 26 } } },
      { type: 'CreateNetwork', spec: { ...networkSpec('b'.repeat(64), '10.241.0.0/24', '10.241.0.1/24'), options: { 'ledgernet.cluster': 'red' } } },
    ];
    for (const c of red) await h1.store.execute(c, byLedgernet('test'));
    await h1.kv.joinNetwork({ name: 'red', subnet: '10.241.0.0/24', propose: () => 'unused' });
    const bucket = await new Kvm(conns[0]!).open('ledgernet-cluster');
    const ep = (id: string, o: object) => JSON.stringify({ host: 'h9', vtep: '192.0.2.9', endpointId: id, address: '10.241.0.200', mac: '02:42:0a:f1:00:c8', ...o });
    await bucket.put('members.red.h9', JSON.stringify({ host: 'h9', vtep: '192.0.2.9' }));
    await bucket.put('members.red.h8', JSON.stringify({ host: 'h8', vteps: ['192.0.2.8'] })); // a field renamed by another version
    await bucket.put('endpoints.red.h9.e9000001', ep('e9000001', { address: '10.241.0.200/24' }));
    await bucket.put('endpoints.red.h9.e9000002', ep('e9000002', { address: '10.241.0.201', mac: '02:42:0a:f1:00:c9' }));
    await bucket.put('endpoints.red.h9.e9000003', ep('e9000003', { address: '10.99.0.3', mac: '02:42:0a:f1:00:ca' }));
    await bucket.put('endpoints.red.h9.e9000004', ep('e9000004', { address: '10.241.0.204', mac: '01:00:5e:00:00:01' }));
    await bucket.put('endpoints.red.h9.e9000005', ep('e9000005', { address: '10.241.0.205', mac: '02:42:0a:f1:00:cd', vtep: 'h9.example' }));
    await bucket.put('endpoints.red.h9.e9000006', '{"host":"h9"');
    const peers = () => h1.store.state.peers?.['red'];
    await waitFor(() => peers()?.endpoints['e9000002'], { timeoutMs: 5_000, what: "h9's valid endpoint in h1's log" });
    // Written again with the same bad values: said once all the same.
    await bucket.put('endpoints.red.h9.e9000001', ep('e9000001', { address: '10.241.0.200/24' }));
    const problems = {
      'members.red.h8': '"vtep" is missing, not an IP address',
      'endpoints.red.h9.e9000001': '"address" is "10.241.0.200/24", not a plain IPv4 address',
      'endpoints.red.h9.e9000003': '"address" is "10.99.0.3", not an address of the network\'s subnet 10.241.0.0/24',
      'endpoints.red.h9.e9000004': '"mac" is "01:00:5e:00:00:01", not a unicast MAC address',
      'endpoints.red.h9.e9000005': '"vtep" is "h9.example", not an IP address',
      'endpoints.red.h9.e9000006': 'not a JSON object',
    };
    await waitFor(() => warned.filter((w) => w.key?.startsWith('endpoints.') || w.key?.startsWith('members.')).length >= Object.keys(problems).length, { timeoutMs: 5_000, what: 'the warnings' });
    // Let the rewrite of e9000001 arrive too (a later valid endpoint is the marker).
    await bucket.put('endpoints.red.h9.e9000007', ep('e9000007', { address: '10.241.0.207', mac: '02:42:0a:f1:00:cf' }));
    await waitFor(() => peers()?.endpoints['e9000007'], { timeoutMs: 5_000, what: 'the marker endpoint' });
    for (const [key, problem] of Object.entries(problems)) {
      const said = warned.filter((w) => w.key === key);
      assert.equal(said.length, 1, `${key} said once: ${JSON.stringify(said)}`);
      assert.equal(said[0]!.msg, `cluster: ${key} dropped: ${problem}; taken as removed (this host does not send to what it names) until its host writes it again`);
    }
    assert.deepEqual(Object.keys(peers()!.endpoints).sort(), ['e9000002', 'e9000007']);
    assert.deepEqual(Object.keys(peers()!.members), ['h9']);
    // A valid endpoint written again unreadable (a newer version's field name) is removed, not kept at its old value.
    await bucket.put('endpoints.red.h9.e9000002', JSON.stringify({ host: 'h9', vtep: '192.0.2.9', endpointId: 'e9000002', addresses: ['10.241.0.201'], mac: '02:42:0a:f1:00:c9' }));
    await waitFor(() => !peers()?.endpoints['e9000002'], { timeoutMs: 5_000, what: 'the endpoint removed' });
    assert.ok(h1.store.log.some((e) => e.type === 'peer.endpoint.removed' && e.data.endpointId === 'e9000002'));
    assert.equal(warned.filter((w) => w.key === 'endpoints.red.h9.e9000002').length, 1);
    assert.deepEqual(h1.errors, []);
  });
});
