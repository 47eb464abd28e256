// Kernel notices (`ip monitor`, kernel/monitor.ts) about links ledgernet watches, judged. Only
// drift drops the kernel model (the next pass reads the whole host) and asks for a repair pass;
// under Docker's load most notices are not drift:
// - the echo of an apply of ours: of the pass that runs, or of one that ended moments ago (with
//   passes back to back, the echo of one pass often arrives while the next one runs);
// - a change to a link the desired state no longer wants: Docker moved a container's end back
//   and we deleted the pair, or a container's namespace took it along. The next pass deletes it
//   anyway (a delete of a link already gone is what it wants, reconciler/apply.ts).
import type { DriftKind } from '../kernel/monitor.ts';
import type { Action } from './actions.ts';
import type { DesiredState } from './desired.ts';

export type Verdict = 'drift' | 'echo' | 'unwanted';

/** How long after a pass kernel notices are taken as its echo (ip monitor lags a little). */
export const ECHO_MS = 300;

/** The notices the kernel sends when `actions` are applied, by link name. */
function expectedEchoes(actions: readonly Action[]): Map<string, Set<DriftKind>> {
  const out = new Map<string, Set<DriftKind>>();
  const add = (name: string, ...kinds: DriftKind[]) => {
    const set = out.get(name) ?? new Set<DriftKind>();
    for (const k of kinds) set.add(k);
    out.set(name, set);
  };
  // Deleting a link closes it first (a notice without UP, and one off its bridge), then deletes it
  // with its addresses.
  const gone: DriftKind[] = ['deleted', 'down', 'nomaster', 'addr-deleted'];
  for (const a of actions) {
    if (a.kind === 'link.delete') add(a.name, ...gone);
    else if (a.kind === 'addr.del') add(a.dev, 'addr-deleted');
    else if (a.kind === 'bridge.create' || a.kind === 'veth.create' || a.kind === 'link.set' || a.kind === 'ifb.create') add(a.name, 'down', 'nomaster');
    if ('replaces' in a) for (const name of a.replaces ?? []) add(name, ...gone);
  }
  return out;
}

/**
 * The echoes expected of recent passes: those of a pass that runs, and of passes that ended less
 * than ECHO_MS ago. Times are `performance.now()` milliseconds, passed in (tests use their own).
 */
export class Echoes {
  /** `until` is Infinity while the pass that expects them runs. */
  private recent: { until: number; expected: Map<string, Set<DriftKind>> }[] = [];

  /** A running pass planned `actions`. */
  expect(actions: readonly Action[], now: number): void {
    this.prune(now);
    if (actions.length > 0) this.recent.push({ until: Infinity, expected: expectedEchoes(actions) });
  }

  /** The running pass ended: its echoes count for ECHO_MS more. */
  passEnded(now: number): void {
    for (const e of this.recent) if (e.until === Infinity) e.until = now + ECHO_MS;
  }

  has(name: string, kind: DriftKind, now: number): boolean {
    this.prune(now);
    return this.recent.some((e) => e.expected.get(name)?.has(kind) ?? false);
  }

  private prune(now: number): void {
    if (this.recent.some((e) => e.until <= now)) this.recent = this.recent.filter((e) => e.until > now);
  }
}

/** The link names `desired` wants in the host namespace: bridges, host-side veths, ifbs. */
export function wantedLinks(desired: DesiredState): Set<string> {
  return new Set([...desired.bridges.map((b) => b.name), ...desired.veths.flatMap((v) => [v.name, ...(v.ifb ? [v.ifb.name] : [])])]);
}

/**
 * What a notice about link `name` is: the echo of our own apply, a change to a link no longer
 * wanted, or drift (a link the desired state wants changed in a way we did not make).
 */
export function judgeNotice(name: string, kind: DriftKind, o: { echo: (name: string, kind: DriftKind) => boolean; wanted: (name: string) => boolean }): Verdict {
  if (o.echo(name, kind)) return 'echo';
  return o.wanted(name) ? 'drift' : 'unwanted';
}
