// Routes from rtnetlink dumps (RTM_GETROUTE, netlink.ts): the main table's unicast routes and the
// ones that drop or refuse traffic (blackhole, unreachable, prohibit, throw), as `parseRoutes`
// reads them from `ip -j [-6] route show table main`: an operator's blackhole on a network's
// subnet is someone else's route (a conflict), not a deleted one. The request asks the kernel
// for the main table only (a strict dump, as `ip` asks): the local table holds several routes per
// link (a host's IPv6 link-local and multicast ones), ~3 times the main table's messages with
// 2,000 containers. Filtered here as well, as the messages come: a kernel without strict dumps
// sends every table.
import type { NetlinkMessage } from './netlink.ts';
import { AF_INET, AF_INET6, find, valueEnd } from './netlink-attrs.ts';
import { ipv6Text } from './parse-link-dump.ts';
import type { Route } from './types.ts';

/** RTM_GETROUTE and its answers' type, of <linux/rtnetlink.h>. */
export const RTM_GETROUTE = 26;
const RTM_NEWROUTE = 24;
const RT_TABLE_MAIN = 254;
/**
 * The route types read, of <linux/rtnetlink.h>: RTN_UNICAST (1), and RTN_BLACKHOLE (6),
 * RTN_UNREACHABLE (7), RTN_PROHIBIT (8), RTN_THROW (9). `ip` prints the latter with their type
 * and no device for IPv4 (the kernel gives no RTA_OIF) and `dev lo` for IPv6 (its RTA_OIF);
 * the type is not part of the model, as `parseRoutes` leaves it out too.
 */
const ROUTE_TYPES: ReadonlySet<number> = new Set([1, 6, 7, 8, 9]);
const RTA = { DST: 1, OIF: 4, TABLE: 15 } as const;
/** struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags (u32). */
const RTMSG = 12;

/** A route dump's request: struct rtmsg of `family`'s main table (the rest zeros). */
export function routeDumpRequest(family: 4 | 6): Buffer {
  const b = Buffer.alloc(RTMSG);
  b.writeUInt8(family === 4 ? AF_INET : AF_INET6, 0);
  b.writeUInt8(RT_TABLE_MAIN, 4);
  return b;
}

/** A route of the dump, its device by ifindex (named once every link is read). */
export interface DumpedRoute {
  readonly family: 4 | 6;
  readonly dst: string;
  readonly oif: number | null;
}

/** The main table's route in `m` of a type read (ROUTE_TYPES), or null for any other message. */
export function routeOf(m: NetlinkMessage): DumpedRoute | null {
  const p = m.payload;
  if (m.type !== RTM_NEWROUTE || p.length < RTMSG) return null;
  const family = p.readUInt8(0);
  if ((family !== AF_INET && family !== AF_INET6) || !ROUTE_TYPES.has(p.readUInt8(7))) return null;
  const t = find(p, RTMSG, p.length, RTA.TABLE);
  if ((t >= 0 ? p.readUInt32LE(t) : p.readUInt8(4)) !== RT_TABLE_MAIN) return null;
  const len = p.readUInt8(1);
  const d = find(p, RTMSG, p.length, RTA.DST);
  const v4 = family === AF_INET;
  const addr = d < 0 ? (v4 ? '0.0.0.0' : '::') : v4 ? [...p.subarray(d, d + 4)].join('.') : ipv6Text(p.subarray(d, valueEnd(p, d)));
  const o = find(p, RTMSG, p.length, RTA.OIF);
  return { family: v4 ? 4 : 6, dst: `${addr}/${len}`, oif: o >= 0 ? p.readInt32LE(o) : null };
}

/** The routes with their devices named (`names`: ifindex → name of the links dumped). */
export function namedRoutes(dumped: readonly DumpedRoute[], names: ReadonlyMap<number, string>): Route[] {
  return dumped.map((r) => ({ family: r.family, dst: r.dst, dev: r.oif === null ? null : (names.get(r.oif) ?? null) }));
}
