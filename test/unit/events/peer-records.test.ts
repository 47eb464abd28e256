// Another host's member and endpoint keys as this ledgernet reads them (src/events/cluster/peer-records.ts):
// valid values are changes; a value with a bad field is its key's removal, with the field named.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readPeer } from '../../../src/events/cluster/peer-records.ts';

const EP = { host: 'h9', vtep: '10.98.0.9', endpointId: 'e1', address: '10.231.0.200', mac: '02:42:0a:e7:00:c8' };
const endpoint = (o: object, subnet: string | null = '10.231.0.0/24') => readPeer('endpoints.blue.h9.e1', JSON.stringify({ ...EP, ...o }), subnet);
const problem = (o: object, subnet?: string | null) => endpoint(o, subnet)?.problem;

describe('peer records of the cluster bucket', () => {
  it('reads a member and an endpoint (the VTEP may be IPv6), their deletes, and a host name escaped in the key', () => {
    assert.deepEqual(readPeer('members.blue.h9', '{"host":"h9","vtep":"10.98.0.9"}', null), { change: { op: 'member', cluster: 'blue', host: 'h9', member: { host: 'h9', vtep: '10.98.0.9' } }, problem: null });
    assert.deepEqual(readPeer('members.blue.h9', '{"vtep":"fd00::9"}', null)?.change, { op: 'member', cluster: 'blue', host: 'h9', member: { host: 'h9', vtep: 'fd00::9' } });
    assert.deepEqual(endpoint({}), { change: { op: 'endpoint', cluster: 'blue', host: 'h9', endpointId: 'e1', endpoint: EP }, problem: null });
    assert.deepEqual(readPeer('endpoints.blue.h9.e1', null, null), { change: { op: 'endpoint', cluster: 'blue', host: 'h9', endpointId: 'e1', endpoint: null }, problem: null });
    assert.equal(readPeer('members.blue.n1=2eexample', '{"vtep":"10.98.0.9"}', null)?.change.host, 'n1.example');
    assert.equal(problem({ address: '10.99.0.1' }, null), null, 'without the subnet, any plain IPv4 address');
  });

  it('drops a value with a bad field as the removal of its key, naming the field', () => {
    const removal = { op: 'endpoint', cluster: 'blue', host: 'h9', endpointId: 'e1', endpoint: null };
    assert.deepEqual(endpoint({ address: '10.231.0.200/24' }), { change: removal, problem: '"address" is "10.231.0.200/24", not a plain IPv4 address' });
    assert.equal(problem({ address: undefined, addresses: ['10.231.0.200'] }), '"address" is missing, not a plain IPv4 address');
    assert.equal(problem({ address: 'fd00::1' }), '"address" is "fd00::1", not a plain IPv4 address');
    assert.equal(problem({ address: '10.232.0.1' }), '"address" is "10.232.0.1", not an address of the network\'s subnet 10.231.0.0/24');
    assert.equal(problem({ address: '10.231.0.255' }), '"address" is "10.231.0.255", not an address of the network\'s subnet 10.231.0.0/24');
    assert.equal(problem({ mac: '01:00:5e:00:00:01' }), '"mac" is "01:00:5e:00:00:01", not a unicast MAC address');
    assert.equal(problem({ mac: '00:00:00:00:00:00' }), '"mac" is "00:00:00:00:00:00", not a unicast MAC address');
    assert.equal(problem({ mac: '02:42:0a:e7:00' }), '"mac" is "02:42:0a:e7:00", not a unicast MAC address');
    assert.equal(problem({ mac: undefined, macAddress: '02:42:0a:e7:00:c8' }), '"mac" is missing, not a unicast MAC address');
    assert.equal(problem({ vtep: 'h9.example' }), '"vtep" is "h9.example", not an IP address');
    assert.equal(problem({ vtep: '10.98.0.9/24' }), '"vtep" is "10.98.0.9/24", not an IP address');
    assert.deepEqual(readPeer('endpoints.blue.h9.e1', 'v2;10.231.0.200', null), { change: removal, problem: 'not a JSON object' });
    assert.deepEqual(readPeer('members.blue.h9', '{"vteps":["10.98.0.9"]}', null), { change: { op: 'member', cluster: 'blue', host: 'h9', member: null }, problem: '"vtep" is missing, not an IP address' });
    assert.equal(readPeer('members.blue.h9', '[]', null)?.problem, 'not a JSON object');
  });

  it('other keys are no peer change', () => {
    for (const key of ['networks.blue', 'blocks.blue.3', 'hosts.h9', 'members.blue', 'endpoints.blue.h9', 'endpoints.blue.h9.e1.x']) assert.equal(readPeer(key, '{}', null), null, key);
  });
});
