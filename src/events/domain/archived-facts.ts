// `ledgernet events` once an archive was moved away (README allows it): the endpoints and networks
// whose first events were in it are known from the snapshot (the state at or after the last event
// no longer readable), so their later lines are still found by --container, --address and
// --network NAME; what neither the events read nor the snapshot hold is named as unknown. Pure.
import { hexPrefix, type EndpointFacts, type EventQuery } from './event-filters.ts';
import { short } from './naming.ts';
import type { State, StoredEvent } from './types.ts';

/** Adds what `state` says of its endpoints (container, addresses), its cluster peers' endpoints and its networks' names. */
export function seedFromState(state: State, names: Map<string, string>, facts: EndpointFacts): void {
  for (const [id, net] of Object.entries(state.networks)) if (net.name !== undefined) names.set(id, net.name);
  for (const [id, ep] of Object.entries(state.endpoints)) {
    facts.addressed(id, [ep.address, ep.addressV6]);
    if (ep.container) {
      facts.named(id, ep.container.id, ep.container.name);
      names.set(id, ep.container.name);
    }
  }
  for (const peers of Object.values(state.peers ?? {})) {
    for (const [id, ep] of Object.entries(peers.endpoints)) facts.addressed(id, [ep.address]);
  }
}

/** The endpoints and networks of `events` that began before them and that `state` (null: no usable snapshot) does not hold. */
export interface Unknown {
  readonly endpoints: readonly string[];
  readonly networks: readonly string[];
}

/** Which endpoints and networks `events` name without their start (created before the first of them) that `state` does not hold either. */
export function unknownBefore(events: readonly StoredEvent[], state: State | null): Unknown {
  return new UnknownBefore(state).add(events).unknown();
}

/** unknownBefore for events read in parts: `add` each part in order, then `unknown`. */
export class UnknownBefore {
  private readonly held: Set<string>;
  private readonly endpoints = new Set<string>();
  private readonly networks = new Set<string>();
  constructor(state: State | null) {
    this.held = new Set([...Object.keys(state?.networks ?? {}), ...Object.keys(state?.endpoints ?? {})]);
    for (const peers of Object.values(state?.peers ?? {})) for (const id of Object.keys(peers.endpoints)) this.held.add(id);
  }

  add(events: Iterable<StoredEvent>): this {
    for (const e of events) {
      const d = e.data as { endpointId?: unknown; networkId?: unknown };
      // Its start is read: what it says is in the events (began in them, held from then on).
      if (e.type === 'network.created' || e.type === 'endpoint.created' || e.type === 'peer.endpoint.added') this.held.add(String(d.endpointId ?? d.networkId));
      if (typeof d.endpointId === 'string' && !this.held.has(d.endpointId)) this.endpoints.add(d.endpointId);
      if (typeof d.networkId === 'string' && !this.held.has(d.networkId)) this.networks.add(d.networkId);
    }
    return this;
  }

  unknown(): Unknown {
    return { endpoints: [...this.endpoints], networks: [...this.networks] };
  }
}

/**
 * What `u` leaves unknown for query `q` (null: nothing it asks about), for stderr: the endpoints
 * when it asks for a container or an address, the networks when it names one by its Docker name.
 */
export function describeUnknown(u: Unknown, q: EventQuery, snapshot: boolean): string | null {
  const endpoints = q.container !== undefined || q.address !== undefined ? u.endpoints : [];
  const networks = q.network !== undefined && hexPrefix(q.network) === null ? u.networks : [];
  if (endpoints.length + networks.length === 0) return null;
  const list = (ids: readonly string[], what: string) => `${ids.length} ${what}${ids.length > 1 ? 's' : ''} (${ids.slice(0, 3).map(short).join(', ')}${ids.length > 3 ? ', …' : ''})`;
  const which = [endpoints.length > 0 ? list(endpoints, 'endpoint') : null, networks.length > 0 ? list(networks, 'network') : null].filter((s) => s !== null).join(' and ');
  const facts = endpoints.length === 0 ? 'names' : networks.length === 0 ? 'containers and addresses' : 'containers, addresses and names';
  const snap = snapshot ? 'the snapshot does not hold them either' : 'there is no snapshot at or after them to tell of them';
  return `${which} began in archived events that are no longer here and ${snap}: their ${facts} are unknown, so lines of them may be missing below`;
}
