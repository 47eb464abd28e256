// Design: the desired table against `nft -j list table inet ledgernet`. The table is ours as a
// whole, so everything in it is compared: a chain is rewritten only when its rules differ, a
// set or map changes element by element (a published port is one element, never a chain
// rewrite), and what is there but not wanted goes. A set or base chain whose declaration differs
// (type, flags, hook: a hand edit) cannot be changed in place while rules refer to it, so the
// table is then rebuilt in the same transaction (delete, then add everything).
import type { FirewallChange, NftTable } from '../types.ts';
import { ruleDiff } from '../rule-diff.ts';
import { canon, elementKeys, sameValue } from './canon.ts';
import { describeElement, describeElements, describeRule } from './describe.ts';
import type { DesiredChain, DesiredTable, Owner } from './render.ts';
import { NFT_TABLE_LABEL } from './table.ts';

const SHARED: Owner = { networkId: null, endpointId: null };

/** The network a per-network chain (`net-<id>-<role>`) belongs to. */
function chainOwner(chain: string): Owner {
  const m = /^net-([0-9a-f]+)-[a-z0-9]+$/.exec(chain);
  return m ? { networkId: m[1] ?? null, endpointId: null } : SHARED;
}

/** The network a map element jumps to (`"lnb-…" : jump net-<id>-from`); else shared. */
function elementOwner(e: unknown): Owner {
  const target = Array.isArray(e) ? (e[1] as { jump?: { target?: unknown } } | undefined)?.jump?.target : undefined;
  return typeof target === 'string' ? chainOwner(target) : SHARED;
}

/** The changes that turn `observed` (null: no table; undefined: nft cannot run) into `desired` (null: no table). */
export function diffTable(desired: DesiredTable | null, observed: NftTable | null | undefined): FirewallChange[] {
  const table = NFT_TABLE_LABEL;
  if (desired === null) return observed ? [{ kind: 'nft.table.delete', table, owner: SHARED, reason: 'orphan' }] : [];
  const broken = observed ? declarationDrift(desired, observed) : null;
  if (observed && broken === null) return [...diffSets(desired, observed), ...diffChains(desired, observed)];
  const rebuild: FirewallChange[] = broken === null ? [] : [{ kind: 'nft.table.delete', table, owner: SHARED, reason: 'drifted', detail: `${broken}: rebuilt` }];
  const empty: NftTable = { family: '', name: '', sets: {}, chains: {} };
  return [...rebuild, ...diffSets(desired, empty), ...diffChains(desired, empty)];
}

/** What makes the table unfit to change in place: a set or base chain declared otherwise. */
function declarationDrift(desired: DesiredTable, observed: NftTable): string | null {
  for (const [name, want] of desired.sets) {
    const have = observed.sets[name];
    if (!have) continue;
    const { elements: _, ...spec } = have;
    if (canon(spec) !== canon(want.spec)) return `set ${name} is declared ${canon(spec)}, ${canon(want.spec)} expected`;
  }
  for (const [name, want] of desired.chains) {
    const have = observed.chains[name];
    if (have && canon(have.hook) !== canon(want.hook)) return `chain ${name} has hook ${canon(have.hook)}, ${canon(want.hook)} expected`;
  }
  return null;
}

function diffSets(desired: DesiredTable, observed: NftTable): FirewallChange[] {
  const out: FirewallChange[] = [];
  for (const [set, want] of desired.sets) {
    const have = observed.sets[set];
    if (!have) {
      const elements = want.elements.map((e) => e.value);
      out.push({ kind: 'nft.set.write', table: NFT_TABLE_LABEL, set, spec: want.spec, elements, owner: SHARED, reason: 'missing', diff: describeElements(elements) });
      continue;
    }
    out.push(...diffElements(set, want.elements, have.elements));
  }
  for (const set of Object.keys(observed.sets)) {
    if (!desired.sets.has(set)) out.push({ kind: 'nft.set.delete', table: NFT_TABLE_LABEL, set, owner: SHARED, reason: 'orphan' });
  }
  return out;
}

/** The element changes that turn a set's `have` into `want`. */
function diffElements(set: string, want: readonly { readonly value: unknown; readonly owner: Owner }[], have: readonly unknown[]): FirewallChange[] {
  const present = elementKeys(have);
  const wanted = new Set(want.map((e) => canon(e.value)));
  const out: FirewallChange[] = [];
  for (const e of want) if (!present.has(canon(e.value))) out.push(elementAdd(set, e.value, e.owner));
  for (const e of have) if (!wanted.has(canon(e))) out.push(elementDelete(set, e));
  return out;
}

export const elementAdd = (set: string, element: unknown, owner: Owner): FirewallChange => ({
  kind: 'nft.element.add',
  table: NFT_TABLE_LABEL,
  set,
  element,
  text: describeElement(element),
  owner,
  reason: 'missing',
});

export const elementDelete = (set: string, element: unknown): FirewallChange => ({
  kind: 'nft.element.delete',
  table: NFT_TABLE_LABEL,
  set,
  element,
  text: describeElement(element),
  owner: elementOwner(element),
  reason: 'orphan',
});

function diffChains(desired: DesiredTable, observed: NftTable): FirewallChange[] {
  const out: FirewallChange[] = [];
  for (const [chain, want] of desired.chains) {
    const change = diffChain(chain, want, observed.chains[chain]);
    if (change) out.push(change);
  }
  for (const chain of Object.keys(observed.chains)) {
    if (!desired.chains.has(chain)) out.push(chainDelete(chain));
  }
  return out;
}

export const chainDelete = (chain: string): FirewallChange => ({ kind: 'nft.chain.delete', table: NFT_TABLE_LABEL, chain, owner: chainOwner(chain), reason: 'orphan' });

/** The write that turns chain `have` (undefined: missing) into `want`; null when they hold the same rules. */
export function diffChain(chain: string, want: DesiredChain, have: NftTable['chains'][string] | undefined): FirewallChange | null {
  const hook = want.hook ? { hook: want.hook } : {};
  const base = { kind: 'nft.chain.write', table: NFT_TABLE_LABEL, chain, ...hook, rules: want.rules, owner: want.owner } as const;
  if (!have) return { ...base, reason: 'missing', diff: want.rules.map((r) => `+ ${describeRule(r)}`) };
  // The model keeps the rules array a write of ours wrote (evolve.ts), and a network's rules are the same array while its policy is (render.ts).
  if (have.rules === want.rules) return null;
  if (want.rules.length === have.rules.length && want.rules.every((r, i) => sameValue(r, have.rules[i]))) return null;
  const { missing, extra, detail } = ruleDiff(want.rules, have.rules, canon);
  return { ...base, reason: 'drifted', detail, diff: [...missing.map((r) => `+ ${describeRule(r)}`), ...extra.map((r) => `- ${describeRule(r)}`)] };
}
