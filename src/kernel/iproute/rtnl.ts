// Link changes as rtnetlink requests sent from this process (netlink.ts): the same requests
// `ip -batch` sends for the same steps (steps.ts), without starting an `ip` process, whose fork
// from the daemon cost more than the kernel work of a container's veth (issue 11: the process
// spawns were 85 % of the CPU of the reconcile passes on Docker's path). They are sent as
// `ip -force -batch` runs its lines (rtnl-apply.ts), and fail in the words `ip` prints. A link
// is changed with RTM_SETLINK and deleted with RTM_DELLINK by its name: never RTM_NEWLINK
// without NLM_F_CREATE, which for a missing name carrying a group changes every link of that
// group (rtnl_group_changelink, what `ip link set group` does). Masters, and the devices of
// addresses and routes, are found by name (RTM_GETLINK) once per apply.
import { CREATE_GROUP, type LinkChange } from '../changes.ts';
import type { NetlinkRequests } from '../netlink.ts';
import { cstr, encodeAttrs, u32, u8, type Attr } from '../netlink-attrs.ts';
import { applyStepsByNetlink, missingDevice, refusal, type Request, type StepCodec } from '../rtnl-apply.ts';
import type { ChangesResult } from '../types.ts';
import { linkSteps, type LinkStep } from './steps.ts';

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_SETLINK = 19;
const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const RTM_NEWROUTE = 24;
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_MASTER = 10;
const IFLA_LINKINFO = 18;
const IFLA_IFALIAS = 20;
const IFLA_AF_SPEC = 26;
const IFLA_GROUP = 27;
const IFLA_NUM_TX_QUEUES = 31;
const IFLA_NUM_RX_QUEUES = 32;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFLA_INET6_ADDR_GEN_MODE = 8;
const IN6_ADDR_GEN_MODE_NONE = 1;
const IFF_UP = 1;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_F_NODAD = 0x2;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_PRIORITY = 6;
const RTA_PREFSRC = 7;
const RT_TABLE_MAIN = 254;
const RTPROT_KERNEL = 2;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RT_SCOPE_HOST = 254;
const RTN_UNICAST = 1;
const AF_UNSPEC = 0;
const AF_INET = 2;
const AF_INET6 = 10;
const ENODEV = 19;
/** The default device group (`group default`). */
const DEFAULT_GROUP = 0;

/** struct ifinfomsg. */
function ifinfo(index = 0, up = false): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(AF_UNSPEC, 0);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(up ? IFF_UP : 0, 8);
  b.writeUInt32LE(up ? IFF_UP : 0, 12);
  return b;
}

/** An address's bytes (network order) and family; null when `s` is not one. */
export function ipBytes(s: string): { readonly family: 4 | 6; readonly bytes: Buffer } | null {
  const v4 = (t: string): number[] | null => {
    const parts = t.split('.');
    // No leading zero (octal to inet_aton): refused as the domain's parser (cidr.ts) refuses it.
    if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)) return null;
    return parts.map(Number);
  };
  if (!s.includes(':')) {
    const b = v4(s);
    return b ? { family: 4, bytes: Buffer.from(b) } : null;
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  // An embedded IPv4 address only as the address's last two groups (`::ffff:10.0.0.1`).
  const groups = (h: string, atEnd: boolean): number[] | null => {
    if (h === '') return [];
    const out: number[] = [];
    const parts = h.split(':');
    for (const [i, p] of parts.entries()) {
      if (atEnd && i === parts.length - 1 && p.includes('.')) {
        const b = v4(p);
        if (!b) return null;
        out.push(((b[0] ?? 0) << 8) | (b[1] ?? 0), ((b[2] ?? 0) << 8) | (b[3] ?? 0));
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) out.push(parseInt(p, 16));
      else return null;
    }
    return out;
  };
  const head = groups(halves[0] ?? '', halves.length === 1);
  const tail = halves.length === 2 ? groups(halves[1] ?? '', true) : [];
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = Buffer.alloc(16);
  all.forEach((g, i) => bytes.writeUInt16BE(g, i * 2));
  return { family: 6, bytes };
}

/** `addr/len` as bytes and prefix length; null when malformed. */
function prefixOf(cidr: string): { readonly family: 4 | 6; readonly bytes: Buffer; readonly len: number } | null {
  const [addr, len, ...rest] = cidr.split('/');
  const ip = ipBytes(addr ?? '');
  const n = Number(len);
  if (!ip || rest.length > 0 || !/^\d{1,3}$/.test(len ?? '') || n > ip.bytes.length * 8) return null;
  return { ...ip, len: n };
}

/** The devices a step names by index, found by name first: `[name, what ip says when it is missing]`. */
export function devicesOf(s: LinkStep): Array<readonly [string, string]> {
  switch (s.op) {
    case 'link.add':
    case 'link.del':
      return [];
    case 'link.set':
      return s.master === undefined ? [] : [[s.master, `Error: argument "${s.master}" is wrong: Device does not exist`]];
    case 'addr.add':
    case 'addr.del':
    case 'route.replace':
      return [[s.dev, missingDevice(s.dev)]];
  }
}

/**
 * The rtnetlink request of one step, the devices it names given by index (`index`, found by
 * `devicesOf`); a string says why there is none (an address that does not parse). Pure.
 */
export function encodeStep(s: LinkStep, index: (name: string) => number): Request | string {
  const group = Number(CREATE_GROUP);
  switch (s.op) {
    case 'link.add': {
      const kind: Attr = [IFLA_INFO_KIND, Buffer.from(s.kind)];
      if (!s.veth) {
        return { type: RTM_NEWLINK, flags: NLM_F_CREATE | NLM_F_EXCL, body: Buffer.concat([ifinfo(), encodeAttrs([[IFLA_IFNAME, cstr(s.name)], [IFLA_GROUP, u32(group)], [IFLA_LINKINFO, [kind]]])]) };
      }
      const { mtu, peer } = s.veth;
      const queues: Attr[] = [[IFLA_NUM_TX_QUEUES, u32(1)], [IFLA_NUM_RX_QUEUES, u32(1)]];
      if (peer.mac !== null && !/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(peer.mac)) return `"${peer.mac}" is not a MAC address`;
      const mac = peer.mac === null ? null : Buffer.from(peer.mac.split(':').map((h) => parseInt(h, 16)));
      const peerInfo = Buffer.concat([ifinfo(), encodeAttrs([[IFLA_IFNAME, cstr(peer.name)], ...(mac ? [[IFLA_ADDRESS, mac] as const] : []), [IFLA_MTU, u32(peer.mtu)], [IFLA_GROUP, u32(group)], ...queues])]);
      const attrs: Attr[] = [[IFLA_IFNAME, cstr(s.name)], [IFLA_MTU, u32(mtu)], [IFLA_GROUP, u32(group)], ...queues, [IFLA_LINKINFO, [kind, [IFLA_INFO_DATA, [[VETH_INFO_PEER, peerInfo]]]]]];
      return { type: RTM_NEWLINK, flags: NLM_F_CREATE | NLM_F_EXCL, body: Buffer.concat([ifinfo(), encodeAttrs(attrs)]) };
    }
    case 'link.set': {
      const attrs: Attr[] = [];
      if (s.mtu !== undefined) attrs.push([IFLA_MTU, u32(s.mtu)]);
      if (s.alias !== undefined) attrs.push([IFLA_GROUP, u32(DEFAULT_GROUP)], [IFLA_IFALIAS, Buffer.from(s.alias)]);
      if (s.master !== undefined) attrs.push([IFLA_MASTER, u32(index(s.master))]);
      if (s.noLinkLocal) attrs.push([IFLA_AF_SPEC, [[AF_INET6, [[IFLA_INET6_ADDR_GEN_MODE, u8(IN6_ADDR_GEN_MODE_NONE)]]]]]);
      return { type: RTM_SETLINK, flags: 0, body: Buffer.concat([ifinfo(0, s.up === true), encodeAttrs([[IFLA_IFNAME, cstr(s.name)], ...attrs])]) };
    }
    case 'link.del':
      return { type: RTM_DELLINK, flags: 0, body: Buffer.concat([ifinfo(), encodeAttrs([[IFLA_IFNAME, cstr(s.name)]])]) };
    case 'addr.add':
    case 'addr.del': {
      const p = prefixOf(s.cidr);
      if (!p) return `"${s.cidr}" is not an address with a prefix length`;
      const add = s.op === 'addr.add';
      const head = Buffer.alloc(8);
      head.writeUInt8(p.family === 4 ? AF_INET : AF_INET6, 0);
      head.writeUInt8(p.len, 1);
      head.writeUInt8(add && p.family === 6 ? IFA_F_NODAD : 0, 2);
      // ip's default scope: host for 127.0.0.0/8, else global (the kernel scopes IPv6 itself).
      head.writeUInt8(add && p.family === 4 && p.bytes[0] === 127 ? RT_SCOPE_HOST : RT_SCOPE_UNIVERSE, 3);
      head.writeUInt32LE(index(s.dev), 4);
      const attrs: Attr[] = [[IFA_LOCAL, p.bytes], ...(add ? [[IFA_ADDRESS, p.bytes] as const] : [])];
      return { type: add ? RTM_NEWADDR : RTM_DELADDR, flags: add ? NLM_F_CREATE | NLM_F_EXCL : 0, body: Buffer.concat([head, encodeAttrs(attrs)]) };
    }
    case 'route.replace': {
      const dst = prefixOf(s.dst);
      if (!dst) return `"${s.dst}" is not a prefix`;
      const src = dst.family === 4 ? ipBytes(s.src) : null;
      if (dst.family === 4 && src?.family !== 4) return `"${s.src}" is not an IPv4 address`;
      const head = Buffer.alloc(12);
      head.writeUInt8(dst.family === 4 ? AF_INET : AF_INET6, 0);
      head.writeUInt8(dst.len, 1);
      head.writeUInt8(RT_TABLE_MAIN, 4);
      head.writeUInt8(RTPROT_KERNEL, 5);
      head.writeUInt8(dst.family === 4 ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE, 6);
      head.writeUInt8(RTN_UNICAST, 7);
      const attrs: Attr[] = [[RTA_DST, dst.bytes], [RTA_OIF, u32(index(s.dev))], ...(src ? [[RTA_PREFSRC, src.bytes] as const] : [[RTA_PRIORITY, u32(256)] as const])];
      return { type: RTM_NEWROUTE, flags: NLM_F_CREATE | NLM_F_REPLACE, body: Buffer.concat([head, encodeAttrs(attrs)]) };
    }
  }
}

/** How link steps become requests: a deletion is sent from another thread (it waits ~16 ms for a veth, ~45 ms for a bridge, for an RCU grace period). */
/** The links a step names: the one it makes, changes or deletes, its master, the device of an address or route. */
function linkNames(s: LinkStep): readonly string[] {
  switch (s.op) {
    case 'link.add':
    case 'link.del':
      return [s.name];
    case 'link.set':
      return s.master === undefined ? [s.name] : [s.name, s.master];
    default:
      return [s.dev];
  }
}

const LINK_CODEC: StepCodec<LinkStep> = {
  devices: devicesOf,
  encode: encodeStep,
  remakes: (s) => (s.op === 'link.add' || s.op === 'link.del' ? s.name : null),
  creates: (s) => (s.op === 'link.add' ? s.name : null),
  names: linkNames,
  slow: (s) => s.op === 'link.del',
  failure: (s, a, nl) => (a.errno === ENODEV && (s.op === 'link.set' || s.op === 'link.del') ? missingDevice(s.name) : refusal(nl, a)),
};

/**
 * Applies the changes in order, every step of each (`ip -force -batch` semantics) but none
 * after a failed `link add` of the same change, nor any change naming the link it did not make,
 * and reports each change that failed once, with its first failure.
 * @throws DriverError `LN_ERR_KERNEL_EXEC` when the socket itself fails (nothing after that ran).
 */
export function applyLinkChanges(nl: NetlinkRequests, changes: readonly LinkChange[]): Promise<ChangesResult> {
  return applyStepsByNetlink(nl, changes, linkSteps, LINK_CODEC);
}
