// Design: one pass = at most one `ip -force -batch -`, one `tc -force -batch -`, and the firewall
// backend's batches (iptables: one `iptables-restore --noflush` per table, kernel/iptables/);
// spawning costs ~2 ms per process; batching 100 link adds takes 33 ms instead of 259 ms.
// `-force` keeps the batch going past a failing line so that one broken object does not block
// the others; the failing lines are mapped back to their actions. Nothing here retries: the
// next pass re-observes and plans again, which converges or reports the same failure.
import { defaultFirewall, ipLines as renderIpLines, isFirewallChange, isLinkChange, isShapingChange, tcLines as renderTcLines } from '../kernel/index.ts';
import type { FirewallBackend, Kernel } from '../kernel/types.ts';
import type { Action } from './actions.ts';

export interface Failure {
  readonly action: Action;
  readonly message: string;
}

export interface ApplyResult {
  readonly applied: readonly Action[];
  readonly failures: readonly Failure[];
}

/** The `ip -batch` lines for one action (empty for actions that are not link/addr work). */
export function ipLines(a: Action): string[] {
  return isLinkChange(a) ? renderIpLines(a) : [];
}

function tcLines(a: Action): string[] {
  return isShapingChange(a) ? renderTcLines(a) : [];
}

/**
 * Sends the lines of every action as one batch (`ip -batch` or `tc -batch`) and maps each failed
 * line back to its action; a batch that could not run at all fails all of its actions.
 */
async function runBatch(
  actions: readonly Action[],
  toLines: (a: Action) => string[],
  send: (lines: readonly string[]) => Promise<{ readonly failures: readonly { readonly line: number; readonly message: string }[] }>,
  failures: Failure[],
): Promise<void> {
  const lines: string[] = [];
  const owner: Action[] = [];
  for (const a of actions) for (const l of toLines(a)) (lines.push(l), owner.push(a));
  if (lines.length === 0) return;
  try {
    const res = await send(lines);
    for (const f of res.failures) {
      const action = owner[f.line];
      if (action && !failures.some((x) => x.action === action)) failures.push({ action, message: f.message });
    }
  } catch (e) {
    for (const a of new Set(owner)) failures.push({ action: a, message: (e as Error).message });
  }
}

/** What a `link.conflict` fails with: its detail says which link, and how to resolve it. */
const CONFLICT_MESSAGE = 'left alone: not a link of ledgernet';

/**
 * Applies a sorted plan. `endpoint.lost` actions are not kernel work and are passed through;
 * a `link.conflict` is not either, and is reported as a failure until the conflict is resolved.
 */
export async function applyActions(actions: readonly Action[], kernel: Kernel, firewall: FirewallBackend = defaultFirewall): Promise<ApplyResult> {
  const failures: Failure[] = actions.filter((a) => a.kind === 'link.conflict').map((action) => ({ action, message: CONFLICT_MESSAGE }));
  await runBatch(actions, ipLines, (lines) => kernel.ipBatch(lines), failures);
  await runBatch(actions, tcLines, (lines) => kernel.tcBatch(lines), failures);
  const localnet = actions.filter((a) => a.kind === 'bridge.localnet');
  if (localnet.length > 0) {
    try {
      await kernel.setRouteLocalnet(Object.fromEntries(localnet.map((a) => [a.name, a.on])));
    } catch (e) {
      for (const a of localnet) failures.push({ action: a, message: (e as Error).message });
    }
  }
  const changes = actions.filter(isFirewallChange);
  if (changes.length > 0) for (const f of await firewall.apply(changes, kernel)) failures.push({ action: f.change, message: f.message });
  const failed = new Set(failures.map((f) => f.action));
  return { applied: actions.filter((a) => !failed.has(a) && a.kind !== 'endpoint.lost' && a.kind !== 'link.conflict'), failures };
}
