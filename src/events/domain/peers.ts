// What this host knows of the other hosts of its cluster networks, learnt from the cluster's KV
// bucket and recorded as events in its own log (so the log still explains every kernel object,
// the remote ones included, and a NATS outage leaves the last-known peers in place): the hosts
// that have a network (members, with their VTEP) and their endpoints (address, MAC).
import { DriverError } from '../../errors.ts';

interface PeerMember {
  readonly host: string;
  readonly vtep: string;
}

interface PeerEndpoint {
  readonly host: string;
  readonly vtep: string;
  readonly endpointId: string;
  readonly address: string;
  readonly mac: string;
}

/** One cluster network's remote side: members and endpoints by host, then by endpoint id. */
export interface ClusterPeers {
  readonly members: Readonly<Record<string, PeerMember>>;
  readonly endpoints: Readonly<Record<string, PeerEndpoint>>;
}

export interface PeerEventMap {
  'peer.member.joined': { readonly cluster: string } & PeerMember;
  'peer.member.left': { readonly cluster: string; readonly host: string };
  'peer.endpoint.added': { readonly cluster: string } & PeerEndpoint;
  'peer.endpoint.removed': { readonly cluster: string; readonly host: string; readonly endpointId: string };
}

export type PeerEvent = { [K in keyof PeerEventMap]: { readonly type: K; readonly data: PeerEventMap[K] } }[keyof PeerEventMap];

/** A remote change as the KV watcher saw it: a key of another host put or deleted. */
export type PeerChange =
  | { readonly op: 'member'; readonly cluster: string; readonly host: string; readonly member: PeerMember | null }
  | { readonly op: 'endpoint'; readonly cluster: string; readonly host: string; readonly endpointId: string; readonly endpoint: PeerEndpoint | null };

type Peers = Readonly<Record<string, ClusterPeers>>;

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * The events a remote change makes, against what the log already knows: none when it knows it
 * (a watcher replaying the bucket after a reconnect), so the log grows only with real changes.
 * A host that left takes its endpoints along.
 */
export function decidePeerChange(change: PeerChange, peers: Peers, self: string): PeerEvent[] {
  if (change.host === self) throw new DriverError('LN_ERR_CONFLICT', `a peer change names this host ${self}: another host runs under the same --host`);
  const known = peers[change.cluster];
  if (change.op === 'member') {
    const had = known?.members[change.host];
    if (change.member) return same(had, change.member) ? [] : [{ type: 'peer.member.joined', data: { cluster: change.cluster, ...change.member } }];
    if (!had) return [];
    const gone = Object.values(known?.endpoints ?? {}).filter((e) => e.host === change.host);
    return [
      ...gone.map((e): PeerEvent => ({ type: 'peer.endpoint.removed', data: { cluster: change.cluster, host: e.host, endpointId: e.endpointId } })),
      { type: 'peer.member.left', data: { cluster: change.cluster, host: change.host } },
    ];
  }
  const had = known?.endpoints[change.endpointId];
  if (change.endpoint) return same(had, change.endpoint) ? [] : [{ type: 'peer.endpoint.added', data: { cluster: change.cluster, ...change.endpoint } }];
  return had ? [{ type: 'peer.endpoint.removed', data: { cluster: change.cluster, host: change.host, endpointId: change.endpointId } }] : [];
}

/** Folds one peer event into the peers (a new object; the input is left alone). */
export function evolvePeers(peers: Peers, ev: PeerEvent): Peers {
  const cur: ClusterPeers = peers[ev.data.cluster] ?? { members: {}, endpoints: {} };
  let next: ClusterPeers;
  switch (ev.type) {
    case 'peer.member.joined':
      next = { ...cur, members: { ...cur.members, [ev.data.host]: { host: ev.data.host, vtep: ev.data.vtep } } };
      break;
    case 'peer.member.left': {
      const { [ev.data.host]: _gone, ...members } = cur.members;
      next = { ...cur, members };
      break;
    }
    case 'peer.endpoint.added': {
      const { cluster: _c, ...ep } = ev.data;
      next = { ...cur, endpoints: { ...cur.endpoints, [ep.endpointId]: ep } };
      break;
    }
    case 'peer.endpoint.removed': {
      const { [ev.data.endpointId]: _gone, ...endpoints } = cur.endpoints;
      next = { ...cur, endpoints };
      break;
    }
  }
  return { ...peers, [ev.data.cluster]: next };
}
