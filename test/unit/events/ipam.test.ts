// The IPAM allocator: pure decide + evolve over the folded state. Property tests drive random
// request/release sequences and check that no address is ever handed out twice, none leaves
// its pool (or --ip-range), and fresh addresses go before released ones.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DriverError } from '../../../src/errors.ts';
import { contains, parseIp, parsePrefix } from '../../../src/events/domain/cidr.ts';
import type { Command, PoolRequest } from '../../../src/events/domain/commands.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { fold } from '../../../src/events/domain/evolve.ts';
import { eventHash } from '../../../src/events/log/hash.ts';
import { emptyState, type NewEvent, type State, type StoredEvent } from '../../../src/events/domain/types.ts';
import { EP_1, NET_A, NET_B, endpointSpec, networkSpec, stamp } from '../../helpers/events.ts';


/** Runs one command against the state like the store does; returns the new state and events. */
function run(state: State, cmd: Command): { state: State; events: StoredEvent[] } {
  const events = stamp(decide(cmd, state), state);
  return { state: fold(state, events), events };
}

const DEFAULTS = { range: '10.231.0.0/16', size: 24 };
const req = (pool: string | null, extra: Partial<PoolRequest> = {}): Command => ({
  type: 'RequestPool',
  request: { pool, subPool: null, v6: false, defaults: DEFAULTS, occupied: [], ...extra },
});
const addr = (poolId: string, address: string | null = null, gateway = false): Command => ({
  type: 'RequestAddress',
  poolId,
  address,
  gateway,
  name: null,
});

function allocated(events: readonly StoredEvent[]): string {
  const e = events.find((x) => x.type === 'address.requested');
  assert.ok(e && e.type === 'address.requested');
  return e.data.address;
}

/** The PoolID a pool.requested event recorded ('' for any other event). */
function poolOf(e: StoredEvent | undefined): string {
  return e?.type === 'pool.requested' ? e.data.poolId : '';
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof DriverError) return e.code;
    throw e;
  }
  return 'ok';
}

describe('IPAM allocator (examples)', () => {
  it('gives the gateway the first address, then fresh addresses in order', () => {
    let s = run(emptyState, req('10.231.50.0/24')).state;
    const id = 'ledgernet/10.231.50.0/24';
    let r = run(s, addr(id, null, true));
    assert.equal(allocated(r.events), '10.231.50.1');
    r = run(r.state, addr(id));
    assert.equal(allocated(r.events), '10.231.50.2');
    s = run(r.state, { type: 'ReleaseAddress', poolId: id, address: '10.231.50.2' }).state;
    r = run(s, addr(id));
    assert.equal(allocated(r.events), '10.231.50.3', 'a just-released address is not handed out next');
  });

  it('reuses the least recently released address once the fresh ones are gone', () => {
    let s = run(emptyState, req('10.231.51.0/29')).state; // usable .1–.6
    const id = 'ledgernet/10.231.51.0/29';
    for (let i = 0; i < 6; i++) s = run(s, addr(id)).state;
    assert.equal(code(() => decide(addr(id), s)), 'LN_ERR_IPAM_EXHAUSTED');
    assert.throws(() => decide(addr(id), s), /pool 10\.231\.51\.0\/29 is exhausted: all 6 usable addresses/);
    s = run(s, { type: 'ReleaseAddress', poolId: id, address: '10.231.51.5' }).state;
    s = run(s, { type: 'ReleaseAddress', poolId: id, address: '10.231.51.2' }).state;
    const r = run(s, addr(id));
    assert.equal(allocated(r.events), '10.231.51.5', 'released first, reused first');
  });

  it('names the network whose pool is exhausted, by its Docker name once known (Docker does not add it to a remote IPAM\'s error)', () => {
    const id = 'ledgernet/10.231.56.0/30';
    let s = run(emptyState, req('10.231.56.0/30')).state; // usable .1, .2
    s = run(s, addr(id, null, true)).state;
    s = run(s, { type: 'CreateNetwork', spec: networkSpec(NET_A, '10.231.56.0/30', '10.231.56.1/30') }).state;
    s = run(s, addr(id)).state;
    assert.throws(() => decide(addr(id), s), new RegExp(`pool 10\\.231\\.56\\.0/30 of network ${NET_A.slice(0, 12)} is exhausted: all 2 usable addresses are in use`));
    s = run(s, { type: 'RecordNames', networks: [{ networkId: NET_A, name: 'web' }], endpoints: [] }).state;
    assert.throws(() => decide(addr(id), s), new RegExp(`pool 10\\.231\\.56\\.0/30 of network web \\(${NET_A.slice(0, 12)}\\) is exhausted`));
    // A pool no ledgernet network is on (another driver's network on ledgernet IPAM): the pool alone.
    let t = run(emptyState, req('10.231.57.0/31', { subPool: '10.231.57.1/32' })).state;
    t = run(t, addr('ledgernet/10.231.57.0/31')).state;
    assert.throws(() => decide(addr('ledgernet/10.231.57.0/31'), t), /--ip-range 10\.231\.57\.1\/32 of pool 10\.231\.57\.0\/31 is exhausted: all 1 usable addresses/);
  });

  it('says who holds a static address taken already, from the log when Docker (before 29) sent no container name', () => {
    const id = 'ledgernet/10.231.58.0/24';
    let s = run(emptyState, req('10.231.58.0/24')).state;
    s = run(s, addr(id, null, true)).state;
    s = run(s, addr(id, '10.231.58.5')).state; // --aux-address router=10.231.58.5, asked for before the network exists
    const ev = (events: NewEvent[]) => (s = fold(s, stamp(events, s)));
    ev([{ type: 'network.created', data: { ...networkSpec(NET_A, '10.231.58.0/24', '10.231.58.1/24'), ipv4Data: [{ pool: '10.231.58.0/24', gateway: '10.231.58.1/24', aux: { router: '10.231.58.5/24' } }] } }]);
    s = run(s, addr(id, '10.231.58.7')).state; // docker run --ip 10.231.58.7: RequestAddress, then CreateEndpoint
    const taken = (a: string) => () => decide(addr(id, a), s);
    assert.throws(taken('10.231.58.5'), /address 10\.231\.58\.5 in pool 10\.231\.58\.0\/24 is already in use by --aux-address router=10\.231\.58\.5 of network aaaaaaaa0000; pick another/);
    assert.throws(taken('10.231.58.7'), /is already in use by another container or an --aux-address; pick another/, 'no endpoint yet: nothing more is known');
    ev([{ type: 'endpoint.created', data: endpointSpec(NET_A, EP_1, '10.231.58.7/24') }]);
    assert.throws(taken('10.231.58.7'), new RegExp(`already in use by the container of endpoint ${EP_1.slice(0, 12)}; pick another`));
    ev([{ type: 'endpoint.named', data: { networkId: NET_A, endpointId: EP_1, containerId: 'c'.repeat(64), name: 'db-1' } }]);
    assert.throws(taken('10.231.58.7'), /already in use by container db-1; pick another/);
    assert.throws(taken('10.231.58.1'), /already in use by the gateway; pick another/);
  });

  it('keeps dynamic addresses inside --ip-range but accepts aux addresses outside it', () => {
    let s = run(emptyState, req('10.231.52.0/24', { subPool: '10.231.52.128/25' })).state;
    const id = 'ledgernet/10.231.52.0/24';
    let r = run(s, addr(id, null, true));
    assert.equal(allocated(r.events), '10.231.52.128');
    r = run(r.state, addr(id, '10.231.52.5'));
    assert.equal(allocated(r.events), '10.231.52.5');
    r = run(r.state, addr(id));
    assert.equal(allocated(r.events), '10.231.52.129');
    s = r.state;
    assert.throws(() => decide(addr(id, '10.231.52.5'), s), /10\.231\.52\.5 in pool 10\.231\.52\.0\/24 is already in use/);
    assert.throws(() => decide(addr(id, '10.231.53.5'), s), /address 10\.231\.53\.5 is outside pool 10\.231\.52\.0\/24; pick one inside it$/);
  });

  it('names the network and broadcast addresses as such, not as outside the pool', () => {
    const s = run(emptyState, req('10.231.52.0/24')).state;
    const id = 'ledgernet/10.231.52.0/24';
    for (const a of ['10.231.52.255', '10.231.52.0']) {
      assert.equal(code(() => decide(addr(id, a), s)), 'LN_ERR_IPAM_ADDRESS');
      assert.throws(() => decide(addr(id, a), s), new RegExp(`address ${a.replace(/\./g, '\\.')} is the network or broadcast address of pool 10\\.231\\.52\\.0/24; pick another$`));
    }
  });

  it('refuses an --ip-range that holds no address a container can get, naming it', () => {
    for (const range of ['10.4.0.255/32', '10.4.0.0/32']) {
      const cmd = req('10.4.0.0/24', { subPool: range });
      assert.equal(code(() => decide(cmd, emptyState)), 'LN_ERR_INVALID_OPTION');
      assert.throws(() => decide(cmd, emptyState), new RegExp(`--ip-range ${range.replace(/\./g, '\\.')} holds no address a container can get \\(only the network or broadcast address of --subnet 10\\.4\\.0\\.0/24\\)`));
    }
    // One usable address is enough: .254 of .254/31 (.255 is the broadcast).
    const s = run(emptyState, req('10.4.0.0/24', { subPool: '10.4.0.254/31' })).state;
    assert.equal(allocated(run(s, addr('ledgernet/10.4.0.0/24')).events), '10.4.0.254');
  });

  it('refuses an explicit pool that overlaps another pool or network, naming the network', () => {
    const s = run(run(emptyState, req('10.231.54.0/24')).state, {
      type: 'CreateNetwork',
      spec: networkSpec(NET_A, '10.231.55.0/24', '10.231.55.1/24'),
    }).state;
    assert.throws(() => decide(req('10.231.54.128/25'), s), /overlaps pool 10\.231\.54\.0\/24/);
    assert.throws(() => decide(req('10.231.55.0/24'), s), new RegExp(`ledgernet network ${NET_A.slice(0, 12)}`));
    const other: Command = { type: 'CreateNetwork', spec: networkSpec(NET_B, '10.231.55.0/25', '10.231.55.1/25') };
    assert.throws(() => decide(other, s), new RegExp(`overlaps subnet 10\\.231\\.55\\.0/24 of ledgernet network ${NET_A.slice(0, 12)}`));
  });

  it('refuses an explicit pool on a connected subnet or address of an interface ledgernet does not own, and nothing else of the host', () => {
    const hostAddrs = [{ dev: 'br-5c1e0a7d2b11', cidr: '10.232.150.1/24' }, { dev: 'eth0', cidr: '192.0.2.2/24' }, { dev: 'wg0', cidr: '10.9.0.7/32' }, { dev: 'eth0', cidr: 'fd00::2/64' }];
    const refused = (pool: string) => assert.throws(() => decide(req(pool, { hostAddrs }), emptyState), (e: DriverError) => e.code === 'LN_ERR_IPAM_OVERLAP' && /nothing was created/.test(e.message));
    refused('10.232.150.0/24');
    refused('10.232.150.128/25');
    refused('10.232.0.0/16');
    refused('10.9.0.0/24');
    assert.throws(() => decide(req('10.232.150.0/24', { hostAddrs }), emptyState), /overlaps subnet 10\.232\.150\.0\/24 of interface br-5c1e0a7d2b11 \(the host's address 10\.232\.150\.1\)/);
    // Neighbours, the other family, and routes via a gateway (never in hostAddrs) are fine.
    for (const pool of ['10.232.151.0/24', '10.9.1.0/24', '10.0.0.0/24']) assert.equal(decide(req(pool, { hostAddrs, occupied: ['10.0.0.0/8', '0.0.0.0/0'] }), emptyState).length, 1);
    assert.throws(() => decide(req('fd00::/64', { hostAddrs, v6: true, defaults: { range: 'fd00:231::/48', size: 64 } }), emptyState), /interface eth0/);
  });

  it('carves automatic pools that avoid held pools, networks and host routes, never the same one twice', () => {
    let s = run(emptyState, req('10.231.0.0/24')).state;
    const occupied = ['10.231.1.0/24', '10.231.2.7/32', '0.0.0.0/0', '192.0.2.2/24'];
    const r1 = run(s, req(null, { occupied }));
    const p1 = r1.events[0]?.type === 'pool.requested' ? r1.events[0].data.pool : '';
    assert.equal(p1, '10.231.3.0/24');
    s = r1.state;
    // Docker's overlap loop keeps the lease and asks again: it gets another pool.
    const r2 = run(s, req(null, { occupied }));
    assert.equal(r2.events[0]?.type === 'pool.requested' ? r2.events[0].data.pool : '', '10.231.4.0/24');
    const v6 = run(s, req(null, { v6: true, defaults: { range: 'fd00:231::/48', size: 64 } }));
    assert.equal(v6.events[0]?.type === 'pool.requested' ? v6.events[0].data.pool : '', 'fd00:231::/64');
  });

  it('carves an automatic pool of the size a --subnet 0.0.0.0/N or ::/N asks for (Docker 29), never with --ip-range', () => {
    const s = run(emptyState, req('10.231.0.0/24')).state;
    const r = run(s, req('0.0.0.0/28'));
    assert.deepEqual(r.events[0]?.data, { poolId: 'ledgernet/10.231.1.0/28', pool: '10.231.1.0/28', subPool: null, v6: false, auto: true });
    assert.equal(allocated(run(r.state, addr('ledgernet/10.231.1.0/28')).events), '10.231.1.1');
    assert.equal(poolOf(run(r.state, req('0.0.0.0/28')).events[0]), 'ledgernet/10.231.1.16/28', 'the next one is another');
    assert.throws(() => decide(req('0.0.0.0/0'), s), /--subnet 0\.0\.0\.0\/0 is refused/, '/0 is no size: refused as the subnet it is');
    assert.throws(() => decide(req('::/0', { v6: true, defaults: { range: 'fd00:231::/48', size: 64 } }), s), /::\/0 is refused/);
    const v6 = { v6: true, defaults: { range: 'fd00:231::/48', size: 64 } };
    assert.equal(poolOf(run(s, req('::/120', v6)).events[0]), 'ledgernet/fd00:231::/120');
    assert.throws(() => decide(req('0.0.0.0/8'), s), /--subnet 0\.0\.0\.0\/8 asks for an automatic \/8, which does not fit in the default IPv4 pool 10\.231\.0\.0\/16/);
    assert.throws(() => decide(req('0.0.0.0/26', { subPool: '10.231.9.0/28' }), s), /--ip-range 10\.231\.9\.0\/28 needs a --subnet that contains it/);
    assert.throws(() => decide(req('::/64'), s), /--subnet ::\/64 is not an IPv4 CIDR/, 'the other family is no size');
    assert.throws(() => decide(req('0.0.0.5/26'), s), /overlaps "this network"/, 'only the unspecified address asks for a size');
  });

  it('skips a taken prefix whole when carving: a small IPv6 pool behind a host route over most of the default range is found at once', () => {
    const v6 = { v6: true, defaults: { range: 'fd00:231::/48', size: 64 } };
    const started = performance.now();
    const r = run(emptyState, req('::/120', { ...v6, occupied: ['fd00:231::/49'] }));
    assert.equal(poolOf(r.events[0]), 'ledgernet/fd00:231:0:8000::/120');
    const tiny = { range: '10.231.60.0/23', size: 24 };
    assert.throws(() => decide(req('0.0.0.0/30', { defaults: tiny, occupied: ['10.231.60.0/23'] }), emptyState), /has no free \/30 left/);
    assert.throws(() => decide(req('::/120', { ...v6, occupied: ['fd00:231::/48'] }), emptyState), /has no free \/120 left/);
    assert.ok(performance.now() - started < 500, `took ${performance.now() - started} ms`);
  });

  it('says the default range is used up', () => {
    const tiny = { range: '10.231.60.0/23', size: 24 };
    let s = run(emptyState, req(null, { defaults: tiny })).state;
    s = run(s, req(null, { defaults: tiny })).state;
    assert.throws(() => decide(req(null, { defaults: tiny }), s), /default pool 10\.231\.60\.0\/23 has no free \/24 left/);
  });

  it('allocates IPv6 addresses in canonical form and releases them', () => {
    let s = run(emptyState, req('fd00:231:1::/64', { v6: true })).state;
    const id = 'ledgernet/fd00:231:1::/64';
    let r = run(s, addr(id, null, true));
    assert.equal(allocated(r.events), 'fd00:231:1::1');
    r = run(r.state, addr(id, 'fd00:0231:0001:0000::0099'));
    assert.equal(allocated(r.events), 'fd00:231:1::99');
    s = run(r.state, { type: 'ReleaseAddress', poolId: id, address: 'fd00:231:1::99' }).state;
    assert.equal(s.pools[id]?.allocated['fd00:231:1::99'], undefined);
    assert.deepEqual(decide({ type: 'ReleaseAddress', poolId: id, address: 'fd00:231:1::99' }, s), [], 'a second release is a no-op');
  });
});

type Op = { kind: 'dyn' } | { kind: 'static'; off: number } | { kind: 'release'; pick: number } | { kind: 'restart' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.constant<Op>({ kind: 'dyn' }), weight: 5 },
  { arbitrary: fc.integer({ min: 0, max: 40 }).map((off): Op => ({ kind: 'static', off })), weight: 2 },
  { arbitrary: fc.nat().map((pick): Op => ({ kind: 'release', pick })), weight: 3 },
  { arbitrary: fc.constant<Op>({ kind: 'restart' }), weight: 1 },
);

describe('IPAM allocator (properties)', () => {
  it('never hands out an address twice, never leaves the pool or range, fresh before reused', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(
          { pool: '10.231.70.0/27', sub: null, v6: false },
          { pool: '10.231.70.0/26', sub: '10.231.70.16/28', v6: false },
          { pool: 'fd00:231:70::/120', sub: null, v6: true },
          { pool: 'fd00:231:70::/64', sub: 'fd00:231:70::/123', v6: true },
        ),
        fc.array(opArb, { maxLength: 120 }),
        (cfg, ops) => {
          const log: StoredEvent[] = [];
          const exec = (st: State, cmd: Command): State => {
            const r = run(st, cmd);
            log.push(...r.events);
            return r.state;
          };
          let s = exec(emptyState, req(cfg.pool, { subPool: cfg.sub, v6: cfg.v6 }));
          const id = Object.keys(s.pools)[0] ?? '';
          const pool = parsePrefix(cfg.pool);
          const range = parsePrefix(cfg.sub ?? cfg.pool);
          assert.ok(pool && range);
          const held = new Set<string>();
          const everUsed = new Set<string>();
          for (const op of ops) {
            if (op.kind === 'restart') {
              // kill -9 and replay: the log alone rebuilds the same state.
              assert.deepEqual(fold(emptyState, log), s);
              continue;
            }
            if (op.kind === 'release') {
              const list = [...held].sort();
              if (list.length === 0) continue;
              const a = list[op.pick % list.length] as string;
              s = exec(s, { type: 'ReleaseAddress', poolId: id, address: a });
              held.delete(a);
              continue;
            }
            const want =
              op.kind === 'static'
                ? cfg.v6
                  ? `fd00:231:70::${op.off.toString(16)}`
                  : `10.231.70.${op.off}`
                : null;
            let r: { state: State; events: StoredEvent[] };
            try {
              r = run(s, addr(id, want));
            } catch (e) {
              assert.ok(e instanceof DriverError, String(e));
              if (e.code === 'LN_ERR_IPAM_EXHAUSTED') {
                const free: string[] = [...rangeAddrs(range, pool)].filter((x) => !held.has(x));
                assert.deepEqual(free, [], 'exhausted only when every usable address is held');
              } else {
                assert.equal(e.code, 'LN_ERR_IPAM_ADDRESS');
                assert.ok(want !== null);
              }
              continue;
            }
            log.push(...r.events);
            s = r.state;
            const got = allocated(r.events);
            assert.ok(!held.has(got), `${got} handed out twice`);
            const ip = parseIp(got);
            assert.ok(ip && contains(pool, ip.family, ip.value), `${got} inside ${cfg.pool}`);
            if (want === null) {
              assert.ok(contains(range, ip.family, ip.value), `${got} inside the range`);
              if (everUsed.has(got)) {
                const fresh: string[] = [...rangeAddrs(range, pool)].filter((x) => !everUsed.has(x));
                assert.deepEqual(fresh, [], `${got} reused while never-used addresses remained`);
              }
            }
            held.add(got);
            everUsed.add(got);
          }
          assert.deepEqual(Object.keys(s.pools[id]?.allocated ?? {}).sort(), [...held].sort());
        },
      ),
      { numRuns: 300 },
    );
  });
});

/** Usable addresses of a small range (≤ 64), as canonical text. */
function* rangeAddrs(range: { family: 4 | 6; base: bigint; len: number }, pool: { base: bigint; len: number; family: 4 | 6 }) {
  const total = range.family === 4 ? 32 : 128;
  const n = 1n << BigInt(total - range.len);
  const poolLast = pool.base + (1n << BigInt(total - pool.len)) - 1n;
  for (let v = range.base; v < range.base + n; v++) {
    if (v === pool.base || (range.family === 4 && v === poolLast)) continue;
    const text =
      range.family === 4
        ? [24n, 16n, 8n, 0n].map((sh) => String((v >> sh) & 0xffn)).join('.')
        : `fd00:231:70::${(v & 0xffffn).toString(16)}`;
    yield text;
  }
}
