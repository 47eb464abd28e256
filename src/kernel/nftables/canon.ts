// How rules and set elements are compared: JSON with sorted object keys (nft need not print keys
// in the order they were written). Memoised per object, and the keys of a set's elements per
// elements array: the model (evolve.ts) keeps the element objects and the arrays of sets a pass
// did not change, so a pass compares a table of thousands of published ports by computing the
// keys of what it wants, not again of everything the table holds.

const memo = new WeakMap<object, string>();
const keySets = new WeakMap<readonly unknown[], ReadonlySet<string>>();

/** JSON with sorted object keys. Pure (memoised: a value must not change after it is compared). */
export function canon(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  const known = memo.get(v);
  if (known !== undefined) return known;
  let out: string;
  if (Array.isArray(v)) out = `[${v.map(canon).join(',')}]`;
  else {
    const entries = Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    out = `{${entries.map(([k, val]) => `${JSON.stringify(k)}:${canon(val)}`).join(',')}}`;
  }
  memo.set(v, out);
  return out;
}

/** The canonical keys of a set's elements (memoised per array). */
export function elementKeys(elements: readonly unknown[]): ReadonlySet<string> {
  let keys = keySets.get(elements);
  if (!keys) {
    keys = new Set(elements.map(canon));
    keySets.set(elements, keys);
  }
  return keys;
}

/**
 * `canon(a) === canon(b)` without building either string: for what was just read (a full read's
 * rules are new objects each time, so their keys would all be computed anew: ~90 ms for the
 * ~3,600 rules of 200 networks). Object keys in any order, arrays in order; for JSON values (what
 * nft prints and the renderer writes). Pure.
 */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const other = b as readonly unknown[];
    return a.length === other.length && a.every((v, i) => sameValue(v, other[i]));
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let n = 0;
  for (const k in x) {
    if (!Object.hasOwn(x, k)) continue;
    // A key whose value is undefined is left out by JSON, and so by canon.
    if (x[k] === undefined) continue;
    if (!Object.hasOwn(y, k) || !sameValue(x[k], y[k])) return false;
    n++;
  }
  let m = 0;
  for (const k in y) if (Object.hasOwn(y, k) && y[k] !== undefined) m++;
  return n === m;
}
