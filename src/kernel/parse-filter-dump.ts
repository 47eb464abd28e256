// The ingress redirects of devices from rtnetlink filter dumps (RTM_GETTFILTER, one per device;
// netlink.ts), as parseIngressRedirects reads `tc -j filter show dev D ingress`: the target of
// every mirred action that redirects (egress or ingress), in order, named `if<N>` when the
// device is unknown and `*` when it was deleted. Only u32 filters (the ones ledgernet makes) are
// read: a filter of another kind makes the whole read unanswered (null), and the caller asks tc.
import type { NetlinkMessage } from './netlink.ts';
import { cString, find, valueEnd } from './netlink-attrs.ts';

export const RTM_GETTFILTER = 46;
const RTM_NEWTFILTER = 44;
const TCA_KIND = 1;
const TCA_OPTIONS = 2;
const TCA_U32_ACT = 7;
const TCA_ACT_KIND = 1;
const TCA_ACT_OPTIONS = 2;
const TCA_MIRRED_PARMS = 2;
const TCA_EGRESS_REDIR = 1;
const TCA_INGRESS_REDIR = 3;
/** struct tcmsg: family, pads, ifindex (s32 at 4), handle, parent, info. */
const TCMSG_LEN = 20;
/** `ingress` as tc names it in a filter command: TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS). */
const INGRESS_PARENT = 0xfffffff2;

/** The request of one device's ingress filters: struct tcmsg with its index and parent ffff:fff2. */
export function ingressFilterDumpRequest(ifindex: number): Buffer {
  const b = Buffer.alloc(TCMSG_LEN);
  b.writeInt32LE(ifindex, 4);
  b.writeUInt32LE(INGRESS_PARENT, 12);
  return b;
}

/** One filter of a dump: its device, its kind, and the devices its actions redirect to (by ifindex). */
export interface DumpedFilter {
  readonly ifindex: number;
  readonly kind: string | null;
  readonly redirects: readonly number[];
}

/** The filter in one message of a filter dump; null for another message. */
export function filterOf(m: NetlinkMessage): DumpedFilter | null {
  const p = m.payload;
  if (m.type !== RTM_NEWTFILTER || p.length < TCMSG_LEN) return null;
  const k = find(p, TCMSG_LEN, p.length, TCA_KIND);
  const kind = k < 0 ? null : cString(p, k, valueEnd(p, k));
  const redirects: number[] = [];
  const options = kind === 'u32' ? find(p, TCMSG_LEN, p.length, TCA_OPTIONS) : -1;
  const acts = options < 0 ? -1 : find(p, options, valueEnd(p, options), TCA_U32_ACT);
  if (acts >= 0) {
    // The actions, nested under their order (1, 2, …), in the kernel's order.
    const end = valueEnd(p, acts);
    for (let off = acts; off + 4 <= end; ) {
      const len = p.readUInt16LE(off);
      if (len < 4 || off + len > end) break;
      const target = mirredRedirect(p, off + 4, off + len);
      if (target !== null) redirects.push(target);
      off += (len + 3) & ~3;
    }
  }
  return { ifindex: p.readInt32LE(4), kind, redirects };
}

/** The device a mirred action (its attributes from `from` to `to`) redirects to; null when it is no redirect. */
function mirredRedirect(p: Buffer, from: number, to: number): number | null {
  const k = find(p, from, to, TCA_ACT_KIND);
  if (k < 0 || cString(p, k, valueEnd(p, k)) !== 'mirred') return null;
  const o = find(p, from, to, TCA_ACT_OPTIONS);
  const parms = o < 0 ? -1 : find(p, o, valueEnd(p, o), TCA_MIRRED_PARMS);
  // struct tc_mirred: tc_gen (index, capab, action, refcnt, bindcnt), eaction, ifindex.
  if (parms < 0 || valueEnd(p, parms) < parms + 28) return null;
  const eaction = p.readInt32LE(parms + 20);
  return eaction === TCA_EGRESS_REDIR || eaction === TCA_INGRESS_REDIR ? p.readUInt32LE(parms + 24) : null;
}

/**
 * Each asked device's redirect targets by name (`names`: ifindex → name), as parseIngressRedirects
 * gives them; null when a filter is of a kind not read here.
 */
export function namedRedirects(dumped: readonly DumpedFilter[], asked: ReadonlyMap<number, string>, names: ReadonlyMap<number, string>): Record<string, string[]> | null {
  const out: Record<string, string[]> = {};
  for (const dev of asked.values()) out[dev] = [];
  for (const f of dumped) {
    const dev = asked.get(f.ifindex);
    if (dev === undefined) continue;
    if (f.kind !== 'u32') return null;
    // ll_index_to_name: `*` for no device (the target was deleted), `if<N>` for one not known.
    for (const i of f.redirects) out[dev]?.push(i === 0 ? '*' : (names.get(i) ?? `if${i}`));
  }
  return out;
}
