// Design: the desired table against `nft -j list table inet ledgernet`. The table is ours as a
// whole, so everything in it is compared: a chain is rewritten only when its rules differ, a
// set or map changes element by element (a published port is one element, never a chain
// rewrite), and what is there but not wanted goes. A set or base chain whose declaration differs
// (type, flags, hook: a hand edit) cannot be changed in place while rules refer to it, so the
// table is then rebuilt in the same transaction (delete, then add everything).
import type { FirewallChange, NftTable } from '../types.ts';
import { ruleDiff } from '../rule-diff.ts';
import { canon, elementKeys } from './canon.ts';
import { describeElement, describeElements, describeRule } from './describe.ts';
import type { DesiredTable, Owner } from './render.ts';
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
  const table = NFT_TABLE_LABEL;
  const out: FirewallChange[] = [];
  for (const [set, want] of desired.sets) {
    const have = observed.sets[set];
    if (!have) {
      const elements = want.elements.map((e) => e.value);
      out.push({ kind: 'nft.set.write', table, set, spec: want.spec, elements, owner: SHARED, reason: 'missing', diff: describeElements(elements) });
      continue;
    }
    const present = elementKeys(have.elements);
    const wanted = new Set(want.elements.map((e) => canon(e.value)));
    for (const e of want.elements) {
      if (!present.has(canon(e.value))) out.push({ kind: 'nft.element.add', table, set, element: e.value, text: describeElement(e.value), owner: e.owner, reason: 'missing' });
    }
    for (const e of have.elements) {
      if (!wanted.has(canon(e))) out.push({ kind: 'nft.element.delete', table, set, element: e, text: describeElement(e), owner: elementOwner(e), reason: 'orphan' });
    }
  }
  for (const set of Object.keys(observed.sets)) {
    if (!desired.sets.has(set)) out.push({ kind: 'nft.set.delete', table, set, owner: SHARED, reason: 'orphan' });
  }
  return out;
}

function diffChains(desired: DesiredTable, observed: NftTable): FirewallChange[] {
  const table = NFT_TABLE_LABEL;
  const out: FirewallChange[] = [];
  for (const [chain, want] of desired.chains) {
    const have = observed.chains[chain];
    const hook = want.hook ? { hook: want.hook } : {};
    const base = { kind: 'nft.chain.write', table, chain, ...hook, rules: want.rules, owner: want.owner } as const;
    if (!have) {
      out.push({ ...base, reason: 'missing', diff: want.rules.map((r) => `+ ${describeRule(r)}`) });
      continue;
    }
    // The model keeps the rules array a write of ours wrote (evolve.ts), and a network's rules are the same array while its policy is (render.ts).
    if (have.rules === want.rules) continue;
    const wantKeys = want.rules.map(canon);
    const haveKeys = have.rules.map(canon);
    if (wantKeys.length === haveKeys.length && wantKeys.every((k, i) => k === haveKeys[i])) continue;
    const { missing, extra, detail } = ruleDiff(want.rules, have.rules, canon);
    out.push({
      ...base,
      reason: 'drifted',
      detail,
      diff: [...missing.map((r) => `+ ${describeRule(r)}`), ...extra.map((r) => `- ${describeRule(r)}`)],
    });
  }
  for (const chain of Object.keys(observed.chains)) {
    if (!desired.chains.has(chain)) out.push({ kind: 'nft.chain.delete', table, chain, owner: chainOwner(chain), reason: 'orphan' });
  }
  return out;
}
