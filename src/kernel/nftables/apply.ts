// One `nft -j -f -` per pass: the whole batch is one netlink transaction, so the table is never
// seen half-changed and a failure changes nothing. Order inside it: a table being rebuilt goes
// first; chains are declared before the map elements that jump to them and sets before the rules
// that use them; elements are deleted before they are added (a map element whose value changed
// is a delete and an add); chains are flushed before any is deleted, and sets deleted in between.
import type { FirewallChange, FirewallFailure, Kernel } from '../types.ts';
import { NFT_FAMILY, NFT_TABLE } from './table.ts';
import { afterNft } from './evolve.ts';

type Nft = Extract<FirewallChange, { kind: `nft.${string}` }>;
type Cmd = Record<string, Record<string, Record<string, unknown>>>;

const where = { family: NFT_FAMILY, table: NFT_TABLE };

export function isNftChange(c: FirewallChange): c is Nft {
  return c.kind.startsWith('nft.');
}

const of = <K extends Nft['kind']>(changes: readonly Nft[], kind: K) => changes.filter((c): c is Extract<Nft, { kind: K }> => c.kind === kind);

/** The key of an element: a map element is `[key, value]` (a set's never is an array), and deletes name only the key. */
const elementKey = (e: unknown): unknown => (Array.isArray(e) ? e[0] : e);

function elements(changes: readonly Extract<Nft, { kind: 'nft.element.add' | 'nft.element.delete' }>[], op: 'add' | 'delete'): Cmd[] {
  const bySet = new Map<string, unknown[]>();
  for (const c of changes) bySet.set(c.set, [...(bySet.get(c.set) ?? []), c.element]);
  return [...bySet].map(([name, elem]) => ({ [op]: { element: { ...where, name, elem: op === 'delete' ? elem.map(elementKey) : elem } } }));
}

/** The `{"nftables": [...]}` transaction for the changes, or null when there is nothing to do. */
function nftTransaction(changes: readonly Nft[]): string | null {
  if (changes.length === 0) return null;
  const cmds: Cmd[] = [];
  const dropTable = of(changes, 'nft.table.delete').length > 0;
  if (dropTable) cmds.push({ delete: { table: { family: NFT_FAMILY, name: NFT_TABLE } } });
  const writes = of(changes, 'nft.chain.write');
  const rest = changes.filter((c) => c.kind !== 'nft.table.delete');
  if (rest.length > 0) cmds.push({ add: { table: { family: NFT_FAMILY, name: NFT_TABLE } } });
  for (const c of writes) cmds.push({ add: { chain: { ...where, name: c.chain, ...(c.hook ?? {}) } } });
  for (const c of of(changes, 'nft.set.write')) {
    const { is, ...spec } = c.spec;
    cmds.push({ add: { [is]: { ...where, name: c.set, ...spec, ...(c.elements.length > 0 ? { elem: c.elements } : {}) } } });
  }
  cmds.push(...elements(of(changes, 'nft.element.delete'), 'delete'), ...elements(of(changes, 'nft.element.add'), 'add'));
  for (const c of writes) {
    cmds.push({ flush: { chain: { ...where, name: c.chain } } });
    for (const expr of c.rules) cmds.push({ add: { rule: { ...where, chain: c.chain, expr } } });
  }
  const deletes = of(changes, 'nft.chain.delete');
  for (const c of deletes) cmds.push({ flush: { chain: { ...where, name: c.chain } } });
  // Sets once no rule uses them, before the chains their elements may jump to (a map going whole
  // keeps its elements until then: the egress map's last element and its chain go together).
  for (const c of of(changes, 'nft.set.delete')) cmds.push({ delete: { set: { ...where, name: c.set } } });
  for (const c of deletes) cmds.push({ delete: { chain: { ...where, name: c.chain } } });
  return JSON.stringify({ nftables: cmds });
}

/** Applies the nftables changes in one transaction; if it fails, every one of them failed. */
export async function applyNft(changes: readonly FirewallChange[], kernel: Kernel): Promise<FirewallFailure[]> {
  const mine = changes.filter(isNftChange);
  const input = nftTransaction(mine);
  if (input === null) return [];
  try {
    await kernel.nftApply(input, (table) => afterNft(table, mine));
    return [];
  } catch (e) {
    return mine.map((change) => ({ change, message: (e as Error).message }));
  }
}
