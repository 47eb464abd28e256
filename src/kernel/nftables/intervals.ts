// CIDRs as the value of an anonymous interval set, written exactly as `nft -j` prints it back.
// nft merges what a set is given: overlapping and adjacent prefixes become one interval
// (`203.0.113.2` and `203.0.113.3` read back as `203.0.113.2/31`, `10.0.0.0/24` inside
// `10.0.0.0/8` disappears), and an interval that is no prefix reads back as a range. A set of one
// element reads back as that element. Writing the merged form here keeps a converged table
// planning nothing. Addresses are printed as inet_ntop does (glibc: the longest run of two or
// more zero groups, the first of equal ones, becomes `::`; `::ffff:a.b.c.d` and `::a.b.c.d`).

type Family = 4 | 6;
interface Interval {
  lo: bigint;
  hi: bigint;
}

const BITS: Readonly<Record<Family, number>> = { 4: 32, 6: 128 };

function parseV4(s: string): bigint {
  return s.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function parseV6(s: string): bigint {
  const v4 = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  const text = v4 ? `${v4[1]}${(parseV4(v4[2] ?? '') >> 16n).toString(16)}:${(parseV4(v4[2] ?? '') & 0xffffn).toString(16)}` : s;
  const [head = '', tail] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function formatV4(v: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join('.');
}

function formatV6(v: bigint): string {
  const words = [...Array(8).keys()].map((i) => Number((v >> BigInt(112 - 16 * i)) & 0xffffn));
  let best = { base: -1, len: 0 };
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > best.len) best = { base: i, len: j - i };
    i = j === i ? i + 1 : j;
  }
  if (best.len < 2) best = { base: -1, len: 0 };
  const embedsV4 = best.base === 0 && (best.len === 6 || (best.len === 5 && words[5] === 0xffff));
  const hex = (from: number, to: number) => words.slice(from, to).map((w) => w.toString(16));
  if (embedsV4) return `${best.len === 5 ? '::ffff:' : '::'}${formatV4(v & 0xffffffffn)}`;
  if (best.base < 0) return hex(0, 8).join(':');
  return `${hex(0, best.base).join(':')}::${hex(best.base + best.len, 8).join(':')}`;
}

const format = (family: Family, v: bigint) => (family === 4 ? formatV4(v) : formatV6(v));

function interval(family: Family, cidr: string): Interval {
  const [addr = '', lenText] = cidr.split('/');
  const bits = BITS[family];
  const len = lenText === undefined ? bits : Number(lenText);
  const lo = family === 4 ? parseV4(addr) : parseV6(addr);
  return { lo, hi: lo | ((1n << BigInt(bits - len)) - 1n) };
}

/** The interval as nft prints it: an address, a prefix, or a range. */
function element(family: Family, { lo, hi }: Interval): unknown {
  if (lo === hi) return format(family, lo);
  const size = hi - lo + 1n;
  const host = size.toString(2).length - 1;
  if ((size & (size - 1n)) === 0n && (lo & (size - 1n)) === 0n) return { prefix: { addr: format(family, lo), len: BITS[family] - host } };
  return { range: [format(family, lo), format(family, hi)] };
}

/**
 * The right-hand side of `ct original ip daddr …` for these CIDRs (one family, canonical, a bare
 * address allowed): the merged intervals in address order, as one element or an anonymous set.
 */
export function addressMatch(family: Family, cidrs: readonly string[]): unknown {
  const sorted = cidrs.map((c) => interval(family, c)).sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
  const merged: Interval[] = [];
  for (const i of sorted) {
    const last = merged[merged.length - 1];
    if (last && i.lo <= last.hi + 1n) last.hi = i.hi > last.hi ? i.hi : last.hi;
    else merged.push({ ...i });
  }
  const items = merged.map((i) => element(family, i));
  return items.length === 1 ? items[0] : { set: items };
}
