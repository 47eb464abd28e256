// Design: the desired chains against `iptables-save` as observed, one table at a time. Only
// chains named LEDGERNET-* and rules in built-in chains that carry our owner-tag comment (or
// jump to one of our chains) are ours; everything else (Docker's chains, the operator's rules)
// is invisible here and never touched. A chain is rewritten only when its content changed.
// Why place the FORWARD/INPUT hooks just after `-j DOCKER-USER`: the operator's DOCKER-USER
// rules still come first, and our isolation comes before Docker's accepts; when Docker inserts
// its rules at the top (a daemon restart), the hook is moved back.
import type { FirewallChange, IptablesTable, KernelSnapshot } from '../types.ts';
import { ruleDiff } from '../rule-diff.ts';
import { ruleEdits } from './edits.ts';
import type { DesiredChain, DesiredHook, Table } from './shared.ts';

const CHAIN_PREFIX = 'LEDGERNET-';
const BUILTIN_CHAINS = new Set(['INPUT', 'FORWARD', 'OUTPUT', 'PREROUTING', 'POSTROUTING']);
const SHARED = { networkId: null, endpointId: null };
const TABLES = ['filter', 'nat', 'filter6', 'nat6', 'mangle', 'mangle6'] as const;
/** Docker's jumps that may stand before an `early` hook. */
const EARLY_PREDECESSORS = new Set(['-j DOCKER-USER', '-j DOCKER-ISOLATION-STAGE-1']);

function isOurs(rule: string, ownerTag: string): boolean {
  return rule.includes(ownerTag) || rule.includes(`-j ${CHAIN_PREFIX}`);
}

/** The changes that turn the observed tables into `desired`; a table that cannot be read (no ip6tables) is left out. */
export function diffChains(desired: readonly DesiredChain[], actual: KernelSnapshot, ownerTag: string): FirewallChange[] {
  return TABLES.flatMap((t) => {
    const table = actual[t];
    // No ip6tables (IPv6 disabled), or a table not read: nothing to plan for that table.
    return table === null || table === undefined ? [] : diffTable(t, desired.filter((c) => c.table === t), table, ownerTag);
  });
}

function diffTable(tableName: Table, desired: readonly DesiredChain[], table: IptablesTable, ownerTag: string): FirewallChange[] {
  const out = desired.flatMap((c) => diffChain(tableName, c, table));
  const desiredNames = new Set(desired.map((c) => c.name));
  for (const chain of Object.values(table.chains)) {
    if (chain.name.startsWith(CHAIN_PREFIX) && !desiredNames.has(chain.name)) out.push(orphan(tableName, chain.name));
  }
  out.push(...diffTableHooks(tableName, desired, table, ownerTag));
  return out;
}

/**
 * The changes of `diffChains(desired, actual)` when `actual` already holds all that `before` asked
 * for (the full diff of `before` against it is empty): only the chains whose rules are not the
 * very array `before` had (`changed`), the chains `before` had that `desired` does not (`gone`:
 * deleted if present), and, when the hooks differ (`hooks`: the desired chains then), every hook.
 * The chains nobody changed are not compared again: the same array is the same rules, and the
 * kernel holds them.
 */
export function diffChanged(changed: readonly DesiredChain[], gone: readonly DesiredChain[], hooks: readonly DesiredChain[] | null, actual: KernelSnapshot, ownerTag: string): FirewallChange[] {
  const out: FirewallChange[] = [];
  for (const t of TABLES) {
    const table = actual[t];
    if (table === null || table === undefined) continue;
    for (const c of changed) if (c.table === t) out.push(...diffChain(t, c, table));
    for (const c of gone) if (c.table === t && table.chains[c.name]) out.push(orphan(t, c.name));
    if (hooks) out.push(...diffTableHooks(t, hooks.filter((c) => c.table === t), table, ownerTag));
  }
  return out;
}

const orphan = (table: Table, chain: string): FirewallChange => ({ kind: 'chain.delete', table, chain, owner: SHARED, reason: 'orphan' });

/** A desired chain against the table: written when missing or different, else nothing. */
function diffChain(tableName: Table, c: DesiredChain, table: IptablesTable): FirewallChange[] {
  const have = table.chains[c.name];
  const owner = c.networkId === undefined ? SHARED : { networkId: c.networkId, endpointId: null };
  if (!have) return [{ kind: 'chain.write', table: tableName, chain: c.name, rules: c.rules, owner, reason: 'missing', diff: c.rules.map((r) => `+ ${r}`) }];
  if (sameRules(have.rules, c.rules)) return [];
  const edits = ruleEdits(have.rules, c.rules);
  const { missing, extra, detail } = ruleDiff(c.rules, have.rules, (r) => r);
  return [
    {
      kind: 'chain.write',
      table: tableName,
      chain: c.name,
      rules: c.rules,
      ...(edits ? { edits } : {}),
      owner,
      reason: 'drifted',
      detail,
      diff: [...missing.map((r) => `+ ${r}`), ...extra.map((r) => `- ${r}`)],
    },
  ];
}

/** The hooks of one table's desired chains against its built-in chains. */
function diffTableHooks(tableName: Table, desired: readonly DesiredChain[], table: IptablesTable, ownerTag: string): FirewallChange[] {
  const hooks = desired.flatMap((c) => c.hooks);
  return [...BUILTIN_CHAINS].flatMap((from) => diffHooks(tableName, from, hooks.filter((h) => h.from === from), table.chains[from]?.rules ?? [], ownerTag));
}

/** The detail of a hook deleted to be added back just after DOCKER-USER: Docker's rules went above it. */
export const HOOK_BEHIND_DOCKER = 'not right after DOCKER-USER';

/**
 * Hooks in one built-in chain: add the missing ones, remove unwanted tagged rules and second
 * copies, and move an `early` hook that ended up behind someone else's rule (e.g. after Docker
 * inserted its own rules at the top) back to just after `-j DOCKER-USER`. A hook that stands more
 * than once has every copy deleted and one added back in its place, in the same restore: `-D` by
 * rule deletes the first copy, whichever it is, and a delete by number could hit someone else's
 * rule if the chain changed after it was read.
 */
function diffHooks(table: Table, from: string, hooks: readonly DesiredHook[], rules: readonly string[], ownerTag: string): FirewallChange[] {
  const out: FirewallChange[] = [];
  const doomed = new Set<number>();
  const copies = (rule: string) => rules.filter((r) => r === rule).length;
  rules.forEach((rule, i) => {
    if (!isOurs(rule, ownerTag)) return;
    const want = hooks.find((h) => h.rule === rule);
    const n = want ? copies(rule) : 1;
    const misplaced = want?.placement === 'early' && !wellPlaced(rules, i, ownerTag);
    if (!want || n > 1 || misplaced) {
      const detail = n > 1 ? `${n} copies: all go, one is added back in its place` : misplaced ? HOOK_BEHIND_DOCKER : undefined;
      out.push({ kind: 'hook.delete', table, from, rule, owner: SHARED, reason: want ? 'drifted' : 'orphan', ...(detail ? { detail } : {}) });
      doomed.add(i);
    }
  });
  const kept = rules.filter((_, i) => !doomed.has(i));
  for (const h of hooks) {
    if (kept.includes(h.rule)) continue;
    const user = kept.indexOf('-j DOCKER-USER');
    // 1-based position for `-I`; null appends.
    const position = h.placement === 'early' ? user + 2 : null;
    out.push({ kind: 'hook.add', table, from, rule: h.rule, position, owner: SHARED, reason: 'missing' });
  }
  return out;
}

/** Between DOCKER-USER (or the top) and the hook stand only Docker's jumps and our own rules. */
function wellPlaced(rules: readonly string[], i: number, ownerTag: string): boolean {
  const user = rules.indexOf('-j DOCKER-USER');
  if (user > i) return false;
  return rules.slice(user + 1, i).every((r) => isOurs(r, ownerTag) || EARLY_PREDECESSORS.has(r));
}

function sameRules(a: readonly string[], b: readonly string[]): boolean {
  return a === b || (a.length === b.length && a.every((r, i) => r === b[i]));
}
