import type { ShapingChange } from '../changes.ts';

const SHAPING_KINDS: ReadonlySet<string> = new Set(['qdisc.set', 'qdisc.delete', 'redirect.set', 'redirect.delete']);

/** A change that `tc -batch` applies. */
export function isShapingChange<T extends { readonly kind: string }>(c: T): c is T & ShapingChange {
  return SHAPING_KINDS.has(c.kind);
}

/** The `tc -batch` lines for one change. */
export function tcLines(c: ShapingChange): string[] {
  switch (c.kind) {
    case 'qdisc.delete':
      return [`qdisc del dev ${c.name} root`];
    case 'redirect.delete':
      return [`qdisc del dev ${c.name} ingress`];
    case 'redirect.set':
      // Everything the container sends enters the host-side veth: hand it to the ifb, shaped there.
      return [
        ...(c.replace ? [`qdisc del dev ${c.name} ingress`] : []),
        `qdisc add dev ${c.name} handle ffff: ingress`,
        `filter add dev ${c.name} parent ffff: protocol all prio 1 u32 match u32 0 0 action mirred egress redirect dev ${c.to}`,
      ];
    case 'qdisc.set': {
      // Burst: 10 ms of traffic, at least 16 kB (tbf needs at least one MTU-sized packet per tick).
      const burst = Math.max(16_000, Math.ceil(c.rate / 8 / 100));
      return [`qdisc replace dev ${c.name} root tbf rate ${c.rate}bit burst ${burst} latency 50ms`];
    }
  }
}
