// A shaping change as the tc requests that make it, in order: one `tc -batch` line each (here)
// or one rtnetlink message each (rtnl.ts), so the two ways say the same thing.
import type { ShapingChange } from '../changes.ts';

const SHAPING_KINDS: ReadonlySet<string> = new Set(['qdisc.set', 'qdisc.delete', 'redirect.set', 'redirect.delete']);

/** A change that `tc -batch` applies. */
export function isShapingChange<T extends { readonly kind: string }>(c: T): c is T & ShapingChange {
  return SHAPING_KINDS.has(c.kind);
}

/** The latency a tbf queue may add (its limit: this much traffic at the rate, plus the burst). */
const TBF_LATENCY_US = 50_000;

/** The Ethernet header, which tbf counts in a packet's length and a device's MTU does not (psched_mtu). */
const ETH_HLEN = 14;

/**
 * The burst of a tbf for `rate` (bit/s) on a device of `mtu`, in bytes: 10 ms of traffic, at least
 * 16 kB, and never less than a whole frame (tbf drops every packet longer than its burst).
 */
function tbfBurst(rate: number, mtu: number): number {
  return Math.max(16_000, mtu + ETH_HLEN, Math.ceil(rate / 8 / 100));
}

/** A tbf's limit in bytes as tc computes it from `rate R burst B latency L`: R × L + B (R in bytes/s). */
export function tbfLimit(rate: number, burst: number): number {
  return Math.trunc((Math.floor(rate / 8) * TBF_LATENCY_US) / 1e6 + burst);
}

/** The burst and limit (bytes) of the tbf a `qdisc.set` of `rate` (bit/s) for a device of `mtu` writes. */
export function tbfShape(rate: number, mtu: number): { readonly burst: number; readonly limit: number } {
  const burst = tbfBurst(rate, mtu);
  return { burst, limit: tbfLimit(rate, burst) };
}

/** One request. */
export type TcStep =
  | { readonly op: 'qdisc.del'; readonly dev: string; readonly parent: 'root' | 'ingress' }
  | { readonly op: 'ingress.add'; readonly dev: string }
  /** Everything entering `dev` redirected to the egress of `to` (u32 matching all, mirred). */
  | { readonly op: 'redirect.add'; readonly dev: string; readonly to: string }
  /** A tbf root qdisc: `rate` in bit/s, `burst` in bytes, latency TBF_LATENCY_US. */
  | { readonly op: 'tbf.replace'; readonly dev: string; readonly rate: number; readonly burst: number };

/** The requests of one change. */
export function tcSteps(c: ShapingChange): TcStep[] {
  switch (c.kind) {
    case 'qdisc.delete':
      return [{ op: 'qdisc.del', dev: c.name, parent: 'root' }];
    case 'redirect.delete':
      return [{ op: 'qdisc.del', dev: c.name, parent: 'ingress' }];
    case 'redirect.set':
      // Everything the container sends enters the host-side veth: hand it to the ifb, shaped there.
      return [
        ...(c.replace ? [{ op: 'qdisc.del', dev: c.name, parent: 'ingress' } as const] : []),
        { op: 'ingress.add', dev: c.name },
        { op: 'redirect.add', dev: c.name, to: c.to },
      ];
    case 'qdisc.set':
      return [{ op: 'tbf.replace', dev: c.name, rate: c.rate, burst: tbfBurst(c.rate, c.mtu) }];
  }
}

/** One step as a `tc -batch` line. */
export function tcStepLine(s: TcStep): string {
  switch (s.op) {
    case 'qdisc.del':
      return `qdisc del dev ${s.dev} ${s.parent}`;
    case 'ingress.add':
      return `qdisc add dev ${s.dev} handle ffff: ingress`;
    case 'redirect.add':
      return `filter add dev ${s.dev} parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev ${s.to}`;
    case 'tbf.replace':
      return `qdisc replace dev ${s.dev} root tbf rate ${s.rate}bit burst ${s.burst} latency ${TBF_LATENCY_US / 1000}ms`;
  }
}

/** The `tc -batch` lines for one change. */
export function tcLines(c: ShapingChange): string[] {
  return tcSteps(c).map(tcStepLine);
}
