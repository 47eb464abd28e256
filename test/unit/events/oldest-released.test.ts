// The allocator's reuse order over a pool's `released` and `recent` maps (cluster.ts
// oldestReleased, with its cached release order) against a plain scan of both: the address
// released longest ago that nobody holds again, through random takes and releases that merge
// `recent` into `released` many times.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { oldestReleased } from '../../../src/events/domain/cluster.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { evolve } from '../../../src/events/domain/evolve.ts';
import { lookup, type PoolState, type State } from '../../../src/events/domain/types.ts';
import { given, stamp } from '../../helpers/events.ts';

const POOL = '10.231.12.0/26';
const POOL_ID = `ledgernet/${POOL}`;

/** The reference: every address with a release seq (recent's where both hold it), not held, lowest (seq, text). */
function reference(p: PoolState, usable: (text: string) => boolean): string | null {
  const seqs = new Map<string, number>(Object.entries(p.released));
  for (const [a, seq] of Object.entries(p.recent ?? {})) seqs.set(a, seq);
  const free = [...seqs].filter(([a]) => !lookup(p.allocated, a) && usable(a));
  free.sort((x, y) => x[1] - y[1] || (x[0] < y[0] ? -1 : 1));
  return free[0]?.[0] ?? null;
}

describe('oldestReleased', () => {
  it('agrees with a plain scan of released and recent through random takes and releases', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(100), fc.integer({ min: 0, max: 3 })), { minLength: 150, maxLength: 300, size: 'max' }), (steps) => {
        let s: State = given({ type: 'RequestPool', request: { pool: POOL, subPool: null, v6: false, defaults: { range: '10.231.0.0/16', size: 24 }, occupied: [] } });
        for (const [take, pick, odd] of steps) {
          const p = s.pools[POOL_ID];
          assert.ok(p);
          const held = Object.keys(p.allocated);
          const cmd = take || held.length === 0
            ? { type: 'RequestAddress' as const, poolId: POOL_ID, address: null, gateway: false, name: null }
            : { type: 'ReleaseAddress' as const, poolId: POOL_ID, address: held[pick % held.length] as string };
          let events;
          try {
            events = stamp(decide(cmd, s), s);
          } catch {
            continue; // exhausted
          }
          for (const e of events) s = evolve(s, e);
          const q = s.pools[POOL_ID];
          assert.ok(q);
          // Any address, and only those whose last octet is not ≡ odd (mod 4), as a range would.
          assert.equal(oldestReleased(q, () => true), reference(q, () => true));
          const some = (text: string) => Number(text.split('.')[3]) % 4 !== odd;
          assert.equal(oldestReleased(q, (a) => Number(a.value % 4n) !== odd), reference(q, some));
        }
      }),
      { numRuns: 60 },
    );
  });
});
