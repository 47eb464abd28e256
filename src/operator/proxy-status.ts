// The userland proxy as the CLI shows it: `reconcile --dry-run` plans the listeners against what
// the running daemon holds (none when no daemon runs: nothing serves them), and `status` lists
// each wanted or held listener with its state.
import type { State } from '../events/index.ts';
import { proxyTarget, type ProxyChange, type ProxyListener, type Reservation } from '../kernel/index.ts';
import { desiredProxies, planProxies } from '../reconciler/proxies.ts';
import { callDaemon } from './control-client.ts';
import { short } from '../events/index.ts';
import { table } from './table.ts';

/** What the daemon holds in its process: its proxy listeners and its reservations of published ports; null when no daemon answers. */
export async function daemonHeld(stateDir: string): Promise<{ readonly proxies: readonly ProxyListener[]; readonly reservations: readonly Reservation[] } | null> {
  const status = (await callDaemon(stateDir, 'GET', '/status').catch(() => null)) as { proxies?: ProxyListener[]; reservations?: Reservation[] } | null;
  return status ? { proxies: status.proxies ?? [], reservations: status.reservations ?? [] } : null;
}

/** What a pass of the daemon would open and close. */
export function proxyPlan(state: State, held: readonly ProxyListener[] | null): ProxyChange[] {
  return planProxies(desiredProxies(state), held ?? []);
}

export interface ProxyRow {
  readonly listen: string;
  readonly target: string;
  readonly networkId: string | null;
  readonly endpointId: string | null;
  readonly connections: number;
  /** `listening`; `missing` (wanted, not open: see the log); `orphan` (open, no longer wanted: closed by the next pass). */
  readonly state: 'listening' | 'missing' | 'orphan' | 'drifted';
}

export function proxyRows(state: State, held: readonly ProxyListener[] | null): ProxyRow[] {
  const plan = proxyPlan(state, held);
  const wanted = desiredProxies(state).map((d): ProxyRow => {
    const l = held?.find((h) => h.name === d.name);
    const change = plan.find((c) => c.kind === 'proxy.open' && c.name === d.name);
    const st = change === undefined ? 'listening' : change.reason === 'drifted' ? 'drifted' : 'missing';
    return { listen: d.name, target: proxyTarget(d.spec), networkId: d.owner.networkId, endpointId: d.owner.endpointId, connections: l?.connections ?? 0, state: st };
  });
  const orphans = plan.flatMap((c): ProxyRow[] => {
    const l = c.kind === 'proxy.close' ? held?.find((h) => h.name === c.name) : undefined;
    return l ? [{ listen: l.name, target: proxyTarget(l), networkId: l.owner.networkId, endpointId: l.owner.endpointId, connections: l.connections, state: 'orphan' }] : [];
  });
  return [...wanted, ...orphans];
}

export function proxiesTable(rows: readonly ProxyRow[]): string {
  return table(
    ['PROXY (::1)', 'TARGET', 'ENDPOINT', 'CONNECTIONS', 'STATE'],
    rows.map((r) => [r.listen, r.target, r.endpointId ? short(r.endpointId) : '-', String(r.connections), r.state]),
  );
}
