// Shaping changes as rtnetlink requests sent from this process (netlink.ts), the same requests
// `tc -batch` sends for the same steps (render.ts), without a `tc` process on Docker's path (a
// container on a shaped network gets its qdisc, or its ingress redirect, in CreateEndpoint's
// pass). They are sent as `tc -force -batch` runs its lines (rtnl-apply.ts), and fail in the
// words `tc` prints. The tbf request carries what tc computes from
// `rate R burst B latency L` (tbf_parse_opt in iproute2): the rate in bytes/s, the limit
// (R × L + B), the burst itself (TCA_TBF_BURST, which the kernel derives the bucket from) and an
// Ethernet link layer (so the kernel reads no rate table, which tc sends besides and which is
// left out here).
import type { ShapingChange } from '../changes.ts';
import { cstr, encodeAttrs, u32, type Attr } from '../netlink-attrs.ts';
import type { NetlinkRequests } from '../netlink.ts';
import { applyStepsByNetlink, missingDevice, refusal, type Request, type StepCodec } from '../rtnl-apply.ts';
import type { ChangesResult } from '../types.ts';
import { tbfLimit, tcSteps, type TcStep } from './render.ts';

const RTM_NEWQDISC = 36;
const RTM_DELQDISC = 37;
const RTM_NEWTFILTER = 44;
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const TC_H_ROOT = 0xffffffff;
const TC_H_INGRESS = 0xfffffff1;
/** The ingress qdisc's handle, `ffff:`. */
const INGRESS_HANDLE = 0xffff0000;
const TCA_KIND = 1;
const TCA_OPTIONS = 2;
const TCA_TBF_PARMS = 1;
const TCA_TBF_RATE64 = 4;
const TCA_TBF_BURST = 6;
const TCA_U32_SEL = 5;
const TCA_U32_ACT = 7;
const TC_U32_TERMINAL = 1;
const TCA_ACT_KIND = 1;
const TCA_ACT_OPTIONS = 2;
const TCA_MIRRED_PARMS = 2;
const TCA_EGRESS_REDIR = 1;
const TC_ACT_STOLEN = 4;
const TC_LINKLAYER_ETHERNET = 1;
/** `protocol all`: ETH_P_ALL in network order, in tcm_info's low 16 bits. */
const ETH_P_ALL_BE = 0x0300;
/** psched ticks per microsecond as /proc/net/psched gives them (1000 / 64 × 1e6 / 1e6), which tc uses for the bucket it sends in ticks (the kernel takes TCA_TBF_BURST instead) and reads back. */
export const TICKS_PER_US = 15.625;

/** struct tcmsg. */
function tcmsg(ifindex: number, handle: number, parent: number, info = 0): Buffer {
  const b = Buffer.alloc(20);
  b.writeInt32LE(ifindex, 4);
  b.writeUInt32LE(handle >>> 0, 8);
  b.writeUInt32LE(parent >>> 0, 12);
  b.writeUInt32LE(info >>> 0, 16);
  return b;
}

/** struct tc_tbf_qopt for `rate` (bit/s) and `burst` (bytes), as tc fills it. */
export function tbfParms(rate: number, burst: number): { readonly parms: Buffer; readonly rate64: number } {
  const rate64 = Math.floor(rate / 8);
  const b = Buffer.alloc(36);
  // struct tc_ratespec rate: cell_log 3 (for tc's default MTU 2047), Ethernet, cell_align -1.
  b.writeUInt8(3, 0);
  b.writeUInt8(TC_LINKLAYER_ETHERNET, 1);
  b.writeInt16LE(-1, 4);
  b.writeUInt32LE(Math.min(rate64, 0xffffffff), 8);
  // peakrate (12 bytes) stays zero; limit, buffer (ticks), mtu (0: no peak rate).
  b.writeUInt32LE(tbfLimit(rate, burst) >>> 0, 24);
  b.writeUInt32LE(Math.trunc(((1e6 * burst) / rate64) * TICKS_PER_US) >>> 0, 28);
  return { parms: b, rate64 };
}

/** The devices a step names by index: `[name, what tc says when it is missing]`. */
export function tcDevicesOf(s: TcStep): Array<readonly [string, string]> {
  return s.op === 'redirect.add' ? [[s.dev, missingDevice(s.dev)], [s.to, missingDevice(s.to)]] : [[s.dev, missingDevice(s.dev)]];
}

/** The rtnetlink request of one step, its devices given by index. Pure. */
export function encodeTcStep(s: TcStep, index: (name: string) => number): Request {
  const dev = index(s.dev);
  switch (s.op) {
    case 'qdisc.del':
      return s.parent === 'root'
        ? { type: RTM_DELQDISC, flags: 0, body: tcmsg(dev, 0, TC_H_ROOT) }
        : { type: RTM_DELQDISC, flags: 0, body: Buffer.concat([tcmsg(dev, INGRESS_HANDLE, TC_H_INGRESS), encodeAttrs([[TCA_KIND, cstr('ingress')]])]) };
    case 'ingress.add':
      return { type: RTM_NEWQDISC, flags: NLM_F_CREATE | NLM_F_EXCL, body: Buffer.concat([tcmsg(dev, INGRESS_HANDLE, TC_H_INGRESS), encodeAttrs([[TCA_KIND, cstr('ingress')]])]) };
    case 'redirect.add': {
      // struct tc_u32_sel with one key matching every packet (`match u32 0 0`), terminal (it has an action).
      const sel = Buffer.alloc(32);
      sel.writeUInt8(TC_U32_TERMINAL, 0);
      sel.writeUInt8(1, 2);
      // struct tc_mirred: index, capab, action (stolen: redirected), refcnt, bindcnt, eaction, ifindex.
      const mirred = Buffer.alloc(28);
      mirred.writeInt32LE(TC_ACT_STOLEN, 8);
      mirred.writeInt32LE(TCA_EGRESS_REDIR, 20);
      mirred.writeUInt32LE(index(s.to), 24);
      const action: Attr = [1, [[TCA_ACT_KIND, cstr('mirred')], [TCA_ACT_OPTIONS, [[TCA_MIRRED_PARMS, mirred]]]]];
      const attrs: Attr[] = [[TCA_KIND, cstr('u32')], [TCA_OPTIONS, [[TCA_U32_ACT, [action]], [TCA_U32_SEL, sel]]]];
      return { type: RTM_NEWTFILTER, flags: NLM_F_CREATE | NLM_F_EXCL, body: Buffer.concat([tcmsg(dev, 0, INGRESS_HANDLE, (1 << 16) | ETH_P_ALL_BE), encodeAttrs(attrs)]) };
    }
    case 'tbf.replace': {
      const { parms, rate64 } = tbfParms(s.rate, s.burst);
      const rate64Attr: Attr[] = [];
      if (rate64 > 0xffffffff) {
        const r = Buffer.alloc(8);
        r.writeBigUInt64LE(BigInt(rate64));
        rate64Attr.push([TCA_TBF_RATE64, r]);
      }
      const options: Attr[] = [[TCA_TBF_PARMS, parms], [TCA_TBF_BURST, u32(s.burst)], ...rate64Attr];
      return { type: RTM_NEWQDISC, flags: NLM_F_CREATE | NLM_F_REPLACE, body: Buffer.concat([tcmsg(dev, 0, TC_H_ROOT), encodeAttrs([[TCA_KIND, cstr('tbf')], [TCA_OPTIONS, options]])]) };
    }
  }
}

/** How shaping steps become requests: no step makes or deletes a link. */
const TC_CODEC: StepCodec<TcStep> = {
  devices: tcDevicesOf,
  encode: encodeTcStep,
  remakes: () => null,
  slow: () => false,
  failure: (_s, a, nl) => refusal(nl, a),
};

/**
 * Applies the changes in order, every step of each (`tc -force -batch` semantics), and reports
 * each change that failed once, with its first failure.
 * @throws DriverError `LN_ERR_KERNEL_EXEC` when the socket itself fails (nothing after that ran).
 */
export function applyShapingChanges(nl: NetlinkRequests, changes: readonly ShapingChange[]): Promise<ChangesResult> {
  return applyStepsByNetlink(nl, changes, tcSteps, TC_CODEC);
}
