// Design: one pass = at most one `ip -force -batch -`, one `tc -force -batch -`, and the firewall
// backend's batches (iptables: one `iptables-restore --noflush` per table, kernel/iptables/);
// spawning costs ~2 ms per process; batching 100 link adds takes 33 ms instead of 259 ms.
// `-force` keeps the batch going past a failing line so that one broken object does not block
// the others; the failing lines are mapped back to their actions. Nothing here retries: the
// next pass re-observes and plans again, which converges or reports the same failure.
import {
  afterLinkChanges,
  afterRouteLocalnet,
  afterShapingChanges,
  defaultFirewall,
  ipLines as renderIpLines,
  isLinkChange,
  isShapingChange,
  tcLines as renderTcLines,
} from '../kernel/index.ts';
import type { FirewallBackend, FirewallChange, Kernel, KernelSnapshot } from '../kernel/types.ts';
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

function isFirewall(a: Action): a is FirewallChange {
  return a.kind === 'chain.write' || a.kind === 'chain.delete' || a.kind === 'hook.add' || a.kind === 'hook.delete';
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
  // A link already gone is what a delete wants (a container's namespace took its veth along).
  const gone = failures.filter((f) => f.action.kind === 'link.delete' && /Cannot find device/i.test(f.message));
  for (const f of gone) failures.splice(failures.indexOf(f), 1);
  await runBatch(actions, tcLines, (lines) => kernel.tcBatch(lines), failures);
  const localnet = actions.filter((a) => a.kind === 'bridge.localnet');
  if (localnet.length > 0) {
    try {
      await kernel.setRouteLocalnet(Object.fromEntries(localnet.map((a) => [a.name, a.on])));
    } catch (e) {
      for (const a of localnet) failures.push({ action: a, message: (e as Error).message });
    }
  }
  const changes = actions.filter(isFirewall);
  if (changes.length > 0) for (const f of await firewall.apply(changes, kernel)) failures.push({ action: f.change, message: f.message });
  const failed = new Set(failures.map((f) => f.action));
  return { applied: actions.filter((a) => !failed.has(a) && a.kind !== 'endpoint.lost' && a.kind !== 'link.conflict'), failures };
}

/**
 * The kernel once `applied` (the actions that did not fail, in plan order) landed on `s`: what
 * the next pass may plan against without reading the kernel again; null when the firewall
 * backend cannot say (the next pass reads the kernel). Pure.
 */
export function afterActions(s: KernelSnapshot, applied: readonly Action[], firewall: FirewallBackend = defaultFirewall): KernelSnapshot | null {
  const links = afterLinkChanges(s, applied.filter((a) => isLinkChange(a)));
  const shaped = afterShapingChanges(links, applied.filter((a) => isShapingChange(a)));
  const localnet = applied.flatMap((a) => (a.kind === 'bridge.localnet' ? [[a.name, a.on] as const] : []));
  const net = localnet.length > 0 ? afterRouteLocalnet(shaped, Object.fromEntries(localnet)) : shaped;
  const walls = applied.filter(isFirewall);
  return walls.length === 0 ? net : firewall.after(net, walls);
}
