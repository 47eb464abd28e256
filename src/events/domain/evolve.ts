import { castDraft, produce, type Draft } from 'immer';
import { nextCursor } from './ipam.ts';
import { evolvePeers } from './peers.ts';
import type { State, StoredEvent } from './types.ts';

/** Folds one stored event into the state. Pure: everything it needs is in the event. */
export function evolve(state: State, event: StoredEvent): State {
  return produce(state, (draft) => {
    apply(draft, event);
    draft.seq = event.seq;
    draft.hash = event.hash;
  });
}

export function fold(state: State, events: readonly StoredEvent[]): State {
  return events.reduce(evolve, state);
}

function apply(draft: Draft<State>, event: StoredEvent): void {
  switch (event.type) {
    case 'network.created':
      draft.networks[event.data.networkId] = castDraft({ ...structuredClone(event.data), createdSeq: event.seq });
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
      draft.endpoints[event.data.endpointId] = castDraft({
        ...structuredClone(event.data),
        joined: false,
        sandboxKey: null,
        lost: false,
        programmed: false,
        portmap: [],
        createdSeq: event.seq,
      });
      return;
    case 'endpoint.joined': {
      const ep = draft.endpoints[event.data.endpointId];
      if (ep) {
        ep.joined = true;
        ep.sandboxKey = event.data.sandboxKey;
      }
      return;
    }
    case 'endpoint.left': {
      const ep = draft.endpoints[event.data.endpointId];
      if (ep) {
        ep.joined = false;
        ep.sandboxKey = null;
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
        ep.portmap = castDraft(structuredClone(event.data.portmap));
      }
      return;
    }
    case 'endpoint.external.revoked': {
      const ep = draft.endpoints[event.data.endpointId];
      if (ep) {
        ep.programmed = false;
        ep.portmap = [];
      }
      return;
    }
    case 'pool.requested':
      draft.pools[event.data.poolId] = castDraft({
        ...structuredClone(event.data),
        allocated: {},
        released: {},
        next: '0',
        requestedSeq: event.seq,
      });
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
      delete p.released[address];
      return;
    }
    case 'address.released': {
      const p = draft.pools[event.data.poolId];
      if (!p || !p.allocated[event.data.address]) return;
      delete p.allocated[event.data.address];
      p.released[event.data.address] = event.seq;
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
