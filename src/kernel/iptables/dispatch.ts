// Why buckets: a network's rules live in chains of their own, reached by jumps that stand in
// small shared chains, so that creating or removing a network touches a few lines of a chain of
// about networks/16 lines instead of the shared chain of every network. It matters on the
// nf_tables backend: an `iptables-restore` that deletes a rule (`-D`) or inserts one after the
// first (`-I n`) first reads every rule of that chain from the kernel (517 kB for a chain of 800
// rules, 0.5 kB to append or to create a chain).
//
// A bucket holds the networks whose bridge name has the same character after the prefix
// (`lnb-3…` in LEDGERNET-LATE-3), in the policy's order (by bridge name), and is entered by
// `-i lnb-3+` and `-o lnb-3+`: a packet of another bridge never enters it. Buckets stand in the
// order of their names, and a custom bridge name (never with the prefix) stands at its own place
// among them with its lines inline, so the rules a packet meets are the ones, in the order, of one
// chain with every network's rules (test/unit/kernel/iptables/dispatch.test.ts checks this).
import type { DesiredChain } from './shared.ts';

/** A network's lines in one stage of the dispatch. */
export interface StageLines {
  readonly bridge: string;
  readonly lines: readonly string[];
}

export interface Dispatch {
  /** The lines of the calling chain: jumps to buckets, and custom bridges' own lines. */
  readonly rules: string[];
  /** The bucket chains (shared: no network of their own). */
  readonly chains: DesiredChain[];
}

/**
 * Spreads the stage's lines over bucket chains named `<chainPrefix><char>`. `dirs`: the matches a
 * bucket is entered by (`-i` alone when every line of the stage matches its bridge as input; none
 * for rules that match no interface, in chains whose order across networks does not matter).
 */
export function dispatch(
  table: DesiredChain['table'],
  chainPrefix: string,
  bridgePrefix: string,
  stage: readonly StageLines[],
  dirs: readonly ('-i' | '-o')[],
  comment: string,
): Dispatch {
  const rules: string[] = [];
  const buckets = new Map<string, string[]>();
  // The policy is sorted by bridge, so a bucket's networks stand together.
  for (const { bridge, lines } of stage) {
    if (lines.length === 0) continue;
    if (!bridge.startsWith(bridgePrefix) || bridge.length === bridgePrefix.length) {
      rules.push(...lines);
      continue;
    }
    const key = bridge.charAt(bridgePrefix.length);
    const name = `${chainPrefix}${key}`;
    let bucket = buckets.get(name);
    if (bucket === undefined) {
      bucket = [];
      buckets.set(name, bucket);
      const matches = dirs.length === 0 ? [''] : dirs.map((d) => `${d} ${bridgePrefix}${key}+ `);
      rules.push(...matches.map((m) => `${m}${comment} -j ${name}`));
    }
    bucket.push(...lines);
  }
  const chains = [...buckets].map(([name, lines]): DesiredChain => ({ table, name, rules: lines, hooks: [] }));
  return { rules, chains };
}
