// Small, pure CIDR arithmetic on bigint, for both families, and the one parser of addresses and
// CIDRs in ledgernet: the api, the allocator and the reconciler all read them through here.
// Addresses are kept in state as canonical strings (IPv4 dotted quad, IPv6 RFC 5952 compressed),
// so equal addresses compare equal. Strict: no IPv4 octet or prefix length with a leading zero,
// no IPv6 zone (`%eth0`), nothing around the text.
// Why not ip-cidr: it works on strings per call and has no overlap/containment for a mixed list;
// the allocator needs offsets inside a prefix, which is one bigint addition here.

export interface Prefix {
  readonly family: 4 | 6;
  /** The masked network address. */
  readonly base: bigint;
  readonly len: number;
}

export function bits(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

/** Parses an IP address (no prefix) into its family and value, or null. */
export function parseIp(s: string): { family: 4 | 6; value: bigint } | null {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(s)) {
    const texts = s.split('.');
    // A leading zero is octal to some parsers (inet_aton) and decimal to others: refuse it.
    if (texts.some((t) => t.length > 1 && t.startsWith('0'))) return null;
    const parts = texts.map(Number);
    if (parts.some((p) => p > 255)) return null;
    // One BigInt from a number (an IPv4 address fits a double exactly), not one per octet.
    return { family: 4, value: BigInt(parts.reduce((acc, p) => acc * 256 + p, 0)) };
  }
  return parseIp6(s);
}

function parseIp6(s: string): { family: 6; value: bigint } | null {
  if (!/^[0-9a-fA-F:.]+$/.test(s) || !s.includes(':')) return null;
  let text = s;
  let tail: bigint[] = [];
  // An embedded IPv4 tail (::ffff:10.0.0.1) stands for the last two groups.
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    const v4 = parseIp(text.slice(lastColon + 1));
    if (!v4 || v4.family !== 4) return null;
    tail = [v4.value >> 16n, v4.value & 0xffffn];
    text = `${text.slice(0, lastColon + 1)}x`;
  }
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (h: string | undefined): string[] => (h === undefined || h === '' ? [] : h.split(':'));
  const head = groups(halves[0]);
  const rest = groups(halves[1]);
  const all = [...head, ...rest].filter((g) => g !== 'x');
  const want = 8 - tail.length;
  if (halves.length === 1 ? all.length !== want : all.length > want - 1) return null;
  const fill = halves.length === 2 ? want - all.length : 0;
  const values: bigint[] = [];
  for (const g of head.filter((x) => x !== 'x')) values.push(group(g));
  for (let i = 0; i < fill; i++) values.push(0n);
  for (const g of rest.filter((x) => x !== 'x')) values.push(group(g));
  values.push(...tail);
  if (values.some((v) => v < 0n)) return null;
  return { family: 6, value: values.reduce((acc, v) => (acc << 16n) | v, 0n) };
}

function group(g: string): bigint {
  return /^[0-9a-fA-F]{1,4}$/.test(g) ? BigInt(`0x${g}`) : -1n;
}

export function formatIp(family: 4 | 6, value: bigint): string {
  if (family === 4) {
    const n = Number(value & 0xffffffffn);
    return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
  }
  const groups = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((s) => Number((value >> s) & 0xffffn));
  // RFC 5952: compress the longest run (≥2) of zero groups, the first one on a tie.
  let best = { at: -1, len: 0 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.len) best = { at: i, len: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.len < 2) return hex.join(':');
  return `${hex.slice(0, best.at).join(':')}::${hex.slice(best.at + best.len).join(':')}`;
}

/** Parses `addr/len`; `strict` refuses host bits. Returns null when malformed. */
export function parsePrefix(s: string, strict = false): Prefix | null {
  const [ip, len, extra] = s.split('/');
  if (extra !== undefined || ip === undefined || len === undefined || !/^(0|[1-9]\d{0,2})$/.test(len)) return null;
  const a = parseIp(ip);
  if (!a) return null;
  const n = Number(len);
  if (n > bits(a.family)) return null;
  const base = a.value & mask(a.family, n);
  if (strict && base !== a.value) return null;
  return { family: a.family, base, len: n };
}

function mask(family: 4 | 6, len: number): bigint {
  const total = BigInt(bits(family));
  const all = (1n << total) - 1n;
  return all ^ ((1n << (total - BigInt(len))) - 1n);
}

export function size(p: Prefix): bigint {
  return 1n << BigInt(bits(p.family) - p.len);
}

export function formatPrefix(p: Prefix): string {
  return `${formatIp(p.family, p.base)}/${p.len}`;
}

export function contains(p: Prefix, family: 4 | 6, value: bigint): boolean {
  return p.family === family && value >= p.base && value < p.base + size(p);
}

export function overlaps(a: Prefix, b: Prefix): boolean {
  if (a.family !== b.family) return false;
  return a.base < b.base + size(b) && b.base < a.base + size(a);
}

/** `a` lies entirely inside `b`. */
export function within(a: Prefix, b: Prefix): boolean {
  return a.family === b.family && a.len >= b.len && contains(b, a.family, a.base);
}

/** `10.0.0.1:80`, `[fd00::1]:80`: an address with a port (or ports) as URLs and `docker ps` write them. */
export function withPort(ip: string, port: number | string): string {
  return `${ip.includes(':') ? `[${ip}]` : ip}:${port}`;
}

/** Canonical text of an address (`fd00:0231::0001` → `fd00:231::1`), or null. */
export function canonicalIp(s: string): string | null {
  const a = parseIp(s);
  return a ? formatIp(a.family, a.value) : null;
}

/** An address with a prefix length (`10.231.7.1/24`, an interface's address), not masked. */
export interface AddrLen {
  readonly family: 4 | 6;
  readonly value: bigint;
  readonly len: number;
  /** The prefix it lies in (masked). */
  readonly prefix: Prefix;
}

/** Parses `addr/len` keeping the host bits; null when malformed. */
export function parseAddrLen(s: string): AddrLen | null {
  const p = parsePrefix(s);
  const a = p ? parseIp(s.split('/')[0] ?? '') : null;
  return p && a ? { family: a.family, value: a.value, len: p.len, prefix: p } : null;
}

export function formatAddrLen(a: { family: 4 | 6; value: bigint; len: number }): string {
  return `${formatIp(a.family, a.value)}/${a.len}`;
}

/** The pool's network address, and its IPv4 broadcast: never a gateway, never handed out. */
export function isNetworkOrBroadcast(pool: Prefix, value: bigint): boolean {
  if (pool.len >= bits(pool.family) - 1) return false;
  if (value === pool.base) return true;
  return pool.family === 4 && value === pool.base + size(pool) - 1n;
}

/** The shortest prefix ledgernet takes as a network's subnet, per family. */
const WIDEST_POOL: Readonly<Record<4 | 6, number>> = { 4: 8, 6: 16 };

const HOST_RANGES: readonly (readonly [string, string])[] = [
  ['0.0.0.0/8', '"this network" (0.0.0.0/8)'],
  ['127.0.0.0/8', 'loopback (127.0.0.0/8)'],
  ['169.254.0.0/16', 'link-local (169.254.0.0/16)'],
  ['224.0.0.0/4', 'multicast (224.0.0.0/4)'],
  ['240.0.0.0/4', 'reserved and broadcast (240.0.0.0/4)'],
  ['::/8', 'the unspecified, loopback and IPv4-mapped range (::/8)'],
  ['fe80::/10', 'link-local (fe80::/10)'],
  ['ff00::/8', 'multicast (ff00::/8)'],
];

/**
 * Why a subnet would capture the host's own traffic (a masquerade or a route over it would take
 * traffic that is not the network's), or null when it is fine: wider than /8 (IPv4) or /16
 * (IPv6), or overlapping 0.0.0.0/8, loopback, link-local, multicast, 240.0.0.0/4, ::/8.
 */
export function capturesHost(p: Prefix): string | null {
  if (p.len < WIDEST_POOL[p.family]) {
    return `it is wider than /${WIDEST_POOL[p.family]} (it would take over the host's routes and masquerade traffic that is not the network's)`;
  }
  for (const [cidr, what] of HOST_RANGES) {
    const r = parsePrefix(cidr) as Prefix;
    if (overlaps(p, r)) return `it overlaps ${what}`;
  }
  return null;
}

/**
 * Reads a CIDR the way versions before the one parser let it into the log (`10.77.0.0/0024`,
 * `fd00:77::%eth0/64`): zone dropped, leading zeros ignored. For old records only.
 */
export function parseLegacyAddrLen(s: string): AddrLen | null {
  const m = /^([^/%]+)(?:%[^/]*)?\/0*(\d{1,3})$/.exec(s);
  if (!m) return null;
  const ip = (m[1] ?? '').split('.').length === 4 ? (m[1] ?? '').split('.').map((o) => String(Number(o))).join('.') : (m[1] ?? '');
  return parseAddrLen(`${ip}/${Number(m[2])}`);
}
