// Wires the cluster's coordination for serve: this host's VTEP (given, or its source address
// towards the first NATS server) and a lazily connected KV bucket on the --nats servers.
import { lookup as dnsLookup } from 'node:dns/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { resolveNats, type NatsConfig } from '../config.ts';
import { ClusterKv, lazyCluster, type ClusterPort } from '../events/index.ts';
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
  stop(): Promise<void>;
}

/** The cluster port of serve; nothing connects until a cluster network is created or used. */
export function startCluster(o: { nats: NatsConfig; host: string; vtep: string | null; connect: () => Promise<NatsConnection>; log: Logger }): Cluster {
  let nc: NatsConnection | null = null;
  const port = lazyCluster(async () => {
    const vtep = await resolveVtep(o.nats, o.vtep);
    nc ??= await o.connect();
    const kv = await ClusterKv.open(nc, { host: o.host, vtep, replicas: resolveNats(o.nats).servers.length });
    o.log.info({ host: o.host, vtep }, 'joined the cluster (KV bucket ledgernet-cluster)');
    return kv;
  });
  return {
    port,
    stop: async () => {
      await nc?.close();
    },
  };
}
