// IPv6 forwarding from an rtnetlink netconf dump (RTM_GETNETCONF, family AF_INET6; netlink.ts):
// one message per link and two for the namespace, NETCONFA_IFINDEX_ALL (`net.ipv6.conf.all`) and
// NETCONFA_IFINDEX_DEFAULT (`net.ipv6.conf.default`, what new links start with). Unlike IPv4, the
// kernel forwards an IPv6 packet only when `all` is on, whatever the links say (ip6_forward).
import type { NetlinkMessage } from './netlink.ts';
import { AF_INET6, find } from './netlink-attrs.ts';

/** RTM_GETNETCONF and its answers' type, of <linux/rtnetlink.h>. */
export const RTM_GETNETCONF = 82;
const RTM_NEWNETCONF = 80;
const NETCONFA = { IFINDEX: 1, FORWARDING: 2 } as const;
const IFINDEX_ALL = -1;
const IFINDEX_DEFAULT = -2;
/** struct netconfmsg: the family (one byte, padded to 4). */
const NETCONFMSG = 4;

/** An IPv6 netconf dump's request: struct netconfmsg of AF_INET6. */
export const NETCONF6_DUMP_REQUEST: Buffer = Buffer.from([AF_INET6, 0, 0, 0]);

/** One entry of the dump: a link's ifindex, or -1 (`all`) or -2 (`default`), and its forwarding. */
export interface DumpedNetconf {
  readonly ifindex: number;
  readonly forwarding: boolean;
}

/** The IPv6 netconf entry in `m` that carries forwarding, or null for any other message. */
export function netconfOf(m: NetlinkMessage): DumpedNetconf | null {
  const p = m.payload;
  if (m.type !== RTM_NEWNETCONF || p.length < NETCONFMSG || p.readUInt8(0) !== AF_INET6) return null;
  const i = find(p, NETCONFMSG, p.length, NETCONFA.IFINDEX);
  const f = find(p, NETCONFMSG, p.length, NETCONFA.FORWARDING);
  if (i < 0 || f < 0) return null;
  return { ifindex: p.readInt32LE(i), forwarding: p.readInt32LE(f) !== 0 };
}

/** `net.ipv6.conf.all.forwarding` and `.default.forwarding` from the entries; null when the dump lacks either. */
export function ipv6Forwarding(entries: readonly DumpedNetconf[]): { readonly all: boolean; readonly default: boolean } | null {
  const all = entries.find((e) => e.ifindex === IFINDEX_ALL);
  const def = entries.find((e) => e.ifindex === IFINDEX_DEFAULT);
  return all === undefined || def === undefined ? null : { all: all.forwarding, default: def.forwarding };
}
