// Qdiscs from an rtnetlink dump (RTM_GETQDISC, netlink.ts), as `parseQdiscs` reads them from
// `tc -j -r qdisc show`: the same fields, the same order (the kernel's), the same text for
// handles, tbf's burst computed back from its bucket in ticks as tc does.
import type { NetlinkMessage } from './netlink.ts';
import { cString, find, valueEnd } from './netlink-attrs.ts';
import { TICKS_PER_US } from './tc/rtnl.ts';
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
  const p = m.payload;
  const kindAt = find(p, 20, p.length, TCA_KIND);
  if (kindAt < 0) return null;
  const kind = cString(p, kindAt, valueEnd(p, kindAt));
  return {
    ifindex,
    kind,
    handle: `${hex(handle >>> 16)}:`,
    root: parent === TC_H_ROOT,
    parent: parent === TC_H_ROOT || parent === 0 ? null : parentText(parent),
    ...(kind === 'tbf' ? tbfOptions(p, find(p, 20, p.length, TCA_OPTIONS)) : NOT_TBF),
  };
}

type TbfFields = Pick<Qdisc, 'rate' | 'burst' | 'limit'>;
const NOT_TBF: TbfFields = { rate: null, burst: null, limit: null };

/**
 * tbf's rate in bytes/s (TCA_TBF_RATE64 when the kernel gives it, rates of 4 GB/s and more, else
 * the 32-bit one of its parameters), and from struct tc_tbf_qopt its limit and its burst: the
 * bucket in ticks, as tc prints it back (whole microseconds at the rate, rounded down).
 */
function tbfOptions(p: Buffer, options: number): TbfFields {
  if (options < 0) return NOT_TBF;
  const to = valueEnd(p, options);
  // struct tc_tbf_qopt: struct tc_ratespec rate (its rate the u32 at 8), peakrate, limit at 24, buffer at 28.
  const parms = find(p, options, to, TCA_TBF_PARMS);
  if (parms < 0 || valueEnd(p, parms) - parms < 32) return NOT_TBF;
  const rate64 = find(p, options, to, TCA_TBF_RATE64);
  const rate = rate64 >= 0 && valueEnd(p, rate64) - rate64 >= 8 ? Number(p.readBigUInt64LE(rate64)) : p.readUInt32LE(parms + 8);
  const burst = Math.trunc((rate * Math.trunc(p.readUInt32LE(parms + 28) / TICKS_PER_US)) / 1e6);
  return { rate, burst, limit: p.readUInt32LE(parms + 24) };
}

/**
 * The qdiscs with their devices' names; one on a device `names` does not know (made after the
 * links were read: the next pass sees it) is left out.
 */
export function namedQdiscs(dumped: readonly DumpedQdisc[], names: ReadonlyMap<number, string>): Qdisc[] {
  const out: Qdisc[] = [];
  for (const q of dumped) {
    const dev = names.get(q.ifindex);
    if (dev !== undefined) out.push({ dev, kind: q.kind, handle: q.handle, root: q.root, parent: q.parent, rate: q.rate, burst: q.burst, limit: q.limit });
  }
  return out;
}
