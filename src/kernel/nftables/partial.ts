// Why a plan from the last one (as kernel/iptables/partial.ts): a Docker call that changes the
// firewall (a network created or removed, a port published) asked for the whole table, and the
// diff walked every chain and every element of every network: ~2 ms at 200 networks even with
// each network's part made once (render.ts), growing with the host. When the model holds all that
// the last plan asked for (the scoped planner knows: reconciler/scoped.ts), only the networks whose
// policy object changed can differ from it, and the small shared part (base chains, `bridges`,
// `docker_bridges`). A network's part is the same object while its policy is, so a changed network
// is found by reference.
import type { FirewallChange, FirewallPolicy, NftTable } from '../types.ts';
import { canon, elementKeys } from './canon.ts';
import { chainDelete, diffChain, elementAdd, elementDelete } from './diff.ts';
import { networkPart, renderShared, type NetworkPart } from './render.ts';

/**
 * The same changes as `diffTable(renderTable(policy), observed)` when `observed` holds all that
 * the plan of `before` asked for; null when this cannot plan it by parts (no table before or
 * after, sets declared otherwise): the caller then plans in full.
 */
export function planTableFrom(policy: FirewallPolicy, before: FirewallPolicy, observed: NftTable | null | undefined): FirewallChange[] | null {
  if (!observed || policy.networks.length === 0 || before.networks.length === 0) return null;
  const now = renderShared(policy);
  const then = renderShared(before);
  const specs = Object.keys(now.specs);
  if (specs.length !== Object.keys(then.specs).length || specs.some((s) => !(s in then.specs) || !observed.sets[s])) return null;
  const nowById = new Map(policy.networks.map((n) => [n.networkId, n]));
  const thenById = new Map(before.networks.map((n) => [n.networkId, n]));
  const added = policy.networks.filter((n) => thenById.get(n.networkId) !== n).map(networkPart);
  const removed = before.networks.filter((n) => nowById.get(n.networkId) !== n).map(networkPart);
  const out: FirewallChange[] = [];
  // Chains: the base ones and those of the changed networks; the changed networks' old ones that are gone.
  const written = new Set<string>();
  for (const [name, want] of [...now.chains, ...added.flatMap((p) => p.chains)]) {
    written.add(name);
    const change = diffChain(name, want, observed.chains[name]);
    if (change) out.push(change);
  }
  for (const [name] of removed.flatMap((p) => p.chains)) if (!written.has(name) && observed.chains[name]) out.push(chainDelete(name));
  // Elements: the shared ones (a few) and those of the changed networks.
  const wanted = wantedKeys(policy, now);
  const present = (set: string) => elementKeys(observed.sets[set]?.elements ?? []);
  for (const e of [...now.elements, ...added.flatMap((p) => p.elements)]) {
    if (!present(e.set).has(canon(e.value))) out.push(elementAdd(e.set, e.value, e.owner));
  }
  const deleted = new Set<string>();
  for (const e of [...then.elements, ...removed.flatMap((p) => p.elements)]) {
    const key = canon(e.value);
    if (!present(e.set).has(key) || wanted(e.set).has(key) || deleted.has(`${e.set} ${key}`)) continue;
    deleted.add(`${e.set} ${key}`);
    out.push(elementDelete(e.set, e.value));
  }
  return out;
}

/**
 * The keys a set holds in the new table, made only for the sets an element may leave (an element
 * of a changed network could also be another network's: a published port's, in principle).
 */
function wantedKeys(policy: FirewallPolicy, shared: NetworkPart): (set: string) => ReadonlySet<string> {
  const made = new Map<string, Set<string>>();
  return (set) => {
    let keys = made.get(set);
    if (keys === undefined) {
      keys = new Set();
      for (const part of [shared, ...policy.networks.map(networkPart)]) for (const e of part.elements) if (e.set === set) keys.add(canon(e.value));
      made.set(set, keys);
    }
    return keys;
  };
}
