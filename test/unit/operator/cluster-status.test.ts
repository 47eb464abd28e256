// `ledgernet status`'s cluster part from a folded log and the daemon's view of the KV bucket.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from '../../../src/events/domain/commands.ts';
import { clusterStatus, clusterTables } from '../../../src/operator/cluster-status.ts';
import { EP_1, given, NET_A, networkSpec } from '../../helpers/events.ts';

const state = given(
  { type: 'RequestPool', request: { pool: '10.240.0.0/24', subPool: null, v6: false, defaults: { range: '10.231.0.0/16', size: 24 }, occupied: [], cluster: { name: 'blue', vni: 5000, blockLen: 26 } } },
  { type: 'CreateNetwork', spec: { ...networkSpec(NET_A, '10.240.0.0/24', '10.240.0.1/24'), options: { 'ledgernet.cluster': 'blue' } } },
  { type: 'PeerChange', change: { op: 'member', cluster: 'blue', host: 'h2', member: { host: 'h2', vtep: '10.231.200.2' } }, self: 'h1' },
  {
    type: 'PeerChange',
    change: { op: 'endpoint', cluster: 'blue', host: 'h2', endpointId: EP_1, endpoint: { host: 'h2', vtep: '10.231.200.2', endpointId: EP_1, address: '10.240.0.65', mac: '02:42:0a:f0:00:41' } },
    self: 'h1',
  } as Command,
);
const view = {
  host: 'h1',
  vtep: '10.231.200.1',
  hosts: [
    { host: 'h1', vtep: '10.231.200.1', lastSeen: '2026-11-30T10:00:00.000Z' },
    { host: 'h2', vtep: '10.231.200.2', lastSeen: '2026-11-30T09:59:50.000Z' },
  ],
  error: null,
  conflicts: [],
  forgotten: [],
};

describe('status: the cluster', () => {
  it('hosts with VTEP and last seen; per cluster network its subnet, VNI, members and remote endpoints', () => {
    const c = clusterStatus(state, view, null);
    assert.ok(c);
    assert.deepEqual(c.hosts?.map((h) => [h.host, h.self]), [['h1', true], ['h2', false]]);
    assert.deepEqual(c.networks, [
      {
        name: 'blue',
        networkId: NET_A,
        subnet: '10.240.0.0/24',
        vni: 5000,
        members: [{ host: 'h1', vtep: '10.231.200.1', self: true }, { host: 'h2', vtep: '10.231.200.2', self: false }],
        remoteEndpoints: [{ host: 'h2', vtep: '10.231.200.2', endpointId: EP_1, address: '10.240.0.65', mac: '02:42:0a:f0:00:41' }],
      },
    ]);
    assert.equal(
      clusterTables(c, Date.parse('2026-11-30T10:00:05.000Z')),
      [
        'CLUSTER HOST    VTEP          LAST SEEN',
        'h1 (this host)  10.231.200.1  2026-11-30T10:00:00.000Z (5 s ago)',
        'h2              10.231.200.2  2026-11-30T09:59:50.000Z (15 s ago)',
        '',
        'CLUSTER  NETWORK       SUBNET         VNI   MEMBERS (HOST VTEP)',
        'blue     aaaaaaaa0000  10.240.0.0/24  5000  h1 (this host) 10.231.200.1, h2 10.231.200.2',
        '',
        'REMOTE ENDPOINT  CLUSTER  HOST  ADDRESS      MAC                VTEP',
        'e1e1e1e12222     blue     h2    10.240.0.65  02:42:0a:f0:00:41  10.231.200.2',
        '',
      ].join('\n'),
    );
  });

  it('without the daemon: the log\'s members and endpoints, the recorded VTEP, and why the hosts are not known; nothing at all without cluster networks', () => {
    const c = clusterStatus(state, null, '10.231.200.1');
    assert.equal(c?.hosts, null);
    assert.deepEqual(c?.networks[0]?.members[0], { host: '(this host)', vtep: '10.231.200.1', self: true });
    assert.match(clusterTables(c!), /^cluster hosts: not known \(the daemon does not answer\); this host \?, VTEP 10\.231\.200\.1\n/);
    assert.equal(clusterStatus(given(), null, null), null);
  });

  it('hosts an operator forgot: in --json and a line each after the hosts', () => {
    const forgotten = [{ host: 'h3', by: 'h1', at: '2026-11-30T09:00:00.000Z', reason: 'disk died' }, { host: 'h4', by: 'h2', at: '2026-11-30T09:30:00.000Z' }];
    const c = clusterStatus(state, { ...view, forgotten }, null);
    assert.deepEqual(c?.forgotten, forgotten);
    const text = clusterTables(c!, Date.parse('2026-11-30T10:00:05.000Z'));
    assert.match(
      text,
      /h2 {14}10\.231\.200\.2 {2}2026-11-30T09:59:50\.000Z \(15 s ago\)\nforgotten: h3 \(by h1 at 2026-11-30T09:00:00\.000Z; reason: disk died\): refused if it comes back with its old cluster networks\nforgotten: h4 \(by h2 at 2026-11-30T09:30:00\.000Z\): refused/,
    );
  });

  it('what the KV bucket holds against the log: in --json and as conflict lines after the tables', () => {
    const clash = 'cluster network blue: block 10.240.0.0/26 is this host\'s (its log) but host h2\'s in the KV bucket: addresses of it may be on both';
    const c = clusterStatus(state, { ...view, conflicts: [clash] }, null);
    assert.deepEqual(c?.conflicts, [clash]);
    assert.ok(c && clusterTables(c, Date.parse('2026-11-30T10:00:05.000Z')).endsWith(`\nconflict: ${clash}\n`));
    assert.deepEqual(clusterStatus(state, view, null)?.conflicts, []);
  });
});

