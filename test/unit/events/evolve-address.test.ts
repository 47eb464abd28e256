// The hand-written fold of address events (evolve-address.ts) gives exactly what the general
// immer fold and a replay give: same state, same key order (snapshots are written from it),
// frozen, and the parts the event does not touch shared with the state before; long enough runs
// to merge the pool's `recent` releases into `released` several times.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { produce } from 'immer';
import type { Command } from '../../../src/events/domain/commands.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { evolve, evolveInPlace, fold } from '../../../src/events/domain/evolve.ts';
import { evolveAddress } from '../../../src/events/domain/evolve-address.ts';
import { releasedAt, type State, type StoredEvent } from '../../../src/events/domain/types.ts';
import { NET_A, given, networkSpec, stamp } from '../../helpers/events.ts';

const POOL = '10.231.9.0/29';
const POOL_ID = `ledgernet/${POOL}`;

function start(): State {
  return given(
    { type: 'RequestPool', request: { pool: POOL, subPool: null, v6: false, defaults: { range: '10.231.0.0/16', size: 24 }, occupied: [] } },
    { type: 'RequestPool', request: { pool: '10.231.10.0/24', subPool: null, v6: false, defaults: { range: '10.231.0.0/16', size: 24 }, occupied: [] } },
    { type: 'CreateNetwork', spec: networkSpec(NET_A, '10.231.11.0/24', '10.231.11.1/24') },
  );
}

type Step = { op: 'take' } | { op: 'static'; host: number } | { op: 'give'; pick: number } | { op: 'giveUnknown' };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.constant<Step>({ op: 'take' }),
  fc.integer({ min: 1, max: 6 }).map<Step>((host) => ({ op: 'static', host })),
  fc.nat(20).map<Step>((pick) => ({ op: 'give', pick })),
  fc.constant<Step>({ op: 'giveUnknown' }),
);

function command(s: Step, state: State): Command {
  const held = Object.keys(state.pools[POOL_ID]?.allocated ?? {});
  if (s.op === 'take') return { type: 'RequestAddress', poolId: POOL_ID, address: null, gateway: false, name: null };
  if (s.op === 'static') return { type: 'RequestAddress', poolId: POOL_ID, address: `10.231.9.${s.host}`, gateway: false, name: 'c' };
  if (s.op === 'give') return { type: 'ReleaseAddress', poolId: POOL_ID, address: held[s.pick % Math.max(1, held.length)] ?? '10.231.9.3' };
  return { type: 'ReleaseAddress', poolId: POOL_ID, address: '10.231.9.5' };
}

describe('evolveAddress', () => {
  it('folds request/release sequences exactly as the immer fold does', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 150, size: 'max' }), (steps) => {
        let fast = start();
        let slow = start();
        const all: StoredEvent[] = [];
        for (const s of steps) {
          let events;
          try {
            events = stamp(decide(command(s, fast), fast), fast);
          } catch {
            continue; // exhausted, or the static address is held: nothing to fold
          }
          all.push(...events);
          for (const e of events) {
            const before = fast;
            fast = evolve(fast, e);
            slow = produce(slow, (d) => evolveInPlace(d, e));
            assert.equal(JSON.stringify(fast), JSON.stringify(slow), 'same state, same key order');
            assert.ok(Object.isFrozen(fast) && Object.isFrozen(fast.pools) && Object.isFrozen(fast.pools[POOL_ID]));
            assert.ok(Object.isFrozen(fast.pools[POOL_ID]?.allocated) && Object.isFrozen(fast.pools[POOL_ID]?.released));
            assert.equal(fast.networks, before.networks, 'untouched parts are shared');
            assert.equal(fast.pools['ledgernet/10.231.10.0/24'], before.pools['ledgernet/10.231.10.0/24']);
          }
        }
        assert.equal(JSON.stringify(fold(start(), all)), JSON.stringify(fast), 'a replay of the same events folds to the same state');
      }),
      { numRuns: 200 },
    );
  });

  it('keeps at most 32 recent releases apart, then merges them into released, release seqs intact', () => {
    const BIG = 'ledgernet/10.231.10.0/24';
    let s = start();
    const all: StoredEvent[] = [];
    const step = (cmd: Command) => {
      const events = stamp(decide(cmd, s), s);
      all.push(...events);
      for (const e of events) s = evolve(s, e);
      return events;
    };
    const taken: string[] = [];
    for (let i = 0; i < 40; i++) {
      const [e] = step({ type: 'RequestAddress', poolId: BIG, address: null, gateway: false, name: null });
      assert.ok(e?.type === 'address.requested');
      taken.push(e.data.address);
    }
    const seqs = new Map<string, number>();
    for (const a of taken) {
      const [e] = step({ type: 'ReleaseAddress', poolId: BIG, address: a });
      assert.ok(e);
      seqs.set(a, e.seq);
      assert.ok(Object.keys(s.pools[BIG]?.recent ?? {}).length <= 32);
    }
    const p = s.pools[BIG];
    assert.ok(p);
    assert.equal(Object.keys(p.released).length, 33, 'the 33rd release merged the 32 before it and itself into released');
    assert.equal(Object.keys(p.recent ?? {}).length, 7, 'the 7 after it in recent');
    for (const [a, seq] of seqs) assert.equal(releasedAt(p, a), seq);
    assert.equal(JSON.stringify(fold(start(), all)), JSON.stringify(s), 'a replay folds to the same state');
  });

  it('leaves other events, and releases of addresses nobody holds, to the general fold', () => {
    const s = start();
    const [release] = stamp([{ type: 'address.released', data: { poolId: POOL_ID, address: '10.231.9.2' } }], s);
    const [other] = stamp([{ type: 'network.deleted', data: { networkId: NET_A } }], s);
    assert.ok(release && other);
    assert.equal(evolveAddress(s, release), null);
    assert.equal(evolveAddress(s, other), null);
    assert.equal(evolve(s, release).seq, s.seq + 1);
  });
});
