// Wires the cluster's coordination for serve: this host's VTEP (given, or its source address
// towards the first NATS server) and a lazily connected KV bucket on the --nats servers.
import { lookup as dnsLookup } from 'node:dns/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { resolveNats, type NatsConfig } from '../config.ts';
import { ClusterKv, lazyCluster, ownKeysOf, startHeartbeat, syncCluster, type ClusterPort, type Heartbeat } from '../events/index.ts';
import { routeSource } from '../kernel/index.ts';

/** The host part of a NATS server (`nats://h:4222`, `h:4222`, `[fd00::1]:4222`). */
export function natsHostOf(server: string): string {
  const rest = server.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\//, '');
  const v6 = /^\[([^\]]+)\]/.exec(rest);
  return v6?.[1] ?? rest.split(':')[0] ?? rest;
}

/** --vtep, else this host's source address towards the first NATS server. */
async function resolveVtep(nats: NatsConfig, vtep: string | null): Promise<string> {
  if (vtep !== null) return vtep;
  const first = resolveNats(nats).servers[0]?.server ?? '';
  const { address } = await dnsLookup(natsHostOf(first));
  return routeSource(address);
}

export interface Cluster {
  readonly port: ClusterPort;
  /** This host's VTEP once resolved (on joining), else null. */
  vtep(): string | null;
  /** Keeps the log and the bucket in step (src/events/cluster/sync.ts), connecting in the background until NATS answers. */
  start(store: Parameters<typeof syncCluster>[0]['store']): void;
  stop(): Promise<void>;
}

/** How long to wait before trying NATS again when the cluster cannot be joined. */
const RETRY_MS = 5_000;

/** The cluster port of serve; nothing connects until a cluster network is created or used. */
export function startCluster(o: {
  nats: NatsConfig;
  host: string;
  vtep: string | null;
  /** `--cluster-host-timeout`: a host not heard of for this long has its entries removed. */
  hostTimeoutMs: number;
  connect: () => Promise<NatsConnection>;
  log: Logger;
}): Cluster {
  let nc: NatsConnection | null = null;
  let resolved: string | null = o.vtep;
  const port = lazyCluster(async () => {
    const vtep = await resolveVtep(o.nats, o.vtep);
    resolved = vtep;
    nc ??= await o.connect();
    const kv = await ClusterKv.open(nc, { host: o.host, vtep, replicas: resolveNats(o.nats).servers.length });
    o.log.info({ host: o.host, vtep }, 'joined the cluster (KV bucket ledgernet-cluster)');
    return kv;
  });
  let stopped = false;
  let sync: { stop(): void; rewatch(): void } | null = null;
  let beat: Heartbeat | null = null;
  let timer: NodeJS.Timeout | undefined;
  const onError = (e: unknown) => {
    beat?.dirty();
    o.log.warn({ err: e }, 'cluster: a change could not be published or recorded; published again on the next heartbeat');
  };
  const start = (store: Parameters<typeof syncCluster>[0]['store']) => {
    const attempt = async () => {
      try {
        // Known without NATS, so the VXLAN objects converge after a restart during an outage too.
        resolved ??= await resolveVtep(o.nats, o.vtep).catch(() => null);
        const kv = await port.kv();
        beat ??= startHeartbeat({ kv, self: o.host, timeoutMs: o.hostTimeoutMs, own: () => ownKeysOf(store.state), rewatch: () => sync?.rewatch(), log: o.log });
        const b = beat;
        if (stopped) b.stop();
        const s = await syncCluster({ kv, store, host: o.host, onError, onChanged: () => b.dirty(), onPublish: () => b.touched(), onSeen: (x) => b.seen(x), onWatchEnd: () => b.lostTouch() });
        if (stopped) s.stop();
        else sync = s;
      } catch (e) {
        o.log.warn({ err: e, retryInS: RETRY_MS / 1000 }, 'cluster: NATS does not answer; the last-known peers stay in place');
        if (!stopped) timer = setTimeout(() => void attempt(), RETRY_MS);
      }
    };
    void attempt();
  };
  return {
    port,
    vtep: () => resolved,
    start,
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      beat?.stop();
      sync?.stop();
      await nc?.close();
    },
  };
}
