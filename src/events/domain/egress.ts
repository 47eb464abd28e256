// The egress policy options `ledgernet.egress_deny` and `ledgernet.egress_allow`: what the
// containers of a network may open connections to outside it. Items are read with the one CIDR
// parser (cidr.ts). Pure; options.ts holds their rows, the reconciler's firewall.ts turns the
// result into FirewallEgress (kernel/types.ts), whose doc comment says what the rules do.
//
// The rules for both options at once, and for items the network cannot use, are decided here:
// - deny wins: a destination an egress_deny item matches is refused even if egress_allow lists it
//   (so `egress_allow=10.0.0.0/8` with `egress_deny=10.0.0.1` reaches 10/8 except 10.0.0.1);
// - an IPv6 item on a network without an IPv6 subnet, either option on an --internal network, and
//   an egress_deny item inside the network's own subnet (which always stays reachable) would do
//   nothing, so they are refused at create, naming the item, rather than silently ignored.
import { DriverError } from '../../errors.ts';
import { bits, formatPrefix, parseIp, parsePrefix, within, type Prefix } from './cidr.ts';

export interface EgressRule {
  readonly family: 4 | 6;
  /** Canonical CIDR (`10.0.0.0/8`, `2001:db8::/32`; a bare address is a /32 or /128). */
  readonly cidr: string;
  /** null: every protocol. `icmp` is ICMPv6 for an IPv6 item. */
  readonly proto: 'tcp' | 'udp' | 'icmp' | null;
  /** Inclusive destination port range (tcp/udp only); null: every port. */
  readonly ports: readonly [number, number] | null;
}

export interface EgressPolicy {
  /** Refused destinations (deny wins over allow). */
  readonly deny: readonly EgressRule[];
  /** null: every destination not denied; else only these. */
  readonly allow: readonly EgressRule[] | null;
}

export const EGRESS_FORM = 'a list of CIDR[:PROTO[/PORT[-PORT]]] items (PROTO tcp, udp or icmp) such as 10.0.0.0/8,203.0.113.0/24:tcp/443,2001:db8::/32:udp/53';

const ITEM = /^(.+?)(?::(tcp|udp|icmp)(?:\/(\d+)(?:-(\d+))?)?)?$/;

function badItem(key: string, value: string, item: string, why: string): DriverError {
  const shown = value.length > 200 ? `${value.slice(0, 200)}…` : value;
  return new DriverError('LN_ERR_INVALID_OPTION', `option ${key}=${shown} is invalid: item "${item}" ${why}; expected ${EGRESS_FORM}`);
}

function portOf(key: string, value: string, item: string, s: string): number {
  const n = Number(s);
  if (!/^[1-9]\d{0,4}$/.test(s) || n > 65535) throw badItem(key, value, item, `has port ${s}, not one from 1 to 65535`);
  return n;
}

function prefixOf(key: string, value: string, item: string, text: string): Prefix {
  const bare = parseIp(text);
  if (bare) return { family: bare.family, base: bare.value, len: bits(bare.family) };
  const p = parsePrefix(text);
  if (!p) throw badItem(key, value, item, `is not an IPv4 or IPv6 address or CIDR`);
  if (!parsePrefix(text, true)) {
    const host = text.split('/')[0] ?? '';
    throw badItem(key, value, item, `has host bits set: say ${formatPrefix(p)} or ${host}`);
  }
  return p;
}

/** One item: `CIDR`, `CIDR:tcp`, `CIDR:tcp/443`, `CIDR:udp/8000-8100`, `CIDR:icmp`. */
function parseItem(key: string, value: string, item: string): EgressRule {
  const m = ITEM.exec(item);
  if (!m) throw badItem(key, value, item, 'is empty');
  const [, addr = '', proto, lo, hi] = m;
  const p = prefixOf(key, value, item, addr);
  if (proto === 'icmp' && lo !== undefined) throw badItem(key, value, item, 'gives a port for icmp');
  let ports: [number, number] | null = null;
  if (lo !== undefined) {
    const a = portOf(key, value, item, lo);
    const b = hi === undefined ? a : portOf(key, value, item, hi);
    if (b < a) throw badItem(key, value, item, `has the port range ${a}-${b}, whose low end is above its high end`);
    ports = [a, b];
  }
  return { family: p.family, cidr: formatPrefix(p), proto: (proto as EgressRule['proto'] | undefined) ?? null, ports };
}

/** `10.0.0.0/8,203.0.113.0/24:tcp/443` → rules in the order given, duplicates dropped. */
export function parseEgress(key: string, value: string): EgressRule[] {
  const seen = new Set<string>();
  const out: EgressRule[] = [];
  for (const raw of value.split(',')) {
    const item = raw.trim().toLowerCase();
    if (item === '') throw badItem(key, value, raw, 'is empty');
    const rule = parseItem(key, value, item);
    const k = JSON.stringify(rule);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(rule);
  }
  return out;
}

/** What egress_deny/egress_allow are checked against: facts of the network being created. */
export interface EgressNetwork {
  readonly internal: boolean;
  /** The network's subnets, both families; none when not known yet (GwAllocCheck). */
  readonly subnets: readonly string[];
}

/**
 * Refuses an egress policy the network cannot use: on an --internal network, an IPv6 item without
 * an IPv6 subnet, or a deny item inside the network's own subnet (always reachable).
 * @throws DriverError `LN_ERR_INVALID_OPTION` naming the option and the item.
 */
export function checkEgressFor(policy: EgressPolicy | null, net: EgressNetwork): void {
  if (policy === null) return;
  if (net.internal) {
    const given = [policy.deny.length > 0 ? 'ledgernet.egress_deny' : null, policy.allow === null ? null : 'ledgernet.egress_allow'].filter(Boolean);
    throw new DriverError('LN_ERR_INVALID_OPTION', `option ${given.join(' and ')} cannot be used with --internal: nothing leaves an internal network anyway`);
  }
  const own = net.subnets.map((s) => parsePrefix(s)).filter((p): p is Prefix => p !== null);
  // No subnets: not known yet (Docker 28's GwAllocCheck comes before IPAM); CreateNetwork checks again with them.
  if (own.length === 0) return;
  const hasV6 = own.some((p) => p.family === 6);
  const hasV4 = own.some((p) => p.family === 4);
  const lists: [string, readonly EgressRule[]][] = [['ledgernet.egress_deny', policy.deny], ['ledgernet.egress_allow', policy.allow ?? []]];
  for (const [k, rules] of lists) {
    for (const r of rules) {
      const p = parsePrefix(r.cidr) as Prefix;
      if (r.family === 6 && !hasV6) {
        throw new DriverError('LN_ERR_INVALID_OPTION', `option ${k}: item ${r.cidr} is IPv6, but the network has no IPv6 subnet (create it with --ipv6 and an IPv6 --subnet)`);
      }
      if (r.family === 4 && !hasV4) {
        throw new DriverError('LN_ERR_INVALID_OPTION', `option ${k}: item ${r.cidr} is IPv4, but the network has no IPv4 subnet (it was created with --ipv4=false)`);
      }
      const inside = k === 'ledgernet.egress_deny' ? own.find((o) => within(p, o)) : undefined;
      if (inside) {
        throw new DriverError(
          'LN_ERR_INVALID_OPTION',
          `option ${k}: item ${r.cidr} lies inside the network's own subnet ${formatPrefix(inside)}, which always stays reachable; the item would do nothing`,
        );
      }
    }
  }
}
