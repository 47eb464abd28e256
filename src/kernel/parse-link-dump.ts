// Links and addresses from rtnetlink dumps (RTM_GETLINK, RTM_GETADDR; netlink.ts), as the
// parsers of `ip -j -d link show` and `ip -j addr show` read them: the same fields, the same text
// (iproute2 6.1's formatting of groups, MAC addresses, scopes), the kernel's order. A dump always
// carries a link's kind and its IPv6 address generation mode, so nothing is remembered between
// reads; it also carries each link's IPv4 settings, route_localnet among them (no sysctl read).
import { readFileSync } from 'node:fs';
import type { NetlinkMessage } from './netlink.ts';
import { AF_INET, AF_INET6, cString, find, valueEnd } from './netlink-attrs.ts';
import type { Addr, Link, VxlanInfo } from './types.ts';

export const RTM_GETLINK = 18;
export const RTM_GETADDR = 22;
const RTM_NEWLINK = 16;
const RTM_NEWADDR = 20;
const IFF_UP = 0x1;
const IFLA = { ADDRESS: 1, IFNAME: 3, MTU: 4, LINK: 5, MASTER: 10, LINKINFO: 18, IFALIAS: 20, AF_SPEC: 26, GROUP: 27, LINK_NETNSID: 37, PROP_LIST: 52 } as const;
/** IFLA_ALT_IFNAME: one altname, nested in IFLA_PROP_LIST (`ip link property add … altname`). */
const IFLA_ALT_IFNAME = 53;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
/** IFLA_VXLAN_* of <linux/if_link.h>: the attributes `ip -d` prints as `id`, `local`, `port`, `local6`. */
const IFLA_VXLAN = { ID: 1, LOCAL: 4, PORT: 15, LOCAL6: 17 } as const;
const IFLA_INET_CONF = 1;
/** IPV4_DEVCONF_FORWARDING and IPV4_DEVCONF_ROUTE_LOCALNET of <linux/ip.h>; IFLA_INET_CONF holds IPV4_DEVCONF_x at x - 1. */
const IPV4_DEVCONF_FORWARDING = 1;
const IPV4_DEVCONF_ROUTE_LOCALNET = 26;
const IFLA_INET6_CONF = 2;
/** DEVCONF_ACCEPT_RA of <linux/ipv6.h>; IFLA_INET6_CONF holds DEVCONF_x at x. */
const DEVCONF_ACCEPT_RA = 3;
const IFLA_INET6_ADDR_GEN_MODE = 8;
const IFA = { ADDRESS: 1, LOCAL: 2 } as const;
/** RTEXT_FILTER_SKIP_STATS: no counters in the dump (a quarter of its bytes). */
const RTEXT_FILTER_SKIP_STATS = 1 << 3;

/** A link dump's request: struct ifinfomsg of zeros, and IFLA_EXT_MASK (29). */
export const LINK_DUMP_REQUEST: Buffer = (() => {
  const b = Buffer.alloc(24);
  b.writeUInt16LE(8, 16);
  b.writeUInt16LE(29, 18);
  b.writeUInt32LE(RTEXT_FILTER_SKIP_STATS, 20);
  return b;
})();

/** An address dump's request: struct ifaddrmsg of zeros (every family). */
export const ADDR_DUMP_REQUEST: Buffer = Buffer.alloc(8);

/** A link of the dump, its master and peer by ifindex (named once every link is read). */
export interface DumpedLink extends Omit<Link, 'master' | 'peer' | 'addrGenMode' | 'altnames' | 'vxlan'> {
  /** undefined (not absent: one object shape for every link) when not a bridge's. */
  readonly addrGenMode: string | undefined;
  /** undefined (as above) when the link has no altname. */
  readonly altnames: readonly string[] | undefined;
  /** undefined (as above) when not a VXLAN device. */
  readonly vxlan: VxlanInfo | undefined;
  readonly masterIndex: number | null;
  /** IFLA_LINK of a veth in this namespace: its peer's ifindex. */
  readonly peerIndex: number | null;
  /** net.ipv4.conf.<link>.route_localnet; null when the link has no IPv4 settings. */
  readonly routeLocalnet: boolean | null;
  /** net.ipv4.conf.<link>.forwarding (the kernel forwards what comes in on the link only when on); null as above. */
  readonly forwarding: boolean | null;
  /** net.ipv6.conf.<bridge>.accept_ra is not 0 (the host takes router advertisements there); null when not a bridge or no IPv6 settings. */
  readonly acceptRa: boolean | null;
}

const ADDR_GEN_MODES = ['eui64', 'none', 'stable_secret', 'random'];
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Scratch for `linkOf` (synchronous): where the value of each attribute type up to SLOTS starts and ends, -1: absent. */
const SLOTS = 64;
const starts = new Int32Array(SLOTS);
const ends = new Int32Array(SLOTS);

/** Fills `starts` and `ends` with the top-level attributes of a link message (the first of each type). */
function scanLink(p: Buffer): void {
  starts.fill(-1);
  let off = 16;
  while (off + 4 <= p.length) {
    const len = p.readUInt16LE(off);
    if (len < 4 || off + len > p.length) break;
    const type = p.readUInt16LE(off + 2) & 0x3fff;
    if (type < SLOTS && starts[type] === -1) {
      starts[type] = off + 4;
      ends[type] = off + len;
    }
    off += (len + 3) & ~3;
  }
}

/** The value's start of attribute `type` from the last `scanLink`, -1 when absent. */
const at = (type: number): number => starts[type] ?? -1;
const end = (type: number): number => ends[type] ?? -1;

/** The link in one message of a link dump; null for another message. */
export function linkOf(m: NetlinkMessage, groups: ReadonlyMap<number, string>): DumpedLink | null {
  if (m.type !== RTM_NEWLINK || m.payload.length < 16) return null;
  const p = m.payload;
  scanLink(p);
  if (at(IFLA.IFNAME) < 0 || at(IFLA.MTU) < 0) return null;
  const info = at(IFLA.LINKINFO) < 0 ? -1 : find(p, at(IFLA.LINKINFO), end(IFLA.LINKINFO), IFLA_INFO_KIND);
  const kind = info < 0 ? null : cString(p, info, valueEnd(p, info));
  const af = at(IFLA.AF_SPEC);
  const afEnd = end(IFLA.AF_SPEC);
  const inet = af < 0 ? -1 : find(p, af, afEnd, AF_INET);
  const conf = inet < 0 ? -1 : find(p, inet, valueEnd(p, inet), IFLA_INET_CONF);
  const localnet = conf + (IPV4_DEVCONF_ROUTE_LOCALNET - 1) * 4;
  const forwarding = conf + (IPV4_DEVCONF_FORWARDING - 1) * 4;
  const inet6 = af < 0 || kind !== 'bridge' ? -1 : find(p, af, afEnd, AF_INET6);
  const gen = inet6 < 0 ? -1 : find(p, inet6, valueEnd(p, inet6), IFLA_INET6_ADDR_GEN_MODE);
  const conf6 = inet6 < 0 ? -1 : find(p, inet6, valueEnd(p, inet6), IFLA_INET6_CONF);
  const acceptRa = conf6 + DEVCONF_ACCEPT_RA * 4;
  const iflink = at(IFLA.LINK) < 0 ? 0 : p.readUInt32LE(at(IFLA.LINK));
  const otherNetns = at(IFLA.LINK_NETNSID) >= 0;
  const veth = kind === 'veth';
  const mode = gen < 0 ? undefined : (ADDR_GEN_MODES[p.readUInt8(gen)] ?? `0x${HEX[p.readUInt8(gen)] ?? ''}`);
  return {
    name: cString(p, at(IFLA.IFNAME), end(IFLA.IFNAME)),
    index: p.readInt32LE(4),
    kind,
    mtu: p.readUInt32LE(at(IFLA.MTU)),
    up: (p.readUInt32LE(8) & IFF_UP) !== 0,
    alias: at(IFLA.IFALIAS) < 0 ? null : cString(p, at(IFLA.IFALIAS), end(IFLA.IFALIAS)),
    group: at(IFLA.GROUP) < 0 ? null : groupName(p.readInt32LE(at(IFLA.GROUP)), groups),
    mac: at(IFLA.ADDRESS) < 0 ? null : macText(p, at(IFLA.ADDRESS), end(IFLA.ADDRESS), p.readUInt16LE(2)),
    peerInOtherNetns: veth && otherNetns,
    addrGenMode: mode,
    altnames: at(IFLA.PROP_LIST) < 0 ? undefined : altnamesOf(p, at(IFLA.PROP_LIST), end(IFLA.PROP_LIST)),
    vxlan: kind === 'vxlan' ? vxlanOf(p, at(IFLA.LINKINFO), end(IFLA.LINKINFO)) : undefined,
    masterIndex: at(IFLA.MASTER) < 0 ? null : p.readUInt32LE(at(IFLA.MASTER)),
    peerIndex: veth && !otherNetns && iflink !== 0 ? iflink : null,
    routeLocalnet: conf >= 0 && valueEnd(p, conf) >= localnet + 4 ? p.readUInt32LE(localnet) !== 0 : null,
    forwarding: conf >= 0 && valueEnd(p, conf) >= forwarding + 4 ? p.readUInt32LE(forwarding) !== 0 : null,
    acceptRa: conf6 >= 0 && valueEnd(p, conf6) >= acceptRa + 4 ? p.readInt32LE(acceptRa) !== 0 : null,
  };
}

/** The IFLA_ALT_IFNAME names nested from `from` to `to` (an IFLA_PROP_LIST), in order; undefined when none. */
function altnamesOf(p: Buffer, from: number, to: number): string[] | undefined {
  const out: string[] = [];
  let off = from;
  while (off + 4 <= to) {
    const len = p.readUInt16LE(off);
    if (len < 4 || off + len > to) break;
    if ((p.readUInt16LE(off + 2) & 0x3fff) === IFLA_ALT_IFNAME) out.push(cString(p, off + 4, off + len));
    off += (len + 3) & ~3;
  }
  return out.length > 0 ? out : undefined;
}

/** The links with their masters' and peers' names (`if<N>` for an index not among them, as `ip` prints it). */
export function namedLinks(dumped: readonly DumpedLink[], names: ReadonlyMap<number, string>): Link[] {
  const name = (i: number | null) => (i === null ? null : (names.get(i) ?? `if${i}`));
  // A literal of one shape, not a spread: spreading 4,000 links cost more than reading them.
  return dumped.map((l) => {
    const out = { name: l.name, index: l.index, kind: l.kind, master: name(l.masterIndex), mtu: l.mtu, up: l.up, alias: l.alias, group: l.group, mac: l.mac, peer: name(l.peerIndex), peerInOtherNetns: l.peerInOtherNetns };
    const withMode = l.addrGenMode === undefined ? out : { ...out, addrGenMode: l.addrGenMode };
    const more = l.altnames === undefined ? withMode : { ...withMode, altnames: l.altnames };
    return l.vxlan === undefined ? more : { ...more, vxlan: l.vxlan };
  });
}

/** IFLA_INFO_DATA of a VXLAN device's IFLA_LINKINFO (from `info` to `infoEnd`): its VNI, local address and port, as `ip -d` prints them. */
function vxlanOf(p: Buffer, info: number, infoEnd: number): VxlanInfo | undefined {
  const data = find(p, info, infoEnd, IFLA_INFO_DATA);
  if (data < 0) return undefined;
  const dataEnd = valueEnd(p, data);
  const id = find(p, data, dataEnd, IFLA_VXLAN.ID);
  const port = find(p, data, dataEnd, IFLA_VXLAN.PORT);
  const v4 = find(p, data, dataEnd, IFLA_VXLAN.LOCAL);
  const v6 = find(p, data, dataEnd, IFLA_VXLAN.LOCAL6);
  // `ip` prints an address that is set: not 0.0.0.0 nor ::.
  const set = (at: number, len: number) => at >= 0 && valueEnd(p, at) - at >= len && p.subarray(at, at + len).some((b) => b !== 0);
  const local = set(v4, 4) ? [...p.subarray(v4, v4 + 4)].join('.') : set(v6, 16) ? ipv6Text(p.subarray(v6, v6 + 16)) : null;
  return { vni: id < 0 ? 0 : p.readUInt32LE(id), local, port: port < 0 ? 0 : p.readUInt16BE(port) };
}

/** Each link's name by its ifindex. */
export const namesOf = (dumped: readonly DumpedLink[]): Map<number, string> => new Map(dumped.map((d) => [d.index, d.name]));

/** Device group names as `ip` prints them: /etc/iproute2/group (0 is `default` without it). */
export function readGroupNames(file = '/etc/iproute2/group'): Map<number, string> {
  const out = new Map<number, string>([[0, 'default']]);
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    const m = /^\s*(0x[0-9a-f]+|\d+)\s+(\S+)/i.exec(line);
    if (m?.[1] !== undefined && m[2] !== undefined) out.set(Number(m[1]), m[2]);
  }
  return out;
}

let hostGroups: Map<number, string> | null = null;

/** This host's device group names, read once per process (`ip` reads the file on every run). */
export const hostGroupNames = (): ReadonlyMap<number, string> => (hostGroups ??= readGroupNames());

function groupName(id: number, groups: ReadonlyMap<number, string>): string {
  return groups.get(id) ?? String(id);
}

const ARPHRD_IPV4_TUNNELS = new Set([768, 776, 778]);
const ARPHRD_IPV6_TUNNELS = new Set([769, 823]);

/** ll_addr_n2a: the bytes from `from` to `to` as an IPv4 or IPv6 address for IP tunnels, else in hex joined by colons. */
function macText(p: Buffer, from: number, to: number, type: number): string {
  const len = to - from;
  if (len === 4 && ARPHRD_IPV4_TUNNELS.has(type)) return [...p.subarray(from, to)].join('.');
  if (len === 16 && ARPHRD_IPV6_TUNNELS.has(type)) return ipv6Text(p.subarray(from, to));
  let out = HEX[p[from] ?? 0] ?? '';
  for (let i = from + 1; i < to; i++) out += `:${HEX[p[i] ?? 0] ?? ''}`;
  return out;
}

/** inet_ntop(AF_INET6) as glibc writes it: the first longest run of two or more zero groups as `::`, an embedded IPv4 for ::a.b.c.d and ::ffff:a.b.c.d. */
export function ipv6Text(b: Buffer): string {
  const w = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2));
  let best = { base: -1, len: 0 };
  let cur = { base: -1, len: 0 };
  w.forEach((x, i) => {
    if (x === 0) cur = cur.base === -1 ? { base: i, len: 1 } : { base: cur.base, len: cur.len + 1 };
    else cur = { base: -1, len: 0 };
    if (cur.base !== -1 && cur.len > best.len) best = cur;
  });
  if (best.len < 2) best = { base: -1, len: 0 };
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (best.base !== -1 && i >= best.base && i < best.base + best.len) {
      if (i === best.base) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    if (i === 6 && best.base === 0 && (best.len === 6 || (best.len === 5 && w[5] === 0xffff))) return `${out}${[...b.subarray(12)].join('.')}`;
    out += (w[i] ?? 0).toString(16);
  }
  return best.base !== -1 && best.base + best.len === 8 ? `${out}:` : out;
}

const SCOPES = new Map([[0, 'global'], [200, 'site'], [253, 'link'], [254, 'host'], [255, 'nowhere']]);

/** An address of the dump, its device by ifindex. */
export interface DumpedAddr {
  readonly ifindex: number;
  readonly addr: Omit<Addr, 'dev'>;
}

/** The address in one message of an address dump; null for another message or family. */
export function addrOf(m: NetlinkMessage): DumpedAddr | null {
  if (m.type !== RTM_NEWADDR || m.payload.length < 8) return null;
  const p = m.payload;
  const family = p.readUInt8(0);
  if (family !== AF_INET && family !== AF_INET6) return null;
  const l = find(p, 8, p.length, IFA.LOCAL);
  const local = l >= 0 ? l : find(p, 8, p.length, IFA.ADDRESS);
  if (local < 0) return null;
  const a = p.subarray(local, valueEnd(p, local));
  const scope = p.readUInt8(3);
  return {
    ifindex: p.readInt32LE(4),
    addr: {
      family: family === AF_INET ? 'inet' : 'inet6',
      cidr: `${family === AF_INET ? [...a.subarray(0, 4)].join('.') : ipv6Text(a)}/${p.readUInt8(1)}`,
      scope: SCOPES.get(scope) ?? String(scope),
    },
  };
}

/** The addresses of `links` (in their order; each one's in the dump's order), named. */
export function addrsOf(links: readonly Link[], dumped: readonly DumpedAddr[]): Addr[] {
  const byIndex = new Map<number, Omit<Addr, 'dev'>[]>();
  for (const d of dumped) {
    const list = byIndex.get(d.ifindex);
    if (list === undefined) byIndex.set(d.ifindex, [d.addr]);
    else list.push(d.addr);
  }
  return links.flatMap((l) => (byIndex.get(l.index) ?? []).map((a) => ({ dev: l.name, ...a })));
}
