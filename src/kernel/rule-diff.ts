// A drifted chain's rules against the desired ones, for display, by both firewall backends. The
// two lists are compared as multisets: a rule that stands twice where it is wanted once is one
// unexpected rule (with `includes`, its second copy counted as present and the chain showed only
// "order differs").

/** What a chain lacks and holds too much of, and the detail of its `drifted` write. */
export interface RuleDiff<T> {
  readonly missing: T[];
  readonly extra: T[];
  readonly detail: string;
}

/** The items of `a` that no item of `b` matches by key, each item of `b` matching one item of `a`. */
function unmatched<T>(a: readonly T[], b: readonly T[], key: (x: T) => string): T[] {
  const left = new Map<string, number>();
  for (const x of b) {
    const k = key(x);
    left.set(k, (left.get(k) ?? 0) + 1);
  }
  return a.filter((x) => {
    const k = key(x);
    const n = left.get(k) ?? 0;
    left.set(k, n - 1);
    return n <= 0;
  });
}

/** `want` against `have`; `key` makes equal rules the same string. */
export function ruleDiff<T>(want: readonly T[], have: readonly T[], key: (x: T) => string): RuleDiff<T> {
  const missing = unmatched(want, have, key);
  const extra = unmatched(have, want, key);
  const order = missing.length + extra.length === 0 ? ', order differs' : '';
  return { missing, extra, detail: `${want.length} rules expected, ${have.length} found (${missing.length} missing, ${extra.length} unexpected${order})` };
}
