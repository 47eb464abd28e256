// A log written by a version before the one CIDR parser (issue 9, finding 7) may hold subnets
// such as 10.77.0.0/0024, fd00:77::%eth0/64 or 0.0.0.0/0, and options whose Docker alias
// disagrees. Such a log must still open, and the allocator must keep working.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_POOLS } from '../../../src/api/ipam.ts';
import { EventLog } from '../../../src/events/log/log.ts';
import { loadState, openStore } from '../../../src/events/log/open.ts';
import { upcastState } from '../../../src/events/log/upcast.ts';
import { emptyState, type NewEvent } from '../../../src/events/domain/types.ts';
import { EP_1, EP_2, NET_A, NET_B, endpointSpec, networkSpec, stamp } from '../../helpers/events.ts';
import { fold } from '../../../src/events/domain/evolve.ts';
import { byLedgernet } from '../../../src/events/domain/cause.ts';

const NET_C = 'c'.repeat(64);
const OLD: NewEvent[] = [
  {
    type: 'network.created',
    data: { ...networkSpec(NET_A, '10.77.0.0/0024', '10.77.0.1/0024'), options: { 'ledgernet.icc': 'true', 'com.docker.network.bridge.enable_icc': 'false' } },
  },
  { type: 'endpoint.created', data: endpointSpec(NET_A, EP_1, '10.77.0.2/0024') },
  {
    type: 'network.created',
    data: { ...networkSpec(NET_B, '10.78.0.0/24', '10.78.0.1/24'), ipv6: true, ipv6Data: [{ pool: 'fd00:77::%eth0/64', gateway: 'fd00:77::1%eth0/64', aux: {} }] },
  },
  { type: 'endpoint.created', data: { ...endpointSpec(NET_B, EP_2, '10.78.0.2/24'), addressV6: 'fd00:77::2%eth0/64' } },
  { type: 'network.created', data: { ...networkSpec(NET_C, '0.0.0.0/0', '0.0.0.1/0') } },
  { type: 'pool.requested', data: { poolId: 'ledgernet/0.0.0.0/0', pool: '0.0.0.0/0', subPool: null, v6: false, auto: false } },
];

describe('old states are read leniently (upcastState)', () => {
  it('a clean state comes back as it is, without warnings', () => {
    const { state, warnings } = upcastState({ ...emptyState });
    assert.deepEqual(warnings, []);
    assert.equal(state.networks, emptyState.networks, 'a clean state is returned as it is');
  });

  it("a network's AddressSpace is kept as recorded, and one recorded without it stays without it, without warnings", () => {
    const spaced = networkSpec(NET_A);
    const state = fold(emptyState, stamp([
      { type: 'network.created', data: { ...spaced, ipv4Data: spaced.ipv4Data.map((d) => ({ ...d, addressSpace: 'LocalDefault' })) } },
      { type: 'network.created', data: networkSpec(NET_B, '10.78.0.0/24', '10.78.0.1/24') },
    ], emptyState));
    const { state: read, warnings } = upcastState(state);
    assert.deepEqual(warnings, []);
    assert.equal(read.networks[NET_A]?.ipv4Data[0]?.addressSpace, 'LocalDefault');
    assert.equal('addressSpace' in (read.networks[NET_B]?.ipv4Data[0] ?? {}), false);
  });

  it('a log holding such records opens, says what it changed, and automatic pools still work', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ln-upcast-'));
    try {
      const { log } = await EventLog.open(dir, { host: 'old' });
      await log.append(OLD).durable;
      await log.close();

      const { store, state, warnings } = await openStore(dir, { host: 'old' });
      try {
        assert.deepEqual(state.networks[NET_A]?.ipv4Data, [{ pool: '10.77.0.0/24', gateway: '10.77.0.1/24', aux: {} }]);
        assert.deepEqual(state.networks[NET_A]?.options, { 'ledgernet.icc': 'true' });
        assert.equal(state.endpoints[EP_1]?.address, '10.77.0.2/24');
        assert.deepEqual(state.networks[NET_B]?.ipv6Data, [{ pool: 'fd00:77::/64', gateway: 'fd00:77::1/64', aux: {} }]);
        assert.equal(state.endpoints[EP_2]?.addressV6, 'fd00:77::2/64');
        assert.deepEqual(state.networks[NET_C]?.ipv4Data, [], 'the 0.0.0.0/0 subnet is ignored');
        assert.deepEqual(state.pools, {}, 'the 0.0.0.0/0 pool is ignored');
        const text = warnings.join('\n');
        for (const w of ['"10.77.0.0/0024"', 'enable_icc', 'fd00:77::%eth0/64', '"0.0.0.0/0" is ignored (it is wider than /8', 'IPAM pool "0.0.0.0/0" is ignored']) {
          assert.ok(text.includes(w), `warning about ${w} in:\n${text}`);
        }
        const pools = [];
        for (let i = 0; i < 3; i++) {
          const events = await store.execute({
            type: 'RequestPool',
            request: { pool: null, subPool: null, v6: i === 2, defaults: i === 2 ? DEFAULT_POOLS.v6 : DEFAULT_POOLS.v4, occupied: [] },
          }, byLedgernet('test'));
          pools.push(events[0]?.type === 'pool.requested' ? events[0].data.pool : '?');
        }
        assert.deepEqual(pools, ['10.231.0.0/24', '10.231.1.0/24', 'fd00:231::/64']);
      } finally {
        await store.close();
      }
      // Readers (status, reconcile --dry-run) see the same.
      assert.equal((await loadState(dir)).networks[NET_A]?.ipv4Data[0]?.pool, '10.77.0.0/24');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
