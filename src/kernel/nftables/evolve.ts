// The `inet ledgernet` table after a transaction of ours landed, without `nft -j list table`: the
// model the hot path plans against (kernel/model.ts), so a published port costs one `nft -j -f`
// and no read of the whole table. The transaction is atomic (apply.ts: all of it landed or none),
// and what it writes reads back as written (render.ts writes rules, elements and interval sets in
// the form nft prints; test/integration/nftables.test.ts checks every shape), so the table after
// is the one before with each change done in the transaction's order: the table deleted first,
// chains and sets declared, elements deleted then added, chains rewritten, then chains and sets
// deleted.
import type { FirewallChange, NftTable } from '../types.ts';
import { canon } from './canon.ts';
import { NFT_FAMILY, NFT_TABLE } from './table.ts';

type Nft = Extract<FirewallChange, { kind: `nft.${string}` }>;
type Sets = Record<string, NftTable['sets'][string]>;
type Chains = Record<string, NftTable['chains'][string]>;

/** The key of an element: a map element is `[key, value]`, and a delete names only the key. */
const keyOf = (e: unknown): string => canon(Array.isArray(e) ? e[0] : e);

type ElementChange = Extract<Nft, { kind: 'nft.element.add' | 'nft.element.delete' }>;

/** Element deletes, then adds, set by set: one pass over each changed set's elements. */
function elements(sets: Sets, changes: readonly ElementChange[]): void {
  const bySet = new Map<string, ElementChange[]>();
  for (const c of changes) bySet.set(c.set, [...(bySet.get(c.set) ?? []), c]);
  for (const [name, cs] of bySet) {
    const set = sets[name];
    if (!set) continue;
    const gone = new Set(cs.map((c) => keyOf(c.element)));
    const added = cs.filter((c) => c.kind === 'nft.element.add').map((c) => c.element);
    sets[name] = { ...set, elements: [...set.elements.filter((e) => !gone.has(keyOf(e))), ...added] };
  }
}

/**
 * The table after `applied` (nftables changes of one transaction that landed; others are
 * ignored): null when it was deleted and nothing was written after. Pure.
 */
export function afterNft(table: NftTable | null | undefined, applied: readonly FirewallChange[]): NftTable | null | undefined {
  const mine = applied.filter((c): c is Nft => c.kind.startsWith('nft.'));
  if (mine.length === 0) return table;
  const dropped = mine.some((c) => c.kind === 'nft.table.delete');
  const rest = mine.filter((c) => c.kind !== 'nft.table.delete');
  if (rest.length === 0) return dropped ? null : table;
  const start = dropped || !table ? { sets: {}, chains: {} } : table;
  const sets: Sets = { ...start.sets };
  const chains: Chains = { ...start.chains };
  for (const c of rest) if (c.kind === 'nft.set.write') sets[c.set] = { ...c.spec, elements: [...(sets[c.set]?.elements ?? []), ...c.elements] };
  elements(sets, rest.filter((c): c is ElementChange => c.kind === 'nft.element.add' || c.kind === 'nft.element.delete'));
  for (const c of rest) if (c.kind === 'nft.chain.write') chains[c.chain] = { hook: chains[c.chain]?.hook ?? c.hook ?? null, rules: c.rules };
  for (const c of rest) {
    if (c.kind === 'nft.chain.delete') delete chains[c.chain];
    else if (c.kind === 'nft.set.delete') delete sets[c.set];
  }
  return { family: NFT_FAMILY, name: NFT_TABLE, sets, chains };
}
