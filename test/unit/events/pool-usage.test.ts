// The IPAM usage fold behind `ledgernet status` (pools table, `status --json` pools[]): the
// state after the calls Docker makes for `docker network create --ipam-driver ledgernet …` and
// `docker run`, folded into in use / reserved / available per pool.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from '../../../src/events/domain/commands.ts';
import { poolUsage } from '../../../src/events/domain/pool-usage.ts';
import { NET_A, given, networkSpec } from '../../helpers/events.ts';

const DEFAULTS = { range: '10.231.0.0/16', size: 24 };
const POOL = 'ledgernet/10.231.40.0/24';

const pool = (cidr: string, subPool: string | null = null, v6 = false): Command => ({
  type: 'RequestPool',
  request: { pool: cidr, subPool, v6, defaults: DEFAULTS, occupied: [] },
});
const address = (poolId: string, at: string | null, gateway = false, name: string | null = null): Command => ({
  type: 'RequestAddress',
  poolId,
  address: at,
  gateway,
  name,
});
const release = (poolId: string, at: string): Command => ({ type: 'ReleaseAddress', poolId, address: at });

/** `--subnet 10.231.40.0/24 --ip-range 10.231.40.128/25 --gateway 10.231.40.1 --aux-address router=10.231.40.5`. */
const network: Command[] = [
  pool('10.231.40.0/24', '10.231.40.128/25'),
  address(POOL, '10.231.40.1', true),
  address(POOL, '10.231.40.5'),
  {
    type: 'CreateNetwork',
    spec: { ...networkSpec(NET_A, '10.231.40.0/24', '10.231.40.1/24'), ipv4Data: [{ pool: '10.231.40.0/24', gateway: '10.231.40.1/24', aux: { router: '10.231.40.5/24' } }] },
  },
];

describe('IPAM usage per pool', () => {
  it('a new network: the gateway and the aux address are reserved, nothing in use, the whole --ip-range free', () => {
    const [u] = poolUsage(given(...network));
    assert.ok(u);
    assert.equal(u.pool, '10.231.40.0/24');
    assert.equal(u.subPool, '10.231.40.128/25');
    assert.equal(u.networkId, NET_A);
    assert.equal(u.size, 254n, 'a /24 less its network and broadcast address');
    assert.equal(u.inUse, 0);
    assert.equal(u.reserved, 2, 'gateway and --aux-address');
    assert.equal(u.available, 127n, 'the /25 range less the broadcast address (gateway and aux lie outside it)');
  });

  it('containers take addresses: in use goes up and free goes down; a release gives it back', () => {
    const two = given(...network, address(POOL, null, false, 'web'), address(POOL, null));
    const [u] = poolUsage(two);
    assert.equal(u?.inUse, 2);
    assert.equal(u?.available, 125n);
    assert.equal(u?.reserved, 2);

    // A static --ip outside the --ip-range is in use but takes nothing from the free range.
    const [s] = poolUsage(given(...network, address(POOL, '10.231.40.77')));
    assert.equal(s?.inUse, 1);
    assert.equal(s?.available, 127n);

    const [r] = poolUsage(given(...network, address(POOL, null), release(POOL, '10.231.40.128')));
    assert.equal(r?.inUse, 0);
    assert.equal(r?.available, 127n, 'a released address is free again');
  });

  it('a pool without a network yet, a full small pool, and an IPv6 pool; IPv4 pools come first', () => {
    const state = given(
      pool('fd00:231:41::/64', null, true),
      pool('10.231.42.0/30'),
      address('ledgernet/10.231.42.0/30', '10.231.42.1', true),
      address('ledgernet/10.231.42.0/30', null),
    );
    const usage = poolUsage(state);
    assert.deepEqual(
      usage.map((u) => u.pool),
      ['10.231.42.0/30', 'fd00:231:41::/64'],
    );
    const [small, v6] = usage;
    assert.equal(small?.networkId, null);
    assert.equal(small?.size, 2n);
    assert.deepEqual([small?.inUse, small?.reserved, small?.available], [1, 1, 0n], 'exhausted: nothing free');
    assert.equal(v6?.v6, true);
    assert.equal(v6?.size, 2n ** 64n - 1n, 'IPv6: no broadcast, only the subnet-router anycast address is kept back');
    assert.equal(v6?.available, 2n ** 64n - 1n);
  });

  it('no ledgernet IPAM pools: an empty list', () => {
    assert.deepEqual(poolUsage(given({ type: 'CreateNetwork', spec: networkSpec(NET_A) })), []);
  });
});
