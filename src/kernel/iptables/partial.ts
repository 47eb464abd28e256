// Why a plan from the last one: a Docker pass that creates or removes one network asks the backend
// for the whole policy, whose chains hold every network's rules (468 chains at 200 networks).
// Diffing all of them against the model cost 1–3 ms of CPU per pass at 200 networks, for chains
// that did not change. When the model holds all that the last plan asked for (the scoped planner
// knows: reconciler/scoped.ts), only the chains whose rules changed can differ from it. A network's
// own chains are the same array while its policy object is the same (shared.ts: perNetwork), so a
// changed chain is found by reference; the buckets and shared chains are made anew each time and
// compared rule by rule (the same strings: pointer compares).
import type { FirewallChange, FirewallPolicy, KernelSnapshot } from '../types.ts';
import { diffChains, diffChanged } from './diff.ts';
import { renderNat6 } from './nat6.ts';
import { renderChains } from './render.ts';
import type { DesiredChain } from './shared.ts';

interface Rendered {
  readonly chains: readonly DesiredChain[];
  /** By table, then name. */
  readonly byName: ReadonlyMap<string, ReadonlyMap<string, DesiredChain>>;
}

const rendered = new WeakMap<FirewallPolicy, Rendered>();

/** Every chain of the policy (IPv4 and IPv6, nat6 included), made once per policy object. */
function desiredOf(policy: FirewallPolicy): Rendered {
  let r = rendered.get(policy);
  if (r === undefined) {
    const chains = [...renderChains(policy), ...renderNat6(policy)];
    const byName = new Map<string, Map<string, DesiredChain>>();
    for (const c of chains) {
      let t = byName.get(c.table);
      if (t === undefined) byName.set(c.table, (t = new Map()));
      t.set(c.name, c);
    }
    rendered.set(policy, (r = { chains, byName }));
  }
  return r;
}

/** The changes that turn the observed tables into the policy's chains (the full diff). */
export function planChains(policy: FirewallPolicy, observed: KernelSnapshot): FirewallChange[] {
  return diffChains(desiredOf(policy).chains, observed, policy.ownerTag);
}

/**
 * The same changes as `planChains(policy, observed)`, when `observed` holds all that
 * `planChains(before, ·)` asked for: the chains whose rules changed, the chains gone since, and
 * the hooks if they changed.
 */
export function planChainsFrom(policy: FirewallPolicy, before: FirewallPolicy, observed: KernelSnapshot): FirewallChange[] {
  const now = desiredOf(policy);
  const then = desiredOf(before);
  const changed = now.chains.filter((c) => then.byName.get(c.table)?.get(c.name)?.rules !== c.rules);
  const gone = then.chains.filter((c) => !now.byName.get(c.table)?.has(c.name));
  return diffChanged(changed, gone, sameHooks(now.chains, then.chains) ? null : now.chains, observed, policy.ownerTag);
}

function sameHooks(a: readonly DesiredChain[], b: readonly DesiredChain[]): boolean {
  const hooks = (cs: readonly DesiredChain[]) => cs.flatMap((c) => c.hooks.map((h) => `${c.table} ${h.from} ${h.placement} ${h.rule}`)).sort();
  const x = hooks(a);
  const y = hooks(b);
  return x.length === y.length && x.every((h, i) => h === y[i]);
}
