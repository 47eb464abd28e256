// Which failures of a pass a Docker call is answered with (api/intent.ts): a host setting that could
// not be set (IPv6 forwarding) fails no call, as Docker's bridge driver only warns when it cannot
// turn it on; a global object every network needs (a hook) fails every call that needs it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { concernsEndpoint, concernsNetwork, concernsPorts } from '../../../src/api/intent.ts';
import type { Failure } from '../../../src/reconciler/apply.ts';

const NET = 'a'.repeat(64);
const EP = 'b'.repeat(64);
const shared = { networkId: null, endpointId: null };
const failure = (action: object): Failure => ({ action, message: 'EROFS: read-only file system' }) as Failure;
const forwarding = failure({ kind: 'sysctl.ipv6_forwarding', name: 'net.ipv6.conf.all.forwarding', owner: shared, reason: 'drifted' });
const hook = failure({ kind: 'hook.add', table: 'filter', from: 'FORWARD', rule: '-j LEDGERNET', owner: shared, reason: 'missing' });
const acceptRa = failure({ kind: 'bridge.accept_ra', name: 'lnb-aaaaaaaaaaa', owner: { networkId: NET, endpointId: null }, reason: 'drifted' });

describe('the failures a Docker call is answered with', () => {
  it('IPv6 forwarding that could not be turned on concerns no call', () => {
    for (const concerns of [concernsNetwork(NET), concernsPorts(EP), concernsEndpoint(NET, EP)]) assert.equal(concerns(forwarding), false);
  });

  it('a global hook concerns every network and every endpoint\'s ports; a bridge setting its own network only', () => {
    assert.equal(concernsNetwork(NET)(hook), true);
    assert.equal(concernsPorts(EP)(hook), true);
    assert.equal(concernsNetwork(NET)(acceptRa), true);
    assert.equal(concernsNetwork('c'.repeat(64))(acceptRa), false);
  });
});
