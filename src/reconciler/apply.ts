// Design: one pass = its link changes (rtnetlink requests sent by the daemon itself, no process;
// `ip -force -batch -` where that cannot be used), at most one `tc -force -batch -`, and the
// firewall backend's batches (iptables: one `iptables-restore --noflush` per table,
// kernel/iptables/), written while the links are made; spawning costs ~2 ms per process (more
// from a large daemon: its fork). Like `-force`, one failing change does not stop the others;
// the kernel maps each failure back to its change (kernel/iproute/rtnl.ts, kernel/batch.ts),
// which are the plan's actions. Nothing here retries: the next pass re-observes and plans again, which
// converges or reports the same failure.
import {
  afterAcceptRaOff,
  afterLinkChanges,
  afterRouteLocalnet,
  afterShapingChanges,
  defaultFirewall,
  isFirewallChange,
  isLinkChange,
  isProxyChange,
  isReserveChange,
  isShapingChange,
  withoutRoutes,
  type ProxyPort,
  type ReservePort,
} from '../kernel/index.ts';
import type { ChangesResult, FirewallBackend, Kernel, KernelSnapshot } from '../kernel/types.ts';
import { isConflict, type Action } from './actions.ts';

export interface Failure {
  readonly action: Action;
  readonly message: string;
}

export interface ApplyResult {
  readonly applied: readonly Action[];
  readonly failures: readonly Failure[];
}

/**
 * Sends the changes of one kind in one batch (the kernel renders them: `ip -batch` or `tc -batch`)
 * and maps each failed change back to its action; a batch that could not run at all fails all of
 * its actions.
 */
async function runBatch<C extends Action>(
  changes: readonly C[],
  send: (changes: readonly C[]) => Promise<ChangesResult>,
  failures: Failure[],
): Promise<void> {
  if (changes.length === 0) return;
  try {
    for (const f of (await send(changes)).failures) {
      const action = changes[f.index];
      if (action) failures.push({ action, message: f.message });
    }
  } catch (e) {
    for (const action of changes) failures.push({ action, message: (e as Error).message });
  }
}

/** What a `link.conflict` fails with: its detail says which link, and how to resolve it. */
const CONFLICT_MESSAGE = 'left alone: not a link of ledgernet';

/** Why a proxy change cannot be applied where no proxy host runs (a CLI pass without the daemon). */
const NO_PROXY_HOST = 'no userland proxy runs in this process (ledgernet serve holds the listeners)';
/** Why a reservation cannot be made or released where the daemon does not run (a CLI pass without it). */
const NO_RESERVE_HOST = 'no reservations are held by this process (ledgernet serve holds the published ports)';

/** What the daemon holds in its own process: the userland proxy's listeners, the published ports' reservations. */
export interface ProcessHosts {
  readonly proxies?: ProxyPort | undefined;
  readonly reservations?: ReservePort | undefined;
}

/**
 * Applies a sorted plan. `endpoint.lost` actions are not kernel work and are passed through;
 * a `link.conflict` is not either, and is reported as a failure until the conflict is resolved.
 * Proxy listeners go to `hosts.proxies` (the daemon's), after the firewall; reservations to
 * `hosts.reservations`, after the firewall too (one that fails makes the Docker call revoke its
 * ports, rules included: intent.ts): each holds a descriptor, and a transaction through
 * libnftables must open its netlink socket below descriptor 1,024 or the process is aborted
 * (kernel/nft-library.ts), so a range of thousands is bound once the transaction is done.
 */
export async function applyActions(actions: readonly Action[], kernel: Kernel, firewall: FirewallBackend = defaultFirewall, hosts: ProcessHosts = {}): Promise<ApplyResult> {
  const failures: Failure[] = actions.filter((a) => a.kind === 'link.conflict').map((action) => ({ action, message: CONFLICT_MESSAGE }));
  const reserved = actions.filter(isReserveChange);
  // Rules name interfaces, they need none to exist: the firewall is written while the links are made.
  const changes = actions.filter(isFirewallChange);
  const walls = changes.length > 0 ? firewall.apply(changes, kernel) : Promise.resolve([]);
  // Should it throw, it does so below, after the links, as it did when it came after them.
  walls.catch(() => undefined);
  await runBatch(actions.filter((a) => isLinkChange(a)), (c) => kernel.applyLinks(c), failures);
  // A link already gone is what a delete wants (a container's namespace took its veth along).
  const gone = failures.filter((f) => f.action.kind === 'link.delete' && /Cannot find device/i.test(f.message));
  for (const f of gone) failures.splice(failures.indexOf(f), 1);
  await runBatch(actions.filter((a) => isShapingChange(a)), (c) => kernel.applyShaping(c), failures);
  const localnet = actions.filter((a) => a.kind === 'bridge.localnet');
  if (localnet.length > 0) {
    try {
      await kernel.setRouteLocalnet(Object.fromEntries(localnet.map((a) => [a.name, a.on])));
    } catch (e) {
      for (const a of localnet) failures.push({ action: a, message: (e as Error).message });
    }
  }
  const acceptRa = actions.filter((a) => a.kind === 'bridge.accept_ra');
  if (acceptRa.length > 0) {
    try {
      await kernel.setAcceptRaOff(acceptRa.map((a) => a.name));
    } catch (e) {
      for (const a of acceptRa) failures.push({ action: a, message: (e as Error).message });
    }
  }
  for (const a of actions.filter((a) => a.kind === 'sysctl.ipv6_forwarding')) {
    await kernel.setIpv6ForwardingOn().catch((e: unknown) => void failures.push({ action: a, message: (e as Error).message }));
  }
  for (const f of await walls) failures.push({ action: f.change, message: f.message });
  await runHosted(reserved, hosts.reservations, NO_RESERVE_HOST, failures);
  await runHosted(actions.filter(isProxyChange), hosts.proxies, NO_PROXY_HOST, failures);
  const failed = new Set(failures.map((f) => f.action));
  // A route conflict is neither done nor failed: the network works, the route is only reported.
  return { applied: actions.filter((a) => !failed.has(a) && a.kind !== 'endpoint.lost' && !isConflict(a)), failures };
}

/** Changes for a host of the daemon's process: applied by it, or all failed with `absent` where it does not run. */
async function runHosted<C extends Action>(changes: readonly C[], host: { apply(changes: readonly C[]): Promise<ChangesResult> } | undefined, absent: string, failures: Failure[]): Promise<void> {
  if (changes.length === 0) return;
  if (!host) for (const action of changes) failures.push({ action, message: absent });
  else await runBatch(changes, (c) => host.apply(c), failures);
}

/**
 * The kernel once `applied` (the actions that did not fail, in plan order) landed on `s`: what
 * the next pass may plan against without reading the kernel again (without routes: it plans
 * none, kernel/model.ts); null when the firewall
 * backend cannot say (the next pass reads the kernel). Pure.
 */
export function afterActions(s: KernelSnapshot, applied: readonly Action[], firewall: FirewallBackend = defaultFirewall): KernelSnapshot | null {
  // Routes are read by the full observe only: plans against the model leave them alone.
  const links = afterLinkChanges(withoutRoutes(s), applied.filter((a) => isLinkChange(a)));
  const shaped = afterShapingChanges(links, applied.filter((a) => isShapingChange(a)));
  const localnet = applied.flatMap((a) => (a.kind === 'bridge.localnet' ? [[a.name, a.on] as const] : []));
  const localnetSet = localnet.length > 0 ? afterRouteLocalnet(shaped, Object.fromEntries(localnet)) : shaped;
  const raOff = applied.flatMap((a) => (a.kind === 'bridge.accept_ra' ? [a.name] : []));
  const net = raOff.length > 0 ? afterAcceptRaOff(localnetSet, raOff) : localnetSet;
  const walls = applied.filter(isFirewallChange);
  return walls.length === 0 ? net : firewall.after(net, walls);
}
