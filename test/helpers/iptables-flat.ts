// A ledgernet chain as one list, the way a packet meets its rules: jumps to buckets
// (LEDGERNET-SEALED-3, LEDGERNET-EARLY-3, LEDGERNET-DIRECT-3, …) and to a network's own chains (LEDGERNET-LAN-…,
// LEDGERNET-ING-…) replaced by the rules there, a bucket at its first jump only (its second jump,
// for the other direction, meets the same rules again). Jumps to egress chains (LEDGERNET-EG-…)
// stay: they stood in the one chain before the network's own chains too.
const INLINED = /-j (LEDGERNET-(?:SEALED|EARLY|EGRESS|LATE|DIRECT|POSTROUTING)-.|LEDGERNET-(?:LAN|ING)-[0-9a-f]{12})$/;

export function flatChain(chains: ReadonlyMap<string, readonly string[]>, name: string, seen = new Set<string>()): string[] {
  return (chains.get(name) ?? []).flatMap((rule) => {
    const target = INLINED.exec(rule)?.[1];
    if (target === undefined) return [rule];
    if (seen.has(target)) return [];
    seen.add(target);
    return flatChain(chains, target, seen);
  });
}

interface Write {
  readonly kind: string;
  readonly table?: string;
  readonly chain?: string;
  readonly rules?: readonly unknown[];
}

/** `flatChain` over the chains a plan writes in one table (from empty: all of them). */
export function flatWrites(actions: readonly Write[], table: string, entry = 'LEDGERNET-FORWARD'): string[] {
  const writes = actions.flatMap((a) => (a.kind === 'chain.write' && a.table === table && a.chain !== undefined ? [[a.chain, (a.rules ?? []).map(String)] as const] : []));
  return flatChain(new Map(writes), entry);
}
