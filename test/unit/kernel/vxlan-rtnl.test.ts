// VXLAN changes as rtnetlink requests (kernel/iproute/vxlan-rtnl.ts): the batches' order, what
// each FDB and neighbour request says, and bad values refused before anything is sent. The
// requests themselves are checked against ip and bridge in test/integration/vxlan-writes.test.ts.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeVxlanStep, vxlanSteps } from '../../../src/kernel/iproute/vxlan-rtnl.ts';
import type { VxlanChange } from '../../../src/kernel/iproute/vxlan.ts';
import type { Request } from '../../../src/kernel/rtnl-apply.ts';

const base = { owner: { networkId: 'n1', endpointId: null }, reason: 'missing' } as const;
const index = (name: string) => (name === 'lnx-a' ? 7 : 3);

describe('VXLAN changes as rtnetlink requests', () => {
  it('orders the steps as the batches ran: devices, then FDB and port flags, then neighbours, then deletions', () => {
    const changes: VxlanChange[] = [
      { ...base, kind: 'neigh.set', dev: 'lnb-a', dst: '10.1.0.2', lladdr: '02:00:00:00:00:02' },
      { ...base, kind: 'vxlan.delete', name: 'lnx-b', reason: 'orphan' },
      { ...base, kind: 'fdb.add', dev: 'lnx-a', mac: '00:00:00:00:00:00', dst: '192.0.2.2' },
      { ...base, kind: 'vxlan.create', name: 'lnx-a', alias: 'ledgernet:vxlan:n1', vni: 9, local: '192.0.2.1', mtu: 1450, master: 'lnb-a' },
    ];
    assert.deepEqual(
      vxlanSteps(changes).map((s) => [s.change, s.step.op]),
      [[3, 'vxlan.add'], [3, 'link.set'], [2, 'fdb.add'], [3, 'port.flags'], [0, 'neigh.set'], [1, 'link.del']],
    );
  });

  it('says self and permanent toward a VTEP (appended for the flood list), master and static on the bridge', () => {
    const head = (r: Request | string) => {
      assert.equal(typeof r, 'object');
      const { type, flags, body } = r as Request;
      return { type, flags, family: body.readUInt8(0), ifindex: body.readInt32LE(4), state: body.readUInt16LE(8), ntf: body.readUInt8(10) };
    };
    assert.deepEqual(head(encodeVxlanStep({ op: 'fdb.add', dev: 'lnx-a', mac: '00:00:00:00:00:00', dst: '192.0.2.2', append: true }, index)), { type: 28, flags: 0xc00, family: 7, ifindex: 7, state: 0xc0, ntf: 2 });
    assert.deepEqual(head(encodeVxlanStep({ op: 'fdb.add', dev: 'lnx-a', mac: '02:00:00:00:00:02', dst: '192.0.2.2', append: false }, index)), { type: 28, flags: 0x500, family: 7, ifindex: 7, state: 0xc0, ntf: 2 });
    assert.deepEqual(head(encodeVxlanStep({ op: 'fdb.add', dev: 'lnx-a', mac: '02:00:00:00:00:02', dst: null, append: false }, index)), { type: 28, flags: 0x500, family: 7, ifindex: 7, state: 0x42, ntf: 4 });
    assert.deepEqual(head(encodeVxlanStep({ op: 'fdb.del', dev: 'lnx-a', mac: '02:00:00:00:00:02', dst: null }, index)), { type: 29, flags: 0, family: 7, ifindex: 7, state: 0x40, ntf: 4 });
    assert.deepEqual(head(encodeVxlanStep({ op: 'neigh.set', dev: 'lnb-a', dst: '10.1.0.2', lladdr: '02:00:00:00:00:02' }, index)), { type: 28, flags: 0x500, family: 2, ifindex: 3, state: 0x80, ntf: 0 });
    assert.deepEqual(head(encodeVxlanStep({ op: 'neigh.del', dev: 'lnb-a', dst: 'fd00::2' }, index)), { type: 29, flags: 0, family: 10, ifindex: 3, state: 0x80, ntf: 0 });
  });

  it('refuses a bad MAC or address by name, before anything is sent', () => {
    assert.equal(encodeVxlanStep({ op: 'fdb.add', dev: 'lnx-a', mac: '02:00:00:00:00', dst: null, append: false }, index), '"02:00:00:00:00" is not a MAC address');
    assert.equal(encodeVxlanStep({ op: 'neigh.set', dev: 'lnb-a', dst: '10.1.0.2', lladdr: 'zz:00:00:00:00:02' }, index), '"zz:00:00:00:00:02" is not a MAC address');
    assert.equal(encodeVxlanStep({ op: 'fdb.del', dev: 'lnx-a', mac: '02:00:00:00:00:02', dst: '192.0.2' }, index), '"192.0.2" is not an address');
    assert.equal(encodeVxlanStep({ op: 'vxlan.add', name: 'lnx-a', mtu: 1450, vni: 9, local: 'host' }, index), '"host" is not an address');
  });
});
