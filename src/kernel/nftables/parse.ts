import { asRecord, parseError, type JsonRecord } from '../json-fields.ts';
import type { NftHook, NftSetSpec, NftTable } from '../types.ts';

const WHAT = 'nft -j list table';

type SetDraft = NftSetSpec & { elements: readonly unknown[] };
type ChainDraft = { hook: NftHook | null; rules: unknown[][] };

/**
 * Parses `nft -j list table <family> <name>` into the table's sets, maps and chains (rules in
 * order, as `expr` arrays; handles dropped, so a rule compares by what it does).
 * @throws DriverError `LN_ERR_KERNEL_PARSE` on output that is not nft's JSON.
 */
export function parseNftTable(text: string, family: string, name: string): NftTable {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    parseError(WHAT, 'not JSON');
  }
  const list = asRecord(value, WHAT, 'the output')['nftables'];
  if (!Array.isArray(list)) parseError(WHAT, '"nftables" is not an array');
  // Maps, then Object.fromEntries: a chain named `__proto__` stays an own property.
  const sets = new Map<string, SetDraft>();
  const chains = new Map<string, ChainDraft>();
  for (const [i, item] of list.entries()) {
    const entry = asRecord(item, WHAT, `entry ${i}`);
    const [kind, body] = Object.entries(entry)[0] ?? [];
    if (body === undefined || kind === 'metainfo' || kind === 'table') continue;
    const obj = asRecord(body, WHAT, `entry ${i} (${kind})`);
    if (obj['family'] !== family || obj['table'] !== name) continue;
    if (kind === 'set' || kind === 'map') sets.set(String(obj['name']), readSet(kind, obj));
    else if (kind === 'chain') chains.set(String(obj['name']), { hook: readHook(obj), rules: chains.get(String(obj['name']))?.rules ?? [] });
    else if (kind === 'rule') readRule(obj, chains, i);
  }
  return { family, name, sets: Object.fromEntries(sets), chains: Object.fromEntries(chains) };
}

function readSet(is: 'set' | 'map', o: JsonRecord): SetDraft {
  const type = o['type'];
  if (typeof type !== 'string' && !Array.isArray(type)) parseError(WHAT, `set ${String(o['name'])} has no type`);
  const elem = o['elem'];
  return {
    is,
    type: type as string | string[],
    ...(typeof o['map'] === 'string' ? { map: o['map'] } : {}),
    ...(Array.isArray(o['flags']) ? { flags: o['flags'] as string[] } : {}),
    elements: Array.isArray(elem) ? elem : [],
  };
}

function readHook(o: JsonRecord): NftHook | null {
  if (typeof o['hook'] !== 'string') return null;
  return { type: o['type'] as NftHook['type'], hook: o['hook'], prio: Number(o['prio']), policy: o['policy'] as NftHook['policy'] };
}

function readRule(o: JsonRecord, chains: Map<string, ChainDraft>, i: number): void {
  const chain = String(o['chain']);
  if (!Array.isArray(o['expr'])) parseError(WHAT, `rule ${i} has no expr`);
  const draft = chains.get(chain) ?? { hook: null, rules: [] };
  draft.rules.push(o['expr'] as unknown[]);
  chains.set(chain, draft);
}
