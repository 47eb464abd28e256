// The live fold of the IPAM's per-call events (address.requested / address.released) without an
// immer draft: the same result as `apply` under produce (new objects along the changed path,
// everything else shared, the new objects frozen), built by hand. Under immer each such event
// cost a proxy per level, a copy of the pool's maps through the draft and a freeze pass over
// them (row 6 of issue 11: a fifth of the worker's CPU per call). A request copies only the
// small `allocated` map; a release the small `recent` one (see PoolState.recent).
import { freeze } from 'immer';
import { nextCursor } from './ipam.ts';
import { lookup, type Allocation, type PoolState, type State, type StoredEvent } from './types.ts';

/** A plain copy of `rec` less `key`, in key order. */
function copyWithout<T>(rec: Readonly<Record<string, T>>, key: string): Record<string, T> {
  const out: Record<string, T> = {};
  for (const k in rec) if (k !== key && Object.hasOwn(rec, k)) out[k] = rec[k] as T;
  return out;
}

/** `rec` less `key` (a new frozen object; key order kept). */
function without<T>(rec: Readonly<Record<string, T>>, key: string): Readonly<Record<string, T>> {
  return Object.freeze(copyWithout(rec, key));
}

/** `rec` with `key` set to `value` (a new frozen object; keys in the order assignment leaves them). */
function withKey<T>(rec: Readonly<Record<string, T>>, key: string, value: T): Readonly<Record<string, T>> {
  return Object.freeze({ ...rec, [key]: value });
}

/** `rec` with `key` set to `value` and moved last (a new frozen object, one copy). */
function withLast<T>(rec: Readonly<Record<string, T>>, key: string, value: T): Readonly<Record<string, T>> {
  const out = copyWithout(rec, key);
  out[key] = value;
  return Object.freeze(out);
}

/** How many releases a pool keeps in `recent` before they are merged into `released`. */
const RECENT_RELEASES = 32;

/**
 * A pool's release maps after releasing `address` at `seq`: `recent` gains it (a copy of at most
 * RECENT_RELEASES entries); a full `recent` is merged into `released` instead (one copy of the
 * big map per RECENT_RELEASES releases), kept in release order.
 */
export function releaseMaps(
  p: Pick<PoolState, 'released' | 'recent'>,
  address: string,
  seq: number,
): { released: Readonly<Record<string, number>>; recent: Readonly<Record<string, number>> } {
  const recent = p.recent ?? {};
  if (Object.keys(recent).length < RECENT_RELEASES) return { released: p.released, recent: withLast(recent, address, seq) };
  const out: Record<string, number> = {};
  for (const k in p.released) if (k !== address && !Object.hasOwn(recent, k) && Object.hasOwn(p.released, k)) out[k] = p.released[k] as number;
  for (const k in recent) if (k !== address && Object.hasOwn(recent, k)) out[k] = recent[k] as number;
  out[address] = seq;
  return { released: Object.freeze(out), recent: Object.freeze({}) };
}

function withPool(state: State, event: StoredEvent, pool: PoolState): State {
  const pools = withKey(state.pools, pool.poolId, Object.freeze(pool));
  return Object.freeze({ ...state, pools, seq: event.seq, hash: event.hash });
}

/**
 * The state after an address event, or null when the event is not one of these two or changes
 * nothing but seq and hash (then the general path folds it).
 */
export function evolveAddress(state: State, event: StoredEvent): State | null {
  if (event.type === 'address.requested') {
    const p = lookup(state.pools, event.data.poolId);
    if (!p) return null;
    const { address, kind, name, auto } = event.data;
    const held: Allocation = freeze({ kind, name, seq: event.seq });
    return withPool(state, event, {
      ...p,
      next: nextCursor(p, address, auto),
      allocated: withKey(p.allocated, address, held),
    });
  }
  if (event.type === 'address.released') {
    const p = lookup(state.pools, event.data.poolId);
    if (!p || !lookup(p.allocated, event.data.address)) return null;
    const { address } = event.data;
    return withPool(state, event, {
      ...p,
      allocated: without(p.allocated, address),
      ...releaseMaps(p, address, event.seq),
    });
  }
  return null;
}
