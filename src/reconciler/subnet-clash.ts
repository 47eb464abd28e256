// Another network on a ledgernet network's subnet: a link ledgernet does not own (a Docker bridge
// network's br-… created afterwards with Docker's default IPAM, which does not know ledgernet's
// pools) has an address in it. ledgernet cannot refuse it (RequestPool refuses the other order),
// so it names it: a route conflict (status shows it, the loop logs it as a warning naming the
// interface), applied as nothing.
import type { KernelSnapshot, Link } from '../kernel/types.ts';
import { formatPrefix, overlaps, parseAddrLen } from '../events/domain/cidr.ts';
import { short } from '../events/domain/naming.ts';
import type { Action } from './actions.ts';
import type { DesiredBridge } from './desired.ts';

/** The conflicts of `bridges` with addresses of foreign links (not `owned`) inside their subnets. Pure. */
export function planSubnetClashes(bridges: readonly DesiredBridge[], actual: KernelSnapshot, owned: (l: Link) => boolean): Action[] {
  const foreign = new Set(actual.links.filter((l) => !owned(l)).map((l) => l.name));
  const theirs = actual.addrs.filter((a) => foreign.has(a.dev)).flatMap((a) => {
    const p = parseAddrLen(a.cidr);
    return p === null ? [] : [{ dev: a.dev, cidr: a.cidr, prefix: p.prefix }];
  });
  if (theirs.length === 0) return [];
  const out: Action[] = [];
  for (const b of bridges) {
    for (const cidr of b.addrs) {
      const mine = parseAddrLen(cidr);
      if (mine === null) continue;
      const dst = formatPrefix(mine.prefix);
      const clash = theirs.filter((t) => t.prefix.family === mine.family && overlaps(t.prefix, mine.prefix));
      if (clash.length === 0) continue;
      const detail =
        `${clash.map((t) => `interface ${t.dev} (${t.cidr})`).join(', ')} is on network ${short(b.networkId)}'s subnet ${dst}, and ledgernet does not own it ` +
        "(a Docker bridge network created on it afterwards? Docker's default IPAM does not know ledgernet's pools): the two networks route the same " +
        "addresses, and ledgernet's direct-access drop takes the traffic bridged on it; remove one of the two networks";
      out.push({ kind: 'route.conflict', dev: b.name, dst, found: clash.map((t) => t.dev), owner: { networkId: b.networkId, endpointId: null }, reason: 'conflict', detail });
    }
  }
  return out;
}
