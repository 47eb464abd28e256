// nftables statements as `nft -j` prints them, so that a rule written from these reads back the
// same and a converged table plans nothing (test/integration/nftables.test.ts loads every shape
// into a real table and compares). Only the shapes the renderer uses.

export type Expr = Readonly<Record<string, unknown>>;

export const meta = (key: string): Expr => ({ meta: { key } });
export const payload = (protocol: string, field: string): Expr => ({ payload: { protocol, field } });
const ct = (key: string): Expr => ({ ct: { key } });

export function match(left: Expr, right: unknown, op: '==' | '!=' | 'in' | '!' = '=='): Expr {
  return { match: { op, left, right } };
}

/** A prefix (`10.231.9.0/24`, `fd00:231::/64`) as nft prints it: a plain address for /32 or /128. */
export function prefix(cidr: string): unknown {
  const host = cidr.includes(':') ? '128' : '32';
  const [addr = '', len = host] = cidr.split('/');
  return len === host ? addr : { prefix: { addr, len: Number(len) } };
}

export const iifname = (name: unknown, op: '==' | '!=' = '=='): Expr => match(meta('iifname'), name, op);
export const oifname = (name: unknown, op: '==' | '!=' = '=='): Expr => match(meta('oifname'), name, op);
export const ipv4Only: Expr = match(meta('nfproto'), 'ipv4');
export const l4proto = (proto: string): Expr => match(meta('l4proto'), proto);
export const ctDnat: Expr = match(ct('status'), 'dnat', 'in');
/** `ct status & dnat == 0`, which nft prints with the op `!`. */
export const notCtDnat: Expr = match(ct('status'), 'dnat', '!');
export const established: Expr = match(ct('state'), ['established', 'related'], 'in');
export const notEstablished: Expr = match(ct('state'), { set: ['established', 'related'] }, '!=');
/** `ct state new`: the first packet of a connection. */
export const ctNew: Expr = match(ct('state'), 'new', 'in');
/** `ct state invalid`: a packet conntrack cannot place (e.g. an echo reply with no request). */
export const ctInvalid: Expr = match(ct('state'), 'invalid', 'in');
/** `ct original <key>` (`ip daddr`, `ip6 daddr`, `proto-dst`): the connection as first seen, before any DNAT. */
export const ctOriginal = (key: string): Expr => ({ ct: { key, dir: 'original' } });
export const localDst: Expr = match({ fib: { result: 'type', flags: ['daddr'] } }, 'local');

export const accept: Expr = { accept: null };
export const drop: Expr = { drop: null };
export const ret: Expr = { return: null };
export const masquerade: Expr = { masquerade: null };
/**
 * Reject with (ICMP, ICMPv6) port unreachable: `icmp` / `icmpv6` alone also match only that family
 * (nft adds the dependency and hides it again); null: `icmpx`, whichever the packet's family.
 */
export const reject = (family: 4 | 6 | null): Expr => ({ reject: { type: family === null ? 'icmpx' : family === 4 ? 'icmp' : 'icmpv6', expr: 'port-unreachable' } });
export const jump = (target: string): Expr => ({ jump: { target } });
export const vmap = (key: Expr, set: string): Expr => ({ vmap: { key, data: `@${set}` } });
export const concat = (...items: readonly unknown[]): Expr => ({ concat: items });

/** The key of the published-port maps: `meta l4proto . th dport` (with `ip daddr`/`ip6 daddr` first when bound). */
export const portKey = (bound: boolean, family: 'ip' | 'ip6' = 'ip'): Expr =>
  concat(...(bound ? [payload(family, 'daddr')] : []), meta('l4proto'), payload('th', 'dport'));

/** `dnat ip to <key> map @addrs : <key> map @ports` (`dnat ip6` for IPv6). */
export function dnatVia(key: Expr, addrs: string, ports: string, family: 'ip' | 'ip6' = 'ip'): Expr {
  return { dnat: { family, addr: { map: { key, data: `@${addrs}` } }, port: { map: { key, data: `@${ports}` } } } };
}

/** `masquerade`, or `snat ip to ADDR` (`snat ip6 to`) when a source is given (host_ipv4/host_ipv6). */
export function natTo(family: 'ip' | 'ip6', snat: string | null): Expr {
  return snat === null ? masquerade : { snat: { family, addr: snat } };
}

/** A destination port (or inclusive range) of `proto`. */
export function dport(proto: string, ports: readonly [number, number]): Expr {
  const [lo, hi] = ports;
  return match(payload(proto, 'dport'), lo === hi ? lo : { range: [lo, hi] });
}
