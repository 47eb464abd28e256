// The hand-written fold of address events (evolve-address.ts) gives exactly what the general
// immer fold gives: same state, same key order (snapshots are written from it), frozen, and the
// parts the event does not touch shared with the state before.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { produce } from 'immer';
import type { Command } from '../../../src/events/domain/commands.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { evolve, evolveInPlace } from '../../../src/events/domain/evolve.ts';
import { evolveAddress } from '../../../src/events/domain/evolve-address.ts';
import type { State } from '../../../src/events/domain/types.ts';
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
      fc.property(fc.array(step, { maxLength: 40 }), (steps) => {
        let fast = start();
        let slow = start();
        for (const s of steps) {
          let events;
          try {
            events = stamp(decide(command(s, fast), fast), fast);
          } catch {
            continue; // exhausted, or the static address is held: nothing to fold
          }
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
      }),
      { numRuns: 200 },
    );
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
