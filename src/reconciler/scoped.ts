// Design: a pass for Docker plans only what its intents touched. The last pass left a model of
// the kernel (kernel/model.ts) and a base: the kernel held what the desired state of then asked,
// except the work it could not do (conflicts, lost endpoints, actions held back), whose networks
// it remembers (`dirty`). A network that no intent touched since, and that is not dirty, is in
// the kernel as it wants to be, so the full plan would have nothing for it: the scoped plan
// derives and plans the touched and dirty networks only (scope.ts says which changed), looks for
// orphans only among the links they wanted before and want now, and asks the firewall backend
// for a plan only when a policy it planned against changed (or work of its was left). Anything
// it cannot scope exactly (no base, a clash of names, an orphan left over) goes to a full plan.
// test/unit/reconciler/scoped.test.ts checks that a scoped plan equals the full plan, for random
// states, intents and kernels.
import { isFirewallChange, isProxyChange, isReserveChange } from '../kernel/index.ts';
import type { FirewallBackend, FirewallNetworkPolicy, FirewallPolicy, KernelSnapshot, Link } from '../kernel/types.ts';
import type { State } from '../events/domain/types.ts';
import type { Action } from './actions.ts';
import { byKey, desiredFirewall, desiredFromState } from './desired.ts';
import { planInFull, planObjects, planOrphanLinks, replacedNames, sortActions, unblockedPolicy } from './plan.ts';
import { DesiredIndex, type Touched } from './scope.ts';

/** The firewall policy the backend last planned against, by network, and whether the kernel holds all of it. */
interface FirewallBase {
  /** The policy itself: a backend may plan from it (FirewallBackend.planFrom) while the kernel holds all of it. */
  readonly policy: FirewallPolicy;
  readonly policies: ReadonlyMap<string, FirewallNetworkPolicy>;
  readonly vxlanPeers: readonly string[];
  readonly clean: boolean;
}

interface Base {
  /** The model this base describes: a scoped plan is made only against it. */
  readonly model: KernelSnapshot;
  readonly firewallName: string;
  /** Networks with work left undone (a conflict, a lost endpoint, an action held back): always planned. */
  readonly dirty: ReadonlySet<string>;
  readonly firewall: FirewallBase;
}

/** What the pass that runs planned from. */
interface Pending {
  readonly state: State;
  readonly firewallName: string;
  readonly firewall: FirewallBase;
}

function firewallBase(policy: FirewallPolicy): FirewallBase {
  return { policy, policies: new Map(policy.networks.map((n) => [n.networkId, n])), vxlanPeers: policy.vxlanPeers ?? [], clean: true };
}

/** Plain data (policies) equal field by field. */
function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && sameData((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/**
 * The links of `all` named in `names` (by their name, or an altname: planObjects indexes those),
 * and the veth peers of those (deleting one end deletes both).
 */
function linksNamed(all: readonly Link[], names: ReadonlySet<string>): Map<string, Link> {
  const out = new Map<string, Link>();
  const peers = new Set<string>();
  for (const l of all) {
    if (!names.has(l.name) && (l.altnames === undefined || !l.altnames.some((n) => names.has(n)))) continue;
    out.set(l.name, l);
    if (l.peer !== null && !names.has(l.peer)) peers.add(l.peer);
  }
  if (peers.size > 0) for (const l of all) if (peers.has(l.name)) out.set(l.name, l);
  return out;
}

export class ScopedPlanner {
  /** The desired state per network, kept current state by state (also what kernel notices are judged by). */
  readonly index = new DesiredIndex();
  private base: Base | null = null;
  private pending: Pending | null = null;

  /** The full plan: the desired state derived anew from `state`, every object planned against `actual`. */
  full(state: State, actual: KernelSnapshot, firewall: FirewallBackend): Action[] {
    this.index.advance(state);
    this.index.take();
    const { actions, policy } = planInFull(desiredFromState(state), actual, firewall);
    this.pending = { state, firewallName: firewall.name, firewall: firewallBase(policy) };
    return actions;
  }

  /**
   * The full plan of `state` against `model`, computed for the networks changed since the last
   * pass only; null when it cannot be scoped exactly (the caller then plans in full).
   */
  scoped(state: State, model: KernelSnapshot, firewall: FirewallBackend): Action[] | null {
    this.index.advance(state);
    const touched = this.index.take();
    const base = this.base;
    this.pending = null;
    if (!touched || !base || base.model !== model || base.firewallName !== firewall.name) return null;
    const scope = new Set([...touched.networks, ...base.dirty]);
    const parts = [...scope].flatMap((id) => this.index.network(id) ?? []).sort(byKey((d) => d.bridge.name));
    const names = this.names(touched, parts);
    if (names === null) return null;
    const links = linksNamed(model.links, names);
    const veths = parts.flatMap((d) => d.veths).sort(byKey((v) => v.name));
    const { actions, blocked } = planObjects(parts.map((d) => d.bridge), veths, links, model);
    actions.push(...planOrphanLinks(this.index, [...links.values()], replacedNames(actions)));
    let fw = base.firewall;
    if (this.firewallChanged(scope, blocked, base.firewall)) {
      const policy = unblockedPolicy(desiredFirewall(this.index.all(), this.index.vxlanPeers), blocked, model);
      // The model holds all of the last firewall plan when it was applied in full (`clean`).
      const from = base.firewall.clean ? firewall.planFrom : undefined;
      actions.push(...(from ? from(policy, base.firewall.policy, model) : firewall.plan(policy, model)));
      fw = firewallBase(policy);
    }
    this.pending = { state, firewallName: firewall.name, firewall: fw };
    return sortActions(actions);
  }

  /** The links the scope may change: those its networks want now and wanted before; null on a clash of names. */
  private names(touched: Touched, parts: ReturnType<DesiredIndex['all']>): Set<string> | null {
    const names = new Set(touched.names);
    for (const d of parts) {
      names.add(d.bridge.name);
      for (const v of d.veths) {
        names.add(v.name);
        names.add(v.peer);
        if (v.ifb) names.add(v.ifb.name);
      }
    }
    for (const n of names) if (this.index.clashes(n)) return null;
    return names;
  }

  /** The backend must plan: its last plan was not all applied, or a policy it planned against changed. */
  private firewallChanged(scope: ReadonlySet<string>, blocked: ReadonlySet<string>, base: FirewallBase): boolean {
    if (!base.clean || !sameData(this.index.vxlanPeers, base.vxlanPeers)) return true;
    for (const id of scope) {
      const now = blocked.has(id) ? undefined : this.index.network(id)?.policy;
      if (!sameData(now, base.policies.get(id))) return true;
    }
    return false;
  }

  /**
   * After the pass: `model` is the kernel it left (null: none to trust, the next pass plans in
   * full); what it planned and what it applied say which work is left, and where.
   */
  settle(model: KernelSnapshot | null, planned: readonly Action[], applied: readonly Action[]): void {
    const p = this.pending;
    this.pending = null;
    this.base = null;
    if (model === null || p === null) return;
    const done = new Set(applied);
    const dirty = new Set<string>();
    let clean = p.firewall.clean;
    for (const a of planned) {
      if (done.has(a) || isProxyChange(a) || isReserveChange(a) || a.kind === 'sysctl.ipv6_forwarding') continue;
      if (isFirewallChange(a)) clean = false;
      // An orphan's owner comes from its alias: no desired object names it, so no scope would find it again.
      else if (a.kind === 'link.delete' || a.owner.networkId === null || !Object.hasOwn(p.state.networks, a.owner.networkId)) return;
      else dirty.add(a.owner.networkId);
    }
    this.base = { model, firewallName: p.firewallName, dirty, firewall: clean ? p.firewall : { ...p.firewall, clean } };
  }
}
