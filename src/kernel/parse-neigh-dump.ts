// FDB and neighbour entries from rtnetlink dumps (RTM_GETNEIGH; netlink.ts), as the parsers of
// `bridge -j fdb show` and `ip -j -4 neigh show` (parse-vxlan.ts) read them: the same entries
// kept, the same text (lower-case MACs, addresses as inet_ntop writes them). Devices are named
// from `names` (index → name); an entry of a device not in it is left out, which is how a read
// keeps only the VXLAN devices' and the bridges' entries.
import type { NetlinkMessage } from './netlink.ts';
import { AF_INET, encodeAttrs, find, u32, valueEnd } from './netlink-attrs.ts';
import { ipv6Text } from './parse-link-dump.ts';
import type { Neigh, VxlanFdb } from './parse-vxlan.ts';

export const RTM_GETNEIGH = 30;
const RTM_NEWNEIGH = 28;
const AF_BRIDGE = 7;
const NDA_DST = 1;
const NDA_LLADDR = 2;
const NDA_IFINDEX = 8;
const NDA_MASTER = 9;
const NUD_NOARP = 0x40;
const NUD_PERMANENT = 0x80;
/** struct ndmsg: family, pads, ifindex (s32 at 4), state (u16 at 8), flags, type. */
const NDMSG_LEN = 12;

/**
 * The request of one port's FDB: struct ifinfomsg with AF_BRIDGE and the port's index, which
 * the kernel reads as the port to dump (rtnl_fdb_dump's legacy header; a kernel that does not
 * filter dumps every port's, and `fdbOf` keeps only the ports in its names).
 */
export function fdbDumpRequest(port: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(AF_BRIDGE, 0);
  b.writeInt32LE(port, 4);
  return b;
}

/**
 * The request of one device's IPv4 neighbours: struct ndmsg with AF_INET and NDA_IFINDEX, which
 * the kernel reads as the device to dump (neigh_dump_filter, Linux 4.16+; `ip neigh show dev D`
 * sends the same), so a host's ARP table is not read for a few bridges' entries. An older kernel
 * dumps every device's: `neighOf` keeps only the named ones.
 */
export function neighDumpRequest(ifindex: number): Buffer {
  const b = Buffer.alloc(NDMSG_LEN);
  b.writeUInt8(AF_INET, 0);
  return Buffer.concat([b, encodeAttrs([[NDA_IFINDEX, u32(ifindex)]])]);
}

const hex2 = (n: number) => n.toString(16).padStart(2, '0');

/** The value of attribute `type` as an address (4 or 16 bytes) or a MAC; null when absent. */
function address(p: Buffer, type: number): string | null {
  const at = find(p, NDMSG_LEN, p.length, type);
  if (at < 0) return null;
  const v = p.subarray(at, valueEnd(p, at));
  if (type === NDA_DST && v.length === 4) return [...v].join('.');
  if (type === NDA_DST && v.length === 16) return ipv6Text(v);
  return [...v].map(hex2).join(':');
}

/** The fields every entry has: its device's name (null when not in `names`) and state. */
function head(m: NetlinkMessage, family: number, names: ReadonlyMap<number, string>): { dev: string; state: number } | null {
  const p = m.payload;
  if (m.type !== RTM_NEWNEIGH || p.length < NDMSG_LEN || p.readUInt8(0) !== family) return null;
  const dev = names.get(p.readInt32LE(4));
  return dev === undefined ? null : { dev, state: p.readUInt16LE(8) };
}

/**
 * The FDB entry in one message of a bridge FDB dump, as parseVxlanFdb keeps it: an entry with a
 * `dst` (a VXLAN device's own), or the bridge's static one (a master, `static`: no permanent
 * flag, the no-ARP one); null for any other (learned, the port's own MAC) or another message.
 */
export function fdbOf(m: NetlinkMessage, names: ReadonlyMap<number, string>): VxlanFdb | null {
  const h = head(m, AF_BRIDGE, names);
  if (h === null) return null;
  const p = m.payload;
  const dst = address(p, NDA_DST);
  const bridged = find(p, NDMSG_LEN, p.length, NDA_MASTER) >= 0 && (h.state & NUD_PERMANENT) === 0 && (h.state & NUD_NOARP) !== 0;
  const mac = address(p, NDA_LLADDR);
  if ((dst === null && !bridged) || mac === null) return null;
  return { dev: h.dev, mac, dst };
}

/**
 * The neighbour entry in one message of an IPv4 neighbour dump, as parseNeighs reads what
 * `ip -4 neigh show` prints (which hides no-ARP entries); null for another message.
 */
export function neighOf(m: NetlinkMessage, names: ReadonlyMap<number, string>): Neigh | null {
  const h = head(m, AF_INET, names);
  if (h === null || (h.state & NUD_NOARP) !== 0) return null;
  const dst = address(m.payload, NDA_DST);
  if (dst === null) return null;
  return { dev: h.dev, dst, lladdr: address(m.payload, NDA_LLADDR), permanent: (h.state & NUD_PERMANENT) !== 0 };
}
