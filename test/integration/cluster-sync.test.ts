// Two hosts' logs kept in step through the cluster's KV bucket on a real nats-server: an endpoint
// created on h2 becomes peer.member.joined + peer.endpoint.added in h1's log, its deletion
// peer.endpoint.removed; h1 records nothing of a cluster it does not have, and nothing twice.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ClusterKv, peerChangeOf } from '../../src/events/cluster/kv.ts';
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

async function host(name: string, vtep: string) {
  const nc = await connect({ servers: nats.url });
  conns.push(nc);
  const kv = await ClusterKv.open(nc, { host: name, vtep, replicas: 1 });
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

  it('keys that are not a peer\'s, or hold no VTEP, are no change', () => {
    assert.equal(peerChangeOf('networks.blue', '{}'), null);
    assert.equal(peerChangeOf('members.blue.h2', '{"host":"h2"}'), null);
    assert.deepEqual(peerChangeOf('members.blue.h2', null), { op: 'member', cluster: 'blue', host: 'h2', member: null });
  });
});
