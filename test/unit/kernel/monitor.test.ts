import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { driftNotice, type OwnedLinks } from '../../../src/kernel/monitor.ts';

const isDriftNotice = (line: string, owned: OwnedLinks) => driftNotice(line, owned) !== null;

// Lines captured from `ip -o monitor link address` during `docker run --rm` on a ledgernet network
// and during hand-made drift.
// What main.ts passes: bridges, host-side veths and ifbs by name, a custom bridge; veths belong on a bridge.
const ours: OwnedLinks = { watched: (n) => /^ln[bvi]-/.test(n) || n === 'mybr0', bridged: (n) => n.startsWith('lnv-') };
const lines = {
  peerMoved: 'Deleted 2820: lnp-7c6bfb9fcaf@lnv-7c6bfb9fcaf: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default',
  carrier: '2821: lnv-7c6bfb9fcaf@if2820: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 master lnb-bbf92809104 state UP',
  linkLocal: 'Deleted 2821: lnv-7c6bfb9fcaf    inet6 fe80::2cf7:c8ff:febd:de30/64 scope link tentative',
  features: '2819: lnb-bbf92809104: <BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state UNKNOWN group default event FEATURES',
  bridgeDeleted: 'Deleted 2819: lnb-bbf92809104: <BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state UNKNOWN',
  bridgeDown: '2819: lnb-bbf92809104: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN group default',
  nomaster: '2821: lnv-7c6bfb9fcaf@if2820: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP',
  gwDeleted: 'Deleted 2819: lnb-bbf92809104    inet 10.231.26.1/24 scope global lnb-bbf92809104',
  customDown: '7: mybr0: <BROADCAST,MULTICAST> mtu 1500 qdisc noqueue state DOWN',
  foreign: 'Deleted 9: veth1234@if8: <BROADCAST,MULTICAST,UP> mtu 1500 master docker0 state UP',
};

describe('isDriftNotice', () => {
  it('ignores Docker moving peers, carrier changes, link-local addresses, feature events and foreign links', () => {
    for (const k of ['peerMoved', 'carrier', 'linkLocal', 'features', 'foreign'] as const) assert.equal(isDriftNotice(lines[k], ours), false, k);
  });
  it('reacts to our links deleted, set down, taken off the bridge, or losing an address', () => {
    for (const k of ['bridgeDeleted', 'bridgeDown', 'nomaster', 'gwDeleted', 'customDown'] as const) assert.equal(isDriftNotice(lines[k], ours), true, k);
    assert.deepEqual(driftNotice(lines.bridgeDeleted, ours), { name: 'lnb-bbf92809104', kind: 'deleted' });
    assert.deepEqual(driftNotice(lines.gwDeleted, ours), { name: 'lnb-bbf92809104', kind: 'addr-deleted' });
    assert.deepEqual(driftNotice(lines.nomaster, ours), { name: 'lnv-7c6bfb9fcaf', kind: 'nomaster' });
  });
});
