import { castDraft, freeze, produce, type Draft } from 'immer';
import { evolveAddress, releaseMaps } from './evolve-address.ts';
import { nextCursor } from './ipam.ts';
import { evolvePeers } from './peers.ts';
import { expandRuns } from './port-runs.ts';
import { DEFERRED_MS, type State, type StoredEvent } from './types.ts';

/** Folds one stored event into the state. Pure: everything it needs is in the event. */
export function evolve(state: State, event: StoredEvent): State {
  return evolveAddress(state, event) ?? produce(state, (draft) => evolveInPlace(draft, event));
}

/**
 * Folds many events at once (a replay): into one plain copy of the state, mutated in place and
 * frozen at the end, instead of one immer draft per event, which copies every map an event
 * touches (e.g. a pool's `released` map) once per event. Same `apply`, same result.
 */
export function fold(state: State, events: readonly StoredEvent[]): State {
  if (events.length < 2) return events.reduce(evolve, state);
  const f = folder(state);
  for (const event of events) f.add(event);
  return f.result();
}

/** A fold one event at a time, for a replay that does not hold all the events at once (see fold). */
export function folder(state: State): { add(event: StoredEvent): void; result(): State } {
  const draft = cloneJson(state) as Draft<State>;
  let added = false;
  return {
    add(event) {
      evolveInPlace(draft, event);
      added = true;
    },
    result: () => (added ? freeze(draft as State, true) : state),
  };
}

/** A deep copy of JSON data (state, event data): far cheaper than structuredClone for small objects. */
function cloneJson<T>(v: T): T {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(cloneJson) as T;
  const out: Record<string, unknown> = {};
  // Keys, not entries, and no spread of the result: a replay copies every created object's data.
  for (const k of Object.keys(v)) out[k] = cloneJson((v as Record<string, unknown>)[k]);
  return out as T;
}

/** A copy of `data` with `extra` added (Object.assign: spreading a parsed record is ~10× slower in V8). */
function copyWith<T extends object, E extends object>(data: T, extra: E): T & E {
  return Object.assign(cloneJson(data), extra);
}

/** Folds one event into a plain mutable state (not frozen, not an immer draft). */
export function evolveInPlace(draft: Draft<State>, event: StoredEvent): void {
  apply(draft, event);
  draft.seq = event.seq;
  draft.hash = event.hash;
}

/** The markers of calls answered without their body (`deferred`: CreateEndpoint, `deferredNetworks`: CreateNetwork). */
type MarkerKey = 'deferred' | 'deferredNetworks';

/** A marker appended at `at`; markers older than DEFERRED_MS by then are dropped. */
function addMarker(draft: Draft<State>, key: MarkerKey, at: string): void {
  const now = Date.parse(at);
  draft[key] = [...(draft[key] ?? []).filter((t) => now - Date.parse(t) < DEFERRED_MS), at];
}

/** The oldest marker used up. */
function useMarker(draft: Draft<State>, key: MarkerKey): void {
  const markers = draft[key];
  if (!markers) return;
  markers.shift();
  if (markers.length === 0) delete draft[key];
}

function apply(draft: Draft<State>, event: StoredEvent): void {
  switch (event.type) {
    case 'network.created':
      draft.networks[event.data.networkId] = castDraft(copyWith(event.data, { createdSeq: event.seq }));
      // Taken from Docker's API: that uses the oldest marker.
      if (event.data.adopted) useMarker(draft, 'deferredNetworks');
      return;
    case 'network.deferred':
      addMarker(draft, 'deferredNetworks', event.at);
      return;
    case 'network.deleted':
    case 'network.rolledback':
    case 'network.collected':
      delete draft.networks[event.data.networkId];
      for (const [id, ep] of Object.entries(draft.endpoints)) {
        if (ep.networkId === event.data.networkId) delete draft.endpoints[id];
      }
      return;
    case 'endpoint.created':
      draft.endpoints[event.data.endpointId] = castDraft(
        copyWith(event.data, { joined: false, sandboxKey: null, lost: false, programmed: false, portmap: [], createdSeq: event.seq, createdAt: event.at }),
      );
      // Created at its Join: that uses the oldest marker.
      if (event.data.deferred) useMarker(draft, 'deferred');
      return;
    case 'endpoint.deferred':
      addMarker(draft, 'deferred', event.at);
      return;
    case 'endpoint.addressed': {
      const ep = draft.endpoints[event.data.endpointId];
      if (ep) {
        ep.address = event.data.address;
        ep.addressV6 = event.data.addressV6;
        ep.mac = event.data.mac;
      }
      return;
    }
    case 'log.archived':
    case 'cluster.host.forgotten':
      return;
    case 'network.named': {
      const net = draft.networks[event.data.networkId];
      if (net) net.name = event.data.name;
      return;
    }
    case 'endpoint.named': {
      const ep = draft.endpoints[event.data.endpointId];
      if (ep) ep.container = { id: event.data.containerId, name: event.data.name };
      return;
    }
    case 'endpoint.joined': {
      const ep = draft.endpoints[event.data.endpointId];
      if (ep) {
        ep.joined = true;
        ep.sandboxKey = event.data.sandboxKey;
        ep.joinedAt = event.at;
        delete ep.leftAt;
      }
      return;
    }
    case 'endpoint.left': {
      const ep = draft.endpoints[event.data.endpointId];
      if (ep) {
        ep.joined = false;
        ep.sandboxKey = null;
        delete ep.joinedAt;
        ep.leftAt = event.at;
      }
      return;
    }
    case 'endpoint.deleted':
    case 'endpoint.rolledback':
      delete draft.endpoints[event.data.endpointId];
      return;
    case 'endpoint.lost': {
      const ep = draft.endpoints[event.data.endpointId];
      if (ep) ep.lost = true;
      return;
    }
    case 'endpoint.external.programmed': {
      const ep = draft.endpoints[event.data.endpointId];
      if (ep) {
        ep.programmed = true;
        ep.portmap = castDraft(expandRuns(event.data.portmap));
        if (event.data.family === undefined) delete ep.portFamily;
        else ep.portFamily = event.data.family;
      }
      return;
    }
    case 'endpoint.external.revoked': {
      const ep = draft.endpoints[event.data.endpointId];
      if (ep) {
        ep.programmed = false;
        ep.portmap = [];
        delete ep.portFamily;
      }
      return;
    }
    case 'pool.requested':
      draft.pools[event.data.poolId] = castDraft(copyWith(event.data, { allocated: {}, released: {}, next: '0', requestedSeq: event.seq }));
      return;
    case 'pool.released':
      delete draft.pools[event.data.poolId];
      return;
    case 'address.requested': {
      const p = draft.pools[event.data.poolId];
      if (!p) return;
      const { address, kind, name, auto } = event.data;
      p.next = nextCursor(p, address, auto);
      p.allocated[address] = { kind, name, seq: event.seq };
      return;
    }
    case 'address.released': {
      const p = draft.pools[event.data.poolId];
      if (!p || !p.allocated[event.data.address]) return;
      delete p.allocated[event.data.address];
      const maps = releaseMaps(p, event.data.address, event.seq);
      if (maps.released !== p.released) p.released = castDraft(maps.released);
      p.recent = castDraft(maps.recent);
      return;
    }
    case 'block.claimed': {
      const p = draft.pools[event.data.poolId];
      if (p && !(p.blocks ?? []).includes(event.data.block)) p.blocks = [...(p.blocks ?? []), event.data.block];
      return;
    }
    case 'peer.member.joined':
    case 'peer.member.left':
    case 'peer.endpoint.added':
    case 'peer.endpoint.removed':
      draft.peers = castDraft(evolvePeers(draft.peers ?? {}, event));
      return;
    case 'reconcile.applied':
      return;
    default: {
      const never: never = event;
      throw new Error(`unknown event type ${(never as StoredEvent).type}`);
    }
  }
}
