// Keeps this host's log and the cluster's KV bucket in step: this host's endpoints on cluster
// networks are published to the bucket as they are created and deleted (from its log), and every
// other host's member and endpoint keys of the clusters this host has become peer.* events in
// its log (through decide, so a change the log already knows records nothing).
import type { Command } from '../domain/commands.ts';
import { clusterOf } from '../domain/options.ts';
import type { PeerChange } from '../domain/peers.ts';
import { lookup, type State, type StoredEvent } from '../domain/types.ts';

interface SyncStore {
  readonly state: State;
  execute(cmd: Command): Promise<StoredEvent[]>;
  onEvents(listener: (events: readonly StoredEvent[], state: State) => void): void;
}

interface SyncKv {
  publishEndpoint(name: string, ep: { endpointId: string; address: string; mac: string } | { endpointId: string; gone: true }): Promise<void>;
  watchPeers(onChange: (c: PeerChange) => void): Promise<{ stop(): void }>;
}

/** The cluster network an endpoint's network belongs to, or null. */
function clusterOfNetwork(state: State, networkId: string): string | null {
  const net = lookup(state.networks, networkId);
  return net ? clusterOf(net.options) : null;
}

/**
 * Starts both directions; `onError` hears about a publish or record that failed (the next start
 * publishes again: `republish` puts every endpoint of the log).
 */
export async function syncCluster(o: { kv: SyncKv; store: SyncStore; host: string; onError: (e: unknown) => void }): Promise<{ stop(): void }> {
  const { kv, store } = o;
  const publish = (state: State, endpointId: string, networkId: string, gone: boolean) => {
    const cluster = clusterOfNetwork(state, networkId);
    const ep = lookup(state.endpoints, endpointId);
    if (cluster === null) return;
    if (gone) kv.publishEndpoint(cluster, { endpointId, gone: true }).catch(o.onError);
    else if (ep?.address && ep.mac) kv.publishEndpoint(cluster, { endpointId, address: ep.address.split('/')[0] ?? '', mac: ep.mac }).catch(o.onError);
  };
  let before = store.state;
  let watcher: Promise<{ stop(): void }> | null = null;
  store.onEvents((events, state) => {
    for (const e of events) {
      // A cluster network new on this host: watch again from the bucket's current values.
      if (e.type === 'network.created' && clusterOf(e.data.options) !== null) watcher = rewatch();
      if (e.type === 'endpoint.created') publish(state, e.data.endpointId, e.data.networkId, false);
      if (e.type === 'endpoint.deleted' || e.type === 'endpoint.rolledback') publish(before, e.data.endpointId, e.data.networkId, true);
    }
    before = state;
  });
  for (const ep of Object.values(store.state.endpoints)) publish(store.state, ep.endpointId, ep.networkId, false);
  // Record one change at a time, in the order the bucket delivered them.
  let chain = Promise.resolve();
  const record = (change: PeerChange) => {
    chain = chain
      .then(async () => {
        const mine = Object.values(store.state.networks).some((n) => clusterOf(n.options) === change.cluster);
        if (mine || store.state.peers?.[change.cluster]) await store.execute({ type: 'PeerChange', change, self: o.host });
      })
      .catch(o.onError);
  };
  const rewatch = async () => {
    const old = watcher;
    watcher = null;
    (await old)?.stop();
    return kv.watchPeers(record);
  };
  watcher = kv.watchPeers(record);
  await watcher;
  return {
    stop: () => {
      void watcher?.then((w) => w.stop());
    },
  };
}
