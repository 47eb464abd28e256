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
