// Deleting stale connection-tracking entries, as Docker's bridge driver does at
// ProgramExternalConnectivity and RevokeExternalConnectivity (moby clearConntrackEntries,
// moby/moby#8795): an entry made under the firewall of before keeps its NAT (a UDP client that
// keeps sending stays bound to the mapping it got first: a removed container's address, or the host
// itself for a port published after it first sent). Through ctnetlink from this process (no
// `conntrack` binary, which hosts often lack): one dump of the table (IPCTNL_MSG_CT_GET), the
// entries picked here, each deleted by its original tuple and id (IPCTNL_MSG_CT_DELETE; an id
// that no longer matches, or an entry gone meanwhile, is ENOENT and skipped).
// Why not the kernel's dump filter (CTA_FILTER, Linux 5.9+): it ANDs the fields it is given, so
// "any of the four addresses" takes four dumps; one dump serves every flush of a pass.
import { DriverError } from '../errors.ts';
import { find, valueEnd } from './netlink-attrs.ts';
import { NETLINK_NETFILTER, openNetlink, openRequests, type NetlinkMessage } from './netlink.ts';

const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_NEW = 0;
const IPCTNL_MSG_CT_GET = 1;
const IPCTNL_MSG_CT_DELETE = 2;
/** The dump's request type: ctnetlink's GET. */
const CT_GET = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
/** Each entry of a dump comes as a NEW. */
const CT_NEW = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW;
const CT_DELETE = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE;
const CTA_TUPLE_ORIG = 1;
const CTA_TUPLE_REPLY = 2;
const CTA_ID = 12;
const CTA_ZONE = 18;
const CTA_TUPLE_IP = 1;
const CTA_TUPLE_PROTO = 2;
const CTA_IP_V4_SRC = 1;
const CTA_IP_V4_DST = 2;
const CTA_IP_V6_SRC = 3;
const CTA_IP_V6_DST = 4;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_SRC_PORT = 2;
const CTA_PROTO_DST_PORT = 3;
const ENOENT = 2;
const L4: Readonly<Record<string, number>> = { tcp: 6, udp: 17, sctp: 132 };

/** What to delete: entries of a protocol to a host port (on one host address, if given), or entries with an address in either direction. */
export type ConntrackFlush =
  | { readonly kind: 'port'; readonly proto: 'tcp' | 'udp' | 'sctp'; readonly port: number; readonly hostIp?: string }
  | { readonly kind: 'address'; readonly address: string };

/** One direction of an entry. Addresses as text: dotted IPv4, IPv6 as eight 4-digit hex groups. */
export interface ConntrackTuple {
  readonly src: string;
  readonly dst: string;
  readonly proto: number;
  /** Null for a protocol without ports (ICMP). */
  readonly sport: number | null;
  readonly dport: number | null;
}

/** One entry of a ctnetlink dump, and what deletes it. */
export interface ConntrackEntry {
  readonly family: number;
  readonly orig: ConntrackTuple;
  readonly reply: ConntrackTuple | null;
  /** The body of its IPCTNL_MSG_CT_DELETE: its nfgenmsg, original tuple as the kernel sent it, id and zone. */
  readonly deleteBody: Buffer;
}

/** An address as the tuples spell it: IPv4 as is, IPv6 expanded (`fd00::2` → `fd00:0000:…:0002`); null when not an address. */
export function tupleAddress(text: string): string | null {
  if (!text.includes(':')) return /^\d{1,3}(\.\d{1,3}){3}$/.test(text) ? text : null;
  const [head = '', tail, extra] = text.toLowerCase().split('::');
  if (extra !== undefined) return null;
  const groups = (s: string) => (s === '' ? [] : s.split(':'));
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  const all = [...h, ...Array<string>(Math.max(fill, 0)).fill('0'), ...t];
  if (all.length !== 8 || all.some((g) => !/^[0-9a-f]{1,4}$/.test(g))) return null;
  return all.map((g) => g.padStart(4, '0')).join(':');
}

function addressText(buf: Buffer, from: number, to: number): string {
  if (to - from === 4) return `${buf[from]}.${buf[from + 1]}.${buf[from + 2]}.${buf[from + 3]}`;
  const groups: string[] = [];
  for (let i = from; i + 2 <= to; i += 2) groups.push(buf.readUInt16BE(i).toString(16).padStart(4, '0'));
  return groups.join(':');
}

function readTuple(buf: Buffer, from: number, to: number): ConntrackTuple | null {
  const ip = find(buf, from, to, CTA_TUPLE_IP);
  const l4 = find(buf, from, to, CTA_TUPLE_PROTO);
  if (ip < 0 || l4 < 0) return null;
  const ipEnd = valueEnd(buf, ip);
  const src = find(buf, ip, ipEnd, CTA_IP_V4_SRC) >= 0 ? find(buf, ip, ipEnd, CTA_IP_V4_SRC) : find(buf, ip, ipEnd, CTA_IP_V6_SRC);
  const dst = find(buf, ip, ipEnd, CTA_IP_V4_DST) >= 0 ? find(buf, ip, ipEnd, CTA_IP_V4_DST) : find(buf, ip, ipEnd, CTA_IP_V6_DST);
  const l4End = valueEnd(buf, l4);
  const num = find(buf, l4, l4End, CTA_PROTO_NUM);
  if (src < 0 || dst < 0 || num < 0) return null;
  const port = (type: number) => {
    const at = find(buf, l4, l4End, type);
    return at >= 0 && at + 2 <= l4End ? buf.readUInt16BE(at) : null;
  };
  return {
    src: addressText(buf, src, valueEnd(buf, src)),
    dst: addressText(buf, dst, valueEnd(buf, dst)),
    proto: buf[num] ?? 0,
    sport: port(CTA_PROTO_SRC_PORT),
    dport: port(CTA_PROTO_DST_PORT),
  };
}

/** The attribute whose value starts at `at`, header and padding included, as the kernel sent it. */
const rawAttr = (buf: Buffer, at: number): Buffer => {
  const len = buf.readUInt16LE(at - 4);
  const out = Buffer.alloc((len + 3) & ~3);
  buf.copy(out, 0, at - 4, at - 4 + len);
  return out;
};

/** An entry of a ctnetlink dump (a NEW message); null for another message or one without an original tuple. */
export function parseConntrackEntry(m: NetlinkMessage): ConntrackEntry | null {
  const p = m.payload;
  if (m.type !== CT_NEW || p.length < 4) return null;
  const at = find(p, 4, p.length, CTA_TUPLE_ORIG);
  if (at < 0) return null;
  const orig = readTuple(p, at, valueEnd(p, at));
  if (orig === null) return null;
  const replyAt = find(p, 4, p.length, CTA_TUPLE_REPLY);
  const reply = replyAt < 0 ? null : readTuple(p, replyAt, valueEnd(p, replyAt));
  const id = find(p, 4, p.length, CTA_ID);
  const zone = find(p, 4, p.length, CTA_ZONE);
  const family = p[0] ?? 0;
  const head = Buffer.from([family, 0, 0, 0]);
  const deleteBody = Buffer.concat([head, rawAttr(p, at), ...(id >= 0 ? [rawAttr(p, id)] : []), ...(zone >= 0 ? [rawAttr(p, zone)] : [])]);
  return { family, orig, reply, deleteBody };
}

/** The flushes `entry` falls under: a port flush by its original direction, an address flush by any of its four addresses. */
export function flushMatches(entry: Pick<ConntrackEntry, 'orig' | 'reply'>, f: ConntrackFlush): boolean {
  const { orig, reply } = entry;
  if (f.kind === 'port') {
    if (orig.proto !== L4[f.proto] || orig.dport !== f.port) return false;
    return f.hostIp === undefined || tupleAddress(f.hostIp) === orig.dst;
  }
  const a = tupleAddress(f.address);
  return a !== null && (orig.src === a || orig.dst === a || reply?.src === a || reply?.dst === a);
}

/** What a flush did. `unavailable`: ctnetlink cannot be reached from this process (no koffi or libc): nothing was done. */
export interface ConntrackResult {
  readonly deleted: number;
  readonly unavailable?: boolean;
}

/**
 * Deletes the entries of `netns`'s table (a name under /run/netns; undefined: ours) that any of
 * `flushes` matches, both families.
 * @throws DriverError `LN_ERR_KERNEL_EXEC` when the table cannot be read, or a delete fails otherwise than with ENOENT.
 */
export async function flushConntrack(netns: string | undefined, timeoutMs: number, flushes: readonly ConntrackFlush[]): Promise<ConntrackResult> {
  if (flushes.length === 0) return { deleted: 0 };
  const netlink = await openNetlink(netns, timeoutMs, NETLINK_NETFILTER);
  if (netlink === null) return { deleted: 0, unavailable: true };
  const doomed: Buffer[] = [];
  const each = (m: NetlinkMessage) => {
    const e = parseConntrackEntry(m);
    if (e && flushes.some((f) => flushMatches(e, f))) doomed.push(e.deleteBody);
  };
  // nfgenmsg AF_UNSPEC: the entries of every family in one dump.
  await netlink.dump([{ what: 'read the connection tracking table', type: CT_GET, body: Buffer.alloc(4), each }]);
  if (doomed.length === 0) return { deleted: 0 };
  const req = await openRequests(netns, timeoutMs, 'delete connection tracking entries', NETLINK_NETFILTER);
  if (req === null) return { deleted: 0, unavailable: true };
  let deleted = 0;
  try {
    for (const body of doomed) {
      const answer = await req.request(CT_DELETE, 0, body);
      if (answer.errno === 0) deleted++;
      else if (answer.errno !== ENOENT) {
        throw new DriverError('LN_ERR_KERNEL_EXEC', `could not delete a connection tracking entry: ${answer.detail ?? req.strerror(answer.errno)}`);
      }
    }
  } finally {
    req.close();
  }
  return { deleted };
}

