// Keeps this host's log and the cluster's KV bucket in step: this host's endpoints on cluster
// networks are published to the bucket as they are created and deleted (from its log), and every
// other host's member and endpoint keys of the clusters this host has become peer.* events in
// its log (through decide, so a change the log already knows records nothing). What this host
// should have in the bucket as a whole (`ownKeysOf`) is written by the heartbeat when it may have
// missed something (src/events/cluster/heartbeat.ts).
import { byLedgernet } from '../domain/cause.ts';
import type { Command } from '../domain/commands.ts';
import { clusterOf } from '../domain/options.ts';
import type { PeerChange } from '../domain/peers.ts';
import { lookup, type Cause, type State, type StoredEvent } from '../domain/types.ts';
import type { OwnKeys } from './host-keys.ts';
import type { HostSeen } from './kv.ts';

interface SyncStore {
  readonly state: State;
  execute(cmd: Command, cause: Cause): Promise<StoredEvent[]>;
  onEvents(listener: (events: readonly StoredEvent[], state: State) => void): void;
}

interface SyncKv {
  publishEndpoint(name: string, ep: { endpointId: string; address: string; mac: string } | { endpointId: string; gone: true }): Promise<void>;
  watchPeers(onChange: (c: PeerChange) => void, onSeen?: (s: HostSeen) => void, onEnd?: () => void): Promise<{ stop(): void }>;
}

/** The cluster network an endpoint's network belongs to, or null. */
function clusterOfNetwork(state: State, networkId: string): string | null {
  const net = lookup(state.networks, networkId);
  return net ? clusterOf(net.options) : null;
}

/** What this host's keys in the bucket should be, from its log: its cluster pools and its endpoints on them. */
export function ownKeysOf(state: State): OwnKeys {
  const pools = Object.values(state.pools).flatMap((p) => (p.cluster ? [{ ...p, cluster: p.cluster }] : []));
  const members = [...new Set(pools.map((p) => p.cluster.name))].sort();
  const networks = pools.map((p) => ({ name: p.cluster.name, subnet: p.pool, vni: p.cluster.vni, blockLen: p.cluster.blockLen, blocks: p.blocks ?? [] }));
  const endpoints = Object.values(state.endpoints).flatMap((ep) => {
    const cluster = clusterOfNetwork(state, ep.networkId);
    return cluster !== null && ep.address && ep.mac ? [{ cluster, endpointId: ep.endpointId, address: ep.address.split('/')[0] ?? '', mac: ep.mac }] : [];
  });
  return { members, networks, endpoints };
}

export interface ClusterSync {
  stop(): void;
  /** Watches again from the bucket's current values (the watch stalled or ended). */
  rewatch(): void;
}

/**
 * Starts both directions; `onError` hears about a publish or record that failed, `onChanged` of a
 * change to what this host should have in the bucket beyond one endpoint (a cluster pool released):
 * the heartbeat then writes this host's keys again. `onSeen` and `onWatchEnd` are the watch's.
 */
export async function syncCluster(o: {
  kv: SyncKv;
  store: SyncStore;
  host: string;
  onError: (e: unknown) => void;
  onChanged?: () => void;
  /** An endpoint of this host was published or unpublished. */
  onPublish?: () => void;
  onSeen?: (s: HostSeen) => void;
  onWatchEnd?: () => void;
}): Promise<ClusterSync> {
  const { kv, store } = o;
  const publish = (state: State, endpointId: string, networkId: string, gone: boolean) => {
    const cluster = clusterOfNetwork(state, networkId);
    const ep = lookup(state.endpoints, endpointId);
    if (cluster === null) return;
    o.onPublish?.();
    if (gone) kv.publishEndpoint(cluster, { endpointId, gone: true }).catch(o.onError);
    else if (ep?.address && ep.mac) kv.publishEndpoint(cluster, { endpointId, address: ep.address.split('/')[0] ?? '', mac: ep.mac }).catch(o.onError);
  };
  let before = store.state;
  let watcher: Promise<{ stop(): void }> | null = null;
  store.onEvents((events, state) => {
    for (const e of events) {
      // A cluster network new on this host: watch again from the bucket's current values.
      if (e.type === 'network.created' && clusterOf(e.data.options) !== null) watcher = rewatch();
      if (e.type === 'endpoint.created' || e.type === 'endpoint.addressed') publish(state, e.data.endpointId, e.data.networkId, false);
      if (e.type === 'endpoint.deleted' || e.type === 'endpoint.rolledback') publish(before, e.data.endpointId, e.data.networkId, true);
      if (e.type === 'pool.released' || e.type === 'network.collected') o.onChanged?.();
    }
    before = state;
  });
  // Record one change at a time, in the order the bucket delivered them.
  let chain = Promise.resolve();
  const record = (change: PeerChange) => {
    chain = chain
      .then(async () => {
        const mine = Object.values(store.state.networks).some((n) => clusterOf(n.options) === change.cluster);
        if (mine || store.state.peers?.[change.cluster]) await store.execute({ type: 'PeerChange', change, self: o.host }, byLedgernet('cluster-sync'));
      })
      .catch(o.onError);
  };
  let stopped = false;
  let generation = 0;
  const watch = () => {
    const mine = ++generation;
    // Only the current watch's end is news: an old one ends because it was replaced.
    const w = kv.watchPeers(record, o.onSeen, () => !stopped && mine === generation && o.onWatchEnd?.());
    w.catch(o.onError);
    return w;
  };
  const rewatch = async () => {
    const old = watcher;
    watcher = null;
    (await old?.catch(() => null))?.stop();
    return watch();
  };
  watcher = watch();
  await watcher;
  return {
    stop: () => {
      stopped = true;
      void watcher?.then((w) => w.stop(), () => undefined);
    },
    rewatch: () => {
      if (!stopped) watcher = rewatch();
    },
  };
}
