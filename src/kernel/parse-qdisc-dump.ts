// Qdiscs from an rtnetlink dump (RTM_GETQDISC, netlink.ts), as `parseQdiscs` reads them from
// `tc -j qdisc show`: the same fields, the same order (the kernel's), the same text for handles.
import type { NetlinkMessage } from './netlink.ts';
import type { Qdisc } from './types.ts';

/** RTM_GETQDISC and its answers' type, of <linux/rtnetlink.h>. */
export const RTM_GETQDISC = 38;
const RTM_NEWQDISC = 36;
const TCA_KIND = 1;
const TCA_OPTIONS = 2;
const TCA_TBF_PARMS = 1;
const TCA_TBF_RATE64 = 4;
const TC_H_ROOT = 0xffffffff;

/** The request's body: a struct tcmsg of zeros (every family, every device). */
export const QDISC_DUMP_REQUEST: Buffer = Buffer.alloc(20);

/** The attributes at `buf` (struct rtattr: length, type; 4-byte aligned), by type; the first of each type. */
function attributes(buf: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let off = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt16LE(off);
    if (len < 4 || off + len > buf.length) break;
    // NLA_F_NESTED and NLA_F_NET_BYTEORDER are flags in the top bits of the type.
    const type = buf.readUInt16LE(off + 2) & 0x3fff;
    if (!out.has(type)) out.set(type, buf.subarray(off + 4, off + len));
    off += (len + 3) & ~3;
  }
  return out;
}

const cString = (b: Buffer) => {
  const end = b.indexOf(0);
  return b.toString('utf8', 0, end < 0 ? b.length : end);
};

const hex = (n: number) => n.toString(16);

/** A parent as tc prints it (sprint_tc_handle): `:min`, `maj:` or `maj:min`. */
function parentText(h: number): string {
  const maj = h >>> 16;
  const min = h & 0xffff;
  if (maj === 0) return `:${hex(min)}`;
  return min === 0 ? `${hex(maj)}:` : `${hex(maj)}:${hex(min)}`;
}

/** A qdisc of the dump, its device by ifindex (named from the links read in the same pass). */
export type DumpedQdisc = Omit<Qdisc, 'dev'> & { readonly ifindex: number };

/** The qdisc in one message of the dump; null for another message. */
export function qdiscOf(m: NetlinkMessage): DumpedQdisc | null {
  if (m.type !== RTM_NEWQDISC || m.payload.length < 20) return null;
  const ifindex = m.payload.readInt32LE(4);
  const handle = m.payload.readUInt32LE(8);
  const parent = m.payload.readUInt32LE(12);
  const attrs = attributes(m.payload.subarray(20));
  const kindAttr = attrs.get(TCA_KIND);
  if (kindAttr === undefined) return null;
  const kind = cString(kindAttr);
  return {
    ifindex,
    kind,
    handle: `${hex(handle >>> 16)}:`,
    root: parent === TC_H_ROOT,
    parent: parent === TC_H_ROOT || parent === 0 ? null : parentText(parent),
    rate: kind === 'tbf' ? tbfRate(attrs.get(TCA_OPTIONS)) : null,
  };
}

/** tbf's rate in bytes/s: TCA_TBF_RATE64 when the kernel gives it (rates of 4 GB/s and more), else the 32-bit one of its parameters. */
function tbfRate(options: Buffer | undefined): number | null {
  if (options === undefined) return null;
  const o = attributes(options);
  const rate64 = o.get(TCA_TBF_RATE64);
  if (rate64 !== undefined && rate64.length >= 8) return Number(rate64.readBigUInt64LE(0));
  // struct tc_tbf_qopt starts with struct tc_ratespec, whose rate is the u32 at offset 8.
  const parms = o.get(TCA_TBF_PARMS);
  return parms !== undefined && parms.length >= 12 ? parms.readUInt32LE(8) : null;
}

/**
 * The qdiscs with their devices' names; one on a device `names` does not know (made after the
 * links were read: the next pass sees it) is left out.
 */
export function namedQdiscs(dumped: readonly DumpedQdisc[], names: ReadonlyMap<number, string>): Qdisc[] {
  return dumped.flatMap(({ ifindex, ...q }) => {
    const dev = names.get(ifindex);
    return dev === undefined ? [] : [{ dev, ...q }];
  });
}
