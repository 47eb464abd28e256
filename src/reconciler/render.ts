// `ledgernet reconcile --dry-run` output: reads like a plan. Actions are grouped by network,
// then by endpoint within it; each line is `+` (create), `-` (remove) or `~` (change) with the
// object and why (missing, orphan, drifted: expected vs found, vanished), or `!` for a conflict
// (a link that is not ledgernet's holds a name it wants: left alone, and what to do about it).
// Colour only when asked (the CLI asks on a terminal).
import { isVxlanChange, vxlanKey, type VxlanChange } from '../kernel/index.ts';
import { actionKey, isConflict, type Action } from './actions.ts';

/** What a plan lists: the reconciler's actions, and the VXLAN objects of cluster networks (cluster.ts). */
export type PlanItem = Action | VxlanChange;

const keyOf = (a: PlanItem): string => (isVxlanChange(a) ? vxlanKey(a) : actionKey(a));

export interface RenderOptions {
  readonly color?: boolean;
  /** Docker's names by id (a network's, an endpoint's container's), shown beside the ids. */
  readonly names?: ReadonlyMap<string, string>;
}

type Op = '+' | '-' | '~' | '!';

const COLORS = { '+': '\u001b[32m', '-': '\u001b[31m', '~': '\u001b[33m', '!': '\u001b[35m' } as const;
const RESET = '\u001b[0m';

export function symbol(a: PlanItem): Op {
  if (isConflict(a)) return '!';
  if (a.kind.endsWith('.delete') || a.kind.endsWith('.del') || a.kind === 'proxy.close' || a.kind === 'port.release' || a.kind === 'endpoint.lost') return '-';
  if (a.kind === 'link.set' || a.kind === 'bridge.localnet' || a.kind === 'bridge.accept_ra' || a.reason === 'drifted') return '~';
  return '+';
}

function why(a: PlanItem): string {
  return a.detail ? `${a.reason}: ${a.detail}` : a.reason;
}

/** One line per item, as describeAction: `fdb.add lnx-0123 02:42:… dst 192.0.2.2 (missing)`. */
export function describeItem(a: PlanItem): string {
  return `${a.kind} ${keyOf(a)} (${why(a)})`;
}

function line(a: PlanItem, indent: string, color: boolean): string {
  const s = symbol(a);
  const paint = (t: string, sym: Op) => (color ? `${COLORS[sym]}${t}${RESET}` : t);
  const lines = [paint(`${indent}${s} ${a.kind} ${keyOf(a)} (${why(a)})`, s)];
  // The rules (and a whole set's elements) themselves, so the effect of each option (and each hand edit) is visible.
  if (a.kind === 'chain.write' || a.kind === 'nft.chain.write' || a.kind === 'nft.set.write') {
    for (const d of a.diff ?? []) lines.push(paint(`${indent}    ${d}`, d.startsWith('-') ? '-' : '+'));
  }
  return lines.join('\n');
}

/**
 * Consecutive `port.reserve` (`port.release`) items of one protocol, host address and reason whose
 * ports follow one another, and whose details are equal or differ only by a port that follows in
 * step (`published to 10.0.0.2:10000`, `…:10001`): one line for a published range, not one per
 * port (a range of 1,000 ports on an `--ipv6` network was 2,000 lines).
 */
interface PortRun {
  readonly portRun: true;
  readonly first: PlanItem;
  readonly proto: string;
  readonly host: string;
  readonly from: number;
  /** Grows while the run is made. */
  to: number;
  /** The detail's text before its port, and that port at `from` (null: every item's detail is `first`'s). */
  readonly detailHead: string | null;
  readonly detailFrom: number;
}

const isRun = (r: PlanItem | PortRun): r is PortRun => (r as Partial<PortRun>).portRun === true;

const PORT_NAME = /^(tcp|udp|sctp) (.+):(\d+)$/;
const TRAILING_PORT = /^(.*):(\d+)$/;

function extends_(run: PortRun, a: PlanItem): boolean {
  if (a.kind !== run.first.kind || a.reason !== run.first.reason) return false;
  const m = PORT_NAME.exec(keyOf(a));
  if (!m || m[1] !== run.proto || m[2] !== run.host || Number(m[3]) !== run.to + 1) return false;
  if (run.detailHead === null) return a.detail === run.first.detail;
  const d = TRAILING_PORT.exec(a.detail ?? '');
  return d !== null && d[1] === run.detailHead && Number(d[2]) === run.detailFrom + (run.to + 1 - run.from);
}

function withPortRuns(list: readonly PlanItem[]): (PlanItem | PortRun)[] {
  const out: (PlanItem | PortRun)[] = [];
  for (const a of list) {
    const last = out.at(-1);
    if (last !== undefined && isRun(last) && extends_(last, a)) {
      last.to += 1;
      continue;
    }
    const m = a.kind === 'port.reserve' || a.kind === 'port.release' ? PORT_NAME.exec(keyOf(a)) : null;
    if (!m) {
      out.push(a);
      continue;
    }
    const d = TRAILING_PORT.exec(a.detail ?? '');
    out.push({ portRun: true, first: a, proto: m[1] ?? '', host: m[2] ?? '', from: Number(m[3]), to: Number(m[3]), detailHead: d ? (d[1] ?? '') : null, detailFrom: d ? Number(d[2]) : 0 });
  }
  // A run of one stays the item it is.
  return out.map((r) => (isRun(r) && r.to === r.from ? r.first : r));
}

function runLine(r: PortRun, indent: string, color: boolean): string {
  const s = symbol(r.first);
  const n = r.to - r.from + 1;
  const detail = r.detailHead === null ? (r.first.detail ?? null) : `${r.detailHead}:${r.detailFrom}-${r.detailFrom + n - 1}`;
  const text = `${indent}${s} ${r.first.kind} ${r.proto} ${r.host}:${r.from}-${r.to} (${r.first.reason}${detail ? `: ${detail}` : ''}; ${n.toLocaleString('en-US')} ports)`;
  return color ? `${COLORS[s]}${text}${RESET}` : text;
}

function lines(list: readonly PlanItem[], indent: string, color: boolean): string[] {
  return withPortRuns(list).map((r) => (isRun(r) ? runLine(r, indent, color) : line(r, indent, color)));
}

export function renderPlan(actions: readonly PlanItem[], opts: RenderOptions = {}): string {
  const color = opts.color ?? false;
  if (actions.length === 0) return 'no changes: the kernel matches the desired state\n';
  const byNetwork = new Map<string, { own: PlanItem[]; endpoints: Map<string, PlanItem[]> }>();
  const endpointsOnly = new Map<string, PlanItem[]>();
  const shared: PlanItem[] = [];
  for (const a of actions) {
    const { networkId, endpointId } = a.owner;
    if (networkId) {
      const g = byNetwork.get(networkId) ?? { own: [], endpoints: new Map<string, PlanItem[]>() };
      byNetwork.set(networkId, g);
      if (endpointId) g.endpoints.set(endpointId, [...(g.endpoints.get(endpointId) ?? []), a]);
      else g.own.push(a);
    } else if (endpointId) endpointsOnly.set(endpointId, [...(endpointsOnly.get(endpointId) ?? []), a]);
    else shared.push(a);
  }
  const named = (id: string, what: string) => {
    const name = opts.names?.get(id);
    return name === undefined ? id.slice(0, 12) : `${id.slice(0, 12)} (${what}${name})`;
  };
  const out: string[] = [];
  for (const [networkId, g] of byNetwork) {
    out.push(`network ${named(networkId, '')}`);
    out.push(...lines(g.own, '  ', color));
    for (const [endpointId, list] of g.endpoints) {
      out.push(`  endpoint ${named(endpointId, 'container ')}`);
      out.push(...lines(list, '    ', color));
    }
  }
  for (const [endpointId, list] of endpointsOnly) {
    out.push(`endpoint ${named(endpointId, 'container ')} (network unknown)`);
    out.push(...lines(list, '  ', color));
  }
  if (shared.length > 0) {
    out.push('shared (host settings, firewall hooks, unowned leftovers)');
    out.push(...lines(shared, '  ', color));
  }
  const count = (s: string) => actions.filter((a) => symbol(a) === s).length;
  const conflicts = count('!') === 0 ? '' : `, ${count('!')} conflict${count('!') === 1 ? '' : 's'} left alone`;
  out.push(
    `plan: ${count('+')} to add, ${count('~')} to change, ${count('-')} to remove${conflicts} (${actions.length} action${actions.length === 1 ? '' : 's'})`,
  );
  return `${out.join('\n')}\n`;
}

/** Version of the `--json` plan schema (docs/plan-json.md). Bump on any incompatible change. */
export const PLAN_SCHEMA_VERSION = 1;

export interface PlanJson {
  readonly schema: number;
  readonly changes: number;
  readonly summary: { readonly add: number; readonly change: number; readonly remove: number; readonly conflict: number };
  readonly actions: readonly (PlanItem & { readonly op: Op; readonly object: string })[];
}

/** The stable JSON form of a plan (`--json`), documented in docs/plan-json.md. */
export function planJson(actions: readonly PlanItem[]): PlanJson {
  const list = actions.map((a) => ({ ...a, op: symbol(a), object: keyOf(a) }));
  return {
    schema: PLAN_SCHEMA_VERSION,
    changes: actions.length,
    summary: {
      add: list.filter((a) => a.op === '+').length,
      change: list.filter((a) => a.op === '~').length,
      remove: list.filter((a) => a.op === '-').length,
      conflict: list.filter((a) => a.op === '!').length,
    },
    actions: list,
  };
}
