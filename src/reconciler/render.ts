import { describeAction, type Action } from './actions.ts';

/** Plain-text plan for `ledgernet reconcile --dry-run`: grouped by owner, one line per action. */
export function renderPlan(actions: readonly Action[]): string {
  if (actions.length === 0) return 'no changes: the kernel matches the desired state\n';
  const groups = new Map<string, Action[]>();
  for (const a of actions) {
    const key = a.owner.endpointId
      ? `endpoint ${a.owner.endpointId.slice(0, 12)}`
      : a.owner.networkId
        ? `network ${a.owner.networkId.slice(0, 12)}`
        : 'shared';
    groups.set(key, [...(groups.get(key) ?? []), a]);
  }
  const out: string[] = [];
  for (const [key, list] of groups) {
    out.push(`${key}:`);
    for (const a of list) {
      out.push(`  ${symbol(a)} ${describeAction(a)}`);
      // The rules themselves, so the effect of each option (and each hand edit) is visible.
      if (a.kind === 'chain.write') for (const d of a.diff ?? []) out.push(`      ${d}`);
    }
  }
  out.push(`${actions.length} change${actions.length === 1 ? '' : 's'} pending`);
  return `${out.join('\n')}\n`;
}

function symbol(a: Action): string {
  if (a.kind.endsWith('.delete') || a.kind === 'addr.del' || a.kind === 'endpoint.lost') return '-';
  if (a.kind === 'link.set' || a.reason === 'drifted') return '~';
  return '+';
}

/** The stable JSON form of a plan (`--json`). */
export function planJson(actions: readonly Action[]): { changes: number; actions: readonly Action[] } {
  return { changes: actions.length, actions };
}
