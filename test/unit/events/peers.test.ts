// Remote changes seen in the cluster's KV bucket become events in this host's log only when they
// change what the log knows; a host that leaves takes its endpoints along.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DriverError } from '../../../src/errors.ts';
import { decidePeerChange, evolvePeers, type PeerChange } from '../../../src/events/domain/peers.ts';

const ep = { host: 'h2', vtep: '10.231.200.2', endpointId: 'e1', address: '10.240.0.65', mac: '02:42:0a:f0:00:41' };

function apply(changes: PeerChange[]) {
  let peers = {};
  const events = [];
  for (const c of changes) {
    const evs = decidePeerChange(c, peers, 'h1');
    events.push(...evs);
    for (const e of evs) peers = evolvePeers(peers, e);
  }
  return { peers, events };
}

describe('peers', () => {
  it('a member and its endpoint: one event each; seen again (a watcher replaying): none', () => {
    const member: PeerChange = { op: 'member', cluster: 'blue', host: 'h2', member: { host: 'h2', vtep: '10.231.200.2' } };
    const endpoint: PeerChange = { op: 'endpoint', cluster: 'blue', host: 'h2', endpointId: 'e1', endpoint: ep };
    const { peers, events } = apply([member, endpoint, member, endpoint]);
    assert.deepEqual(events.map((e) => e.type), ['peer.member.joined', 'peer.endpoint.added']);
    assert.deepEqual(peers, { blue: { members: { h2: { host: 'h2', vtep: '10.231.200.2' } }, endpoints: { e1: ep } } });
  });

  it('an endpoint removed; a member that leaves takes its endpoints along', () => {
    const member: PeerChange = { op: 'member', cluster: 'blue', host: 'h2', member: { host: 'h2', vtep: '10.231.200.2' } };
    const add = (id: string): PeerChange => ({ op: 'endpoint', cluster: 'blue', host: 'h2', endpointId: id, endpoint: { ...ep, endpointId: id } });
    const { peers, events } = apply([
      member,
      add('e1'),
      add('e2'),
      { op: 'endpoint', cluster: 'blue', host: 'h2', endpointId: 'e1', endpoint: null },
      { op: 'member', cluster: 'blue', host: 'h2', member: null },
    ]);
    assert.deepEqual(events.slice(3).map((e) => e.type), ['peer.endpoint.removed', 'peer.endpoint.removed', 'peer.member.left']);
    assert.deepEqual(peers, { blue: { members: {}, endpoints: {} } });
  });

  it('a change that names this host is refused (two hosts under one --host)', () => {
    assert.throws(
      () => decidePeerChange({ op: 'member', cluster: 'blue', host: 'h1', member: { host: 'h1', vtep: '10.0.0.1' } }, {}, 'h1'),
      (e: unknown) => e instanceof DriverError && /another host runs under the same --host/.test(e.message),
    );
  });
});
