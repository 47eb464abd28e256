// The nftables diff compares what it read with what it wants by sameValue (canon.ts) instead of
// canonical strings: it must say "same" exactly when the canonical JSON is the same.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { canon, sameValue } from '../../../src/kernel/nftables/canon.ts';

/** The same value with every object's keys in another order (a read of what was written). */
function shuffled(v: unknown, seed: number): unknown {
  if (Array.isArray(v)) return v.map((x, i) => shuffled(x, seed + i));
  if (v === null || typeof v !== 'object') return v;
  const entries = Object.entries(v as Record<string, unknown>).map(([k, x], i) => [k, shuffled(x, seed + i)] as const);
  const order = entries.map((e, i) => ({ e, r: (i * 7919 + seed * 104729) % 97 })).sort((a, b) => a.r - b.r);
  return Object.fromEntries(order.map((o) => o.e));
}

describe('sameValue', () => {
  it('agrees with comparing canonical keys, for any two JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), (a, b) => sameValue(a, b) === (canon(a) === canon(b))),
      { numRuns: 2_000 },
    );
  });

  it('is the same for a value read back with its keys in another order, and not once anything differs', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat(), (a, seed) => {
        const b = JSON.parse(JSON.stringify(shuffled(a, seed))) as unknown;
        assert.ok(sameValue(a, b) && sameValue(b, a));
        const changed = JSON.parse(JSON.stringify({ wrapped: b, extra: seed })) as unknown;
        assert.equal(sameValue({ wrapped: a }, changed), false);
      }),
      { numRuns: 1_000 },
    );
  });

  it('tells apart what nft rules differ in: a key, a value, its type, an order of statements', () => {
    const rule = [{ match: { op: '==', left: { meta: { key: 'oifname' } }, right: 'lnb-1' } }, { accept: null }];
    assert.ok(sameValue(rule, [{ match: { right: 'lnb-1', left: { meta: { key: 'oifname' } }, op: '==' } }, { accept: null }]));
    assert.equal(sameValue(rule, [rule[1], rule[0]]), false, 'statements in another order');
    assert.equal(sameValue(rule, [{ match: { op: '!=', left: { meta: { key: 'oifname' } }, right: 'lnb-1' } }, { accept: null }]), false);
    assert.equal(sameValue({ a: 1 }, { a: '1' }), false, 'a number is not its string');
    assert.equal(sameValue({ a: null }, {}), false, 'a key with null is not a missing key');
    assert.equal(sameValue([], {}), false, 'an empty array is not an empty object');
    assert.equal(sameValue({ a: 1 }, { a: 1, b: 2 }), false, 'a key more');
  });
});
