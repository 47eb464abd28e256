// Design: plan is a pure diff of desired kernel objects against what `observe` read. It only
// looks at objects ledgernet owns: links named lnb-/lnv-/lnp- or carrying a `ledgernet:` ifalias,
// chains named LEDGERNET-*, and rules tagged with a `ledgernet:` comment in built-in chains.
// Everything else is invisible to it, so it can never touch Docker's or the operator's objects.
// Why not recreate a joined endpoint's veth: its peer lived in the container's namespace; a new
// pair would not be in the container, so the endpoint is reported lost instead.
import type { IptablesTable, KernelSnapshot, Link, Qdisc } from '../kernel/types.ts';
import { KIND_ORDER, actionKey, type Action, type Owner } from './actions.ts';
import type { DesiredBridge, DesiredChain, DesiredHook, DesiredState, DesiredVeth, Table } from './desired.ts';

const OWNED_PREFIXES = ['lnb-', 'lnv-', 'lnp-', 'lni-'];
const CHAIN_PREFIX = 'LEDGERNET-';
const BUILTIN_CHAINS = new Set(['INPUT', 'FORWARD', 'OUTPUT', 'PREROUTING', 'POSTROUTING']);

export function isOwnedLink(l: Link): boolean {
  return OWNED_PREFIXES.some((p) => l.name.startsWith(p)) || (l.alias ?? '').startsWith('ledgernet:');
}

export function plan(desired: DesiredState, actual: KernelSnapshot): Action[] {
  const links = new Map(actual.links.map((l) => [l.name, l]));
  const actions: Action[] = [];
  for (const b of desired.bridges) actions.push(...planBridge(b, links.get(b.name), actual));
  for (const v of desired.veths) {
    const veth = planVeth(v, links.get(v.name));
    actions.push(...veth);
    if (veth.some((a) => a.kind === 'endpoint.lost')) continue;
    actions.push(...planQdisc(v, v.name, v.ingressRate, links.has(v.name), actual.qdiscs));
    actions.push(...planEgress(v, links, actual));
  }
  actions.push(...planOrphanLinks(desired, actual.links));
  actions.push(...planChains(desired.chains, actual));
  return sortActions(actions);
}

export function sortActions(actions: Action[]): Action[] {
  const rank = (a: Action) => KIND_ORDER.indexOf(a.kind);
  return actions.sort((a, b) => rank(a) - rank(b) || cmp(actionKey(a), actionKey(b)));
}

function planBridge(b: DesiredBridge, link: Link | undefined, actual: KernelSnapshot): Action[] {
  const owner: Owner = { networkId: b.networkId, endpointId: null };
  const out: Action[] = [];
  let have: string[] = [];
  if (!link || link.kind !== 'bridge') {
    if (link) out.push({ kind: 'link.delete', name: b.name, owner, reason: 'drifted', detail: `is a ${link.kind ?? 'plain'} link, not a bridge` });
    out.push({ kind: 'bridge.create', name: b.name, alias: b.alias, mtu: b.mtu, owner, reason: 'missing' });
  } else {
    const set = linkDrift(link, { mtu: b.mtu, alias: b.alias, master: null });
    if (set) out.push({ kind: 'link.set', name: b.name, owner, ...set });
    have = actual.addrs.filter((a) => a.dev === b.name && a.scope !== 'link').map((a) => a.cidr);
  }
  const localnet = link?.kind === 'bridge' ? (actual.routeLocalnet[b.name] ?? false) : false;
  if (localnet !== b.routeLocalnet) {
    const detail = `route_localnet ${b.routeLocalnet ? 1 : 0} expected, ${localnet ? 1 : 0} found`;
    out.push({ kind: 'bridge.localnet', name: b.name, on: b.routeLocalnet, owner, reason: link ? 'drifted' : 'missing', ...(link ? { detail } : {}) });
  }
  for (const cidr of b.addrs) {
    if (!have.includes(cidr)) out.push({ kind: 'addr.add', dev: b.name, cidr, owner, reason: 'missing' });
  }
  for (const cidr of have) {
    if (!b.addrs.includes(cidr)) out.push({ kind: 'addr.del', dev: b.name, cidr, owner, reason: 'orphan' });
  }
  return out;
}

function planVeth(v: DesiredVeth, link: Link | undefined): Action[] {
  const owner: Owner = { networkId: v.networkId, endpointId: v.endpointId };
  if (!link) {
    if (v.joined) return [{ kind: 'endpoint.lost', name: v.name, owner, reason: 'vanished', detail: 'its container namespace is gone' }];
    const { name, peer, alias, peerAlias, mtu, master } = v;
    return [{ kind: 'veth.create', name, peer, alias, peerAlias, mtu, master, owner, reason: 'missing' }];
  }
  const set = linkDrift(link, { mtu: v.mtu, alias: v.alias, master: v.master });
  return set ? [{ kind: 'link.set', name: v.name, owner, ...set }] : [];
}

/**
 * A tbf at the root of `dev`: on the host-side veth it shapes what the container receives
 * (ingress_rate), on the endpoint's ifb what it sends (egress_rate).
 */
function planQdisc(v: DesiredVeth, dev: string, rate: number | null, exists: boolean, qdiscs: readonly Qdisc[]): Action[] {
  const owner: Owner = { networkId: v.networkId, endpointId: v.endpointId };
  const root = exists ? qdiscs.find((q) => q.dev === dev && q.root) : undefined;
  const tbf = root?.kind === 'tbf' ? root : undefined;
  if (rate === null) {
    return tbf ? [{ kind: 'qdisc.delete', name: dev, owner, reason: 'orphan', detail: 'no rate wanted' }] : [];
  }
  const have = tbf?.rate == null ? null : tbf.rate * 8;
  if (have !== null && Math.abs(have - rate) <= rate * 0.01) return [];
  const found = root ? `${root.kind}${have === null ? '' : ` ${have} bit/s`}` : 'none';
  return [
    {
      kind: 'qdisc.set',
      name: dev,
      rate,
      owner,
      reason: exists ? 'drifted' : 'missing',
      detail: exists ? `tbf ${rate} bit/s expected, ${found} found` : `tbf ${rate} bit/s`,
    },
  ];
}

/** egress_rate: the veth's ingress redirected to the endpoint's ifb, and a tbf on the ifb. */
function planEgress(v: DesiredVeth, links: ReadonlyMap<string, Link>, actual: KernelSnapshot): Action[] {
  const owner: Owner = { networkId: v.networkId, endpointId: v.endpointId };
  const veth = links.has(v.name);
  const ingress = veth && actual.qdiscs.some((q) => q.dev === v.name && q.kind === 'ingress');
  if (v.ifb === null || v.egressRate === null) {
    return ingress ? [{ kind: 'redirect.delete', name: v.name, owner, reason: 'orphan', detail: 'no egress_rate wanted' }] : [];
  }
  const out: Action[] = [];
  const ifb = links.get(v.ifb.name);
  if (!ifb) out.push({ kind: 'ifb.create', name: v.ifb.name, alias: v.ifb.alias, owner, reason: 'missing' });
  else {
    const set = linkDrift(ifb, { mtu: ifb.mtu, alias: v.ifb.alias, master: null });
    if (set) out.push({ kind: 'link.set', name: ifb.name, owner, ...set });
  }
  out.push(...planQdisc(v, v.ifb.name, v.egressRate, ifb !== undefined, actual.qdiscs));
  const redirected = (actual.ingressRedirects[v.name] ?? []).includes(v.ifb.name);
  if (!ingress || !redirected) {
    const detail = veth ? `redirect to ${v.ifb.name} expected, ${ingress ? 'other filters' : 'no ingress qdisc'} found` : `redirect to ${v.ifb.name}`;
    out.push({ kind: 'redirect.set', name: v.name, to: v.ifb.name, replace: ingress, owner, reason: veth ? 'drifted' : 'missing', detail });
  }
  return out;
}

type LinkSet = { reason: 'drifted'; detail: string; mtu?: number; master?: string; alias?: string; up?: true };

function linkDrift(link: Link, want: { mtu: number; alias: string; master: string | null }): LinkSet | null {
  const diffs: string[] = [];
  const set: LinkSet = { reason: 'drifted', detail: '' };
  if (link.mtu !== want.mtu) {
    set.mtu = want.mtu;
    diffs.push(`mtu ${want.mtu} expected, ${link.mtu} found`);
  }
  if (link.alias !== want.alias) {
    set.alias = want.alias;
    diffs.push(`alias ${want.alias} expected, ${link.alias ?? 'none'} found`);
  }
  if (want.master !== null && link.master !== want.master) {
    set.master = want.master;
    diffs.push(`master ${want.master} expected, ${link.master ?? 'none'} found`);
  }
  if (!link.up) {
    set.up = true;
    diffs.push('up expected, down found');
  }
  if (diffs.length === 0) return null;
  set.detail = diffs.join('; ');
  return set;
}

function planOrphanLinks(desired: DesiredState, links: readonly Link[]): Action[] {
  const wanted = new Set<string>([
    ...desired.bridges.map((b) => b.name),
    ...desired.veths.flatMap((v) => [v.name, v.peer, ...(v.ifb ? [v.ifb.name] : [])]),
  ]);
  const orphans = links.filter((l) => isOwnedLink(l) && !wanted.has(l.name));
  const doomed = new Set(orphans.map((l) => l.name));
  const out: Action[] = [];
  for (const l of orphans) {
    // Deleting one end of a veth removes the other; only delete the pair once.
    if (l.peer && doomed.has(l.peer) && l.peer < l.name) continue;
    out.push({ kind: 'link.delete', name: l.name, owner: ownerFromAlias(l.alias), reason: 'orphan' });
  }
  return out;
}

function ownerFromAlias(alias: string | null): Owner {
  const m = /^ledgernet:(network|endpoint|peer|ifb):(.+)$/.exec(alias ?? '');
  if (!m) return { networkId: null, endpointId: null };
  return m[1] === 'network' ? { networkId: m[2] ?? null, endpointId: null } : { networkId: null, endpointId: m[2] ?? null };
}

const SHARED: Owner = { networkId: null, endpointId: null };
const TABLES = ['filter', 'nat', 'filter6'] as const;
/** Docker's jumps that may stand before an `early` hook. */
const EARLY_PREDECESSORS = new Set(['-j DOCKER-USER', '-j DOCKER-ISOLATION-STAGE-1']);

function isOurs(rule: string): boolean {
  return rule.includes('ledgernet:') || rule.includes(`-j ${CHAIN_PREFIX}`);
}

function planChains(desired: readonly DesiredChain[], actual: KernelSnapshot): Action[] {
  return TABLES.flatMap((t) => {
    const table = actual[t];
    // No ip6tables (IPv6 disabled): nothing to plan for that table.
    return table === null ? [] : planTable(t, desired.filter((c) => c.table === t), table);
  });
}

function planTable(tableName: Table, desired: readonly DesiredChain[], table: IptablesTable): Action[] {
  const out: Action[] = [];
  for (const c of desired) {
    const have = table.chains[c.name];
    if (!have) {
      out.push({ kind: 'chain.write', table: tableName, chain: c.name, rules: c.rules, owner: SHARED, reason: 'missing', diff: c.rules.map((r) => `+ ${r}`) });
    } else if (!sameRules(have.rules, c.rules)) {
      out.push({
        kind: 'chain.write',
        table: tableName,
        chain: c.name,
        rules: c.rules,
        owner: SHARED,
        reason: 'drifted',
        detail: `${c.rules.length} rules expected, ${have.rules.length} found (${ruleDiff(c.rules, have.rules)})`,
        diff: [...c.rules.filter((r) => !have.rules.includes(r)).map((r) => `+ ${r}`), ...have.rules.filter((r) => !c.rules.includes(r)).map((r) => `- ${r}`)],
      });
    }
  }
  const desiredNames = new Set(desired.map((c) => c.name));
  for (const chain of Object.values(table.chains)) {
    if (chain.name.startsWith(CHAIN_PREFIX) && !desiredNames.has(chain.name)) {
      out.push({ kind: 'chain.delete', table: tableName, chain: chain.name, owner: SHARED, reason: 'orphan' });
    }
  }
  for (const from of BUILTIN_CHAINS) {
    const hooks = desired.flatMap((c) => c.hooks).filter((h) => h.from === from);
    out.push(...planHooks(tableName, from, hooks, table.chains[from]?.rules ?? []));
  }
  return out;
}

/**
 * Hooks in one built-in chain: add the missing ones, remove unwanted tagged rules and second
 * copies, and move an `early` hook that ended up behind someone else's rule (e.g. after Docker
 * inserted its own rules at the top) back to just after `-j DOCKER-USER`.
 */
function planHooks(table: Table, from: string, hooks: readonly DesiredHook[], rules: readonly string[]): Action[] {
  const out: Action[] = [];
  const doomed = new Set<number>();
  const seen = new Set<string>();
  rules.forEach((rule, i) => {
    if (!isOurs(rule)) return;
    const want = hooks.find((h) => h.rule === rule);
    const misplaced = want?.placement === 'early' && !wellPlaced(rules, i);
    if (!want || seen.has(rule) || misplaced) {
      out.push({ kind: 'hook.delete', table, from, rule, owner: SHARED, reason: want ? 'drifted' : 'orphan', ...(misplaced ? { detail: 'not right after DOCKER-USER' } : {}) });
      doomed.add(i);
    }
    seen.add(rule);
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
function wellPlaced(rules: readonly string[], i: number): boolean {
  const user = rules.indexOf('-j DOCKER-USER');
  if (user > i) return false;
  return rules.slice(user + 1, i).every((r) => isOurs(r) || EARLY_PREDECESSORS.has(r));
}

function sameRules(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((r, i) => r === b[i]);
}

function ruleDiff(want: readonly string[], have: readonly string[]): string {
  const missing = want.filter((r) => !have.includes(r)).length;
  const extra = have.filter((r) => !want.includes(r)).length;
  return `${missing} missing, ${extra} unexpected${missing + extra === 0 ? ', order differs' : ''}`;
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
