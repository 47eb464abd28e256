// A cluster network's record as this ledgernet reads it (src/events/cluster/network-record.ts):
// records of this format (with or without `v`) are read with their unknown fields kept; any other
// is refused with why, and the subnets written in it are kept (taken) all the same.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readNetwork, unreadableNetwork } from '../../../src/events/cluster/network-record.ts';

const current = { name: 'blue', subnet: '10.231.0.0/24', vni: 4777608, blockLen: 26, createdBy: 'h1', hosts: ['h1', 'h2'] };
const why = (value: string, name = 'blue') => {
  const r = readNetwork(name, value);
  return r.ok ? 'read' : `${r.why} | ${r.subnets.join(',')}`;
};

describe('network records of the cluster bucket', () => {
  it('reads a record written before the format field, one of this format, and one without hosts (an older ledgernet), keeping unknown fields', () => {
    const before = readNetwork('blue', JSON.stringify(current));
    assert.deepEqual(before.ok && before.record, current);
    const now = readNetwork('blue', JSON.stringify({ ...current, v: 1, mtu: 1400 }));
    assert.deepEqual(now.ok && [now.record, now.fields['mtu']], [current, 1400]);
    const { hosts: _h, ...older } = current;
    const old = readNetwork('blue', JSON.stringify(older));
    assert.deepEqual(old.ok && old.record, older);
    const noCreator = readNetwork('blue', JSON.stringify({ ...current, createdBy: undefined }));
    assert.equal(noCreator.ok && noCreator.record.createdBy, 'unknown');
  });

  it('refuses a newer format, values that are not JSON or not an object, and each field that is missing or wrong, keeping the subnets written in it', () => {
    const rec = (o: object) => JSON.stringify({ ...current, ...o });
    assert.equal(why(rec({ v: 2 })), 'format 2; this ledgernet reads format 1 | 10.231.0.0/24');
    assert.equal(why(rec({ v: '2' })), 'its format "v" is "2" | 10.231.0.0/24');
    assert.equal(why('v2:blue;10.231.5.0/24 10.231.5.0/24'), 'not JSON | 10.231.5.0/24');
    assert.equal(why('["10.231.5.0/24"]'), 'not a JSON object | 10.231.5.0/24');
    assert.equal(why('null'), 'not a JSON object | ');
    assert.equal(why(rec({ subnet: undefined, subnets: ['10.231.5.0/24', '10.231.6.0/24'] })), '"subnet" is missing, not an IPv4 subnet | 10.231.5.0/24,10.231.6.0/24');
    assert.equal(why(rec({ subnet: '10.231.0.1/24' })), '"subnet" is "10.231.0.1/24", not an IPv4 subnet | 10.231.0.1/24');
    assert.equal(why(rec({ subnet: 'fd00::/64' })), '"subnet" is "fd00::/64", not an IPv4 subnet | ');
    assert.equal(why(rec({ name: 'red' })), '"name" is "red", not "blue" | 10.231.0.0/24');
    assert.equal(why(rec({ vni: 0 })), '"vni" is 0, not a VNI | 10.231.0.0/24');
    assert.equal(why(rec({ vni: 1 << 24 })), '"vni" is 16777216, not a VNI | 10.231.0.0/24');
    assert.equal(why(rec({ blockLen: 20 })), '"blockLen" is 20, not a prefix length within 10.231.0.0/24 | 10.231.0.0/24');
    assert.equal(why(rec({ blockLen: '26' })), '"blockLen" is "26", not a prefix length within 10.231.0.0/24 | 10.231.0.0/24');
    assert.equal(why(rec({ hosts: 'h1' })), '"hosts" is "h1", not a list of host names | 10.231.0.0/24');
    assert.equal(why(rec({ hosts: [1] })), '"hosts" is [1], not a list of host names | 10.231.0.0/24');
  });

  it('names the key, why and what to do in the refusal', () => {
    const e = unreadableNetwork('networks.future', 'format 2; this ledgernet reads format 1');
    assert.equal(e.code, 'LN_ERR_CLUSTER_RECORD');
    assert.equal(
      e.message,
      "networks.future in the cluster's KV bucket is in a format this ledgernet does not read (format 2; this ledgernet reads format 1); upgrade ledgernet on this host (a newer one wrote it), or repair or remove the record if it was edited by hand",
    );
  });
});
