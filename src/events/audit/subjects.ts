// NATS subject patterns: whether two of them (with `*` and `>` wildcards) can match one subject.

/** True when some subject matches both patterns (`ledgernet.>` and `ledgernet.h1.events.*` do; `a.>` and `b.>` do not). */
export function subjectsOverlap(a: string, b: string): boolean {
  const x = a.split('.');
  const y = b.split('.');
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const p = x[i];
    const q = y[i];
    if (p === '>' || q === '>') return p !== undefined && q !== undefined;
    if (p === undefined || q === undefined) return false;
    if (p !== q && p !== '*' && q !== '*') return false;
  }
  return true;
}
