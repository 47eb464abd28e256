// Wires the cluster's coordination for serve: this host's VTEP (given, or its source address
// towards the first NATS server) and a lazily connected KV bucket on the --nats servers.
import { randomUUID } from 'node:crypto';
import { lookup as dnsLookup } from 'node:dns/promises';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { resolveNats, type NatsConfig } from '../config.ts';
import { isDriverError } from '../errors.ts';
import { VXLAN_OVERHEAD } from '../events/domain/cluster.ts';
import { answerWithin, ClusterKv, lazyCluster, ownKeysOf, startHeartbeat, syncCluster, type ClusterHost, type ClusterPort, type ForgetOptions, type Forgetting, type ForgottenHost, type Heartbeat, type HeartbeatStats, type State } from '../events/index.ts';
import { routeSource, underlayMtu, type VxlanChange } from '../kernel/index.ts';
import { planClusterObjects } from '../reconciler/index.ts';

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

/** serve records its VTEP here once resolved, so `reconcile --dry-run` and `status` plan the VXLAN objects alone. */
const VTEP_RECORD = 'vtep';

/** This state directory's id in the cluster, made once (host records carry it: src/events/cluster/kv.ts admitInstance). */
const INSTANCE_RECORD = 'cluster-instance';

/**
 * The id of the ledgernet whose state `stateDir` holds: read, or made and kept there the first
 * time. Two machines under one --host (cloned VMs share a hostname) have two, and the second to
 * join the cluster is refused; a restart of either keeps its own.
 */
export async function instanceOf(stateDir: string): Promise<string> {
  const path = join(stateDir, INSTANCE_RECORD);
  const held = (await readFile(path, 'utf8').catch(() => '')).trim();
  if (held) return held;
  const made = randomUUID();
  await writeFile(path, `${made}\n`, { mode: 0o600 });
  return made;
}

/** The VTEP the daemon recorded in `stateDir`, or null (never resolved: no cluster network yet). */
export async function recordedVtep(stateDir: string): Promise<string | null> {
  const text = await readFile(join(stateDir, VTEP_RECORD), 'utf8').catch(() => '');
  return text.trim() || null;
}

/** The VXLAN part of `reconcile --dry-run` and `status`, planned against the VTEP serve recorded (none before it did). */
export async function clusterPlan(state: State, stateDir: string): Promise<VxlanChange[]> {
  const vtep = await recordedVtep(stateDir);
  return vtep === null ? [] : (await planClusterObjects(state, vtep, true)).changes;
}

/** `status`'s view of the cluster from the daemon: this host, and every host the bucket knows. */
export interface ClusterView {
  readonly host: string;
  readonly vtep: string | null;
  /** Null when the bucket could not be read (`error` says why). */
  readonly hosts: readonly ClusterHost[] | null;
  readonly error: string | null;
  /** What the bucket holds against this host's log, as its heartbeat last found (heartbeat stats). */
  readonly conflicts: readonly string[];
  /** Hosts an operator forgot (`ledgernet cluster forget`): refused if they come back with their old state. */
  readonly forgotten: readonly ForgottenHost[];
}

/** How long `status` waits for the bucket. */
const STATUS_TIMEOUT_MS = 2_000;

export interface Cluster {
  readonly port: ClusterPort;
  /** The hosts the bucket knows (asked now, for `status`). */
  view(): Promise<ClusterView>;
  /** The heartbeat's figures for the metrics, or null before this host joined the cluster. */
  stats(): HeartbeatStats | null;
  /** Forgets a host that is gone for good (`ledgernet cluster forget`: ClusterKv.forgetHost). */
  forget(host: string, o?: ForgetOptions): Promise<Forgetting>;
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
  stateDir: string;
  /** `--cluster-host-timeout`: a host not heard of for this long has its entries removed. */
  hostTimeoutMs: number;
  connect: () => Promise<NatsConnection>;
  /** The log's state now: a host an operator forgot is refused while it has cluster networks (ClusterKv.open). */
  state: () => State;
  log: Logger;
}): Cluster {
  let nc: NatsConnection | null = null;
  let resolved: string | null = o.vtep;
  const lazy = lazyCluster(async () => {
    const vtep = await resolveVtep(o.nats, o.vtep);
    resolved = vtep;
    await writeFile(join(o.stateDir, VTEP_RECORD), `${vtep}\n`, { mode: 0o600 });
    nc ??= await o.connect();
    const kv = await ClusterKv.open(nc, {
      host: o.host,
      vtep,
      replicas: resolveNats(o.nats).servers.length,
      members: () => ownKeysOf(o.state()).members,
      instance: await instanceOf(o.stateDir),
      timeoutMs: o.hostTimeoutMs,
      log: o.log,
    });
    o.log.info({ host: o.host, vtep }, 'joined the cluster (KV bucket ledgernet-cluster)');
    return kv;
  }, {
    abandoned: (name) => {
      o.log.warn({ network: name }, `cluster network ${name} was joined after its RequestPool had been refused for waiting too long: the heartbeat removes this host's member key`);
      beat?.dirty();
    },
  });
  const port: ClusterPort & { kv(): Promise<ClusterKv> } = {
    ...lazy,
    settle: (name, recorded) => {
      lazy.settle?.(name, recorded);
      // Refused after joining: the next heartbeat removes the member key no pool holds.
      if (!recorded) beat?.dirty();
    },
    vxlanMtu: async () => {
      const mtu = await underlayMtu(resolved ?? (await resolveVtep(o.nats, o.vtep)));
      return mtu === null ? null : mtu - VXLAN_OVERHEAD;
    },
  };
  const view = async (): Promise<ClusterView> => {
    try {
      const late = () => new Error(`no answer from the KV bucket within ${STATUS_TIMEOUT_MS / 1000} s`);
      const [hosts, forgotten] = await answerWithin(port.kv().then((kv) => Promise.all([kv.hosts(), kv.forgotten()])), STATUS_TIMEOUT_MS, late);
      return { host: o.host, vtep: resolved, hosts, error: null, conflicts: beat?.stats().conflicts ?? [], forgotten };
    } catch (e) {
      return { host: o.host, vtep: resolved, hosts: null, error: e instanceof Error ? e.message : String(e), conflicts: beat?.stats().conflicts ?? [], forgotten: [] };
    }
  };
  let stopped = false;
  let sync: { stop(): void; rewatch(): void } | null = null;
  let beat: Heartbeat | null = null;
  let timer: NodeJS.Timeout | undefined;
  const onError = (e: unknown) => {
    beat?.dirty();
    o.log.warn({ err: e }, 'cluster: a change could not be published or recorded; published again on the next heartbeat');
  };
  const start = (store: Parameters<typeof syncCluster>[0]['store']) => {
    let refused = false;
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
        if (isDriverError(e) && (e.code === 'LN_ERR_CLUSTER_FORGOTTEN' || e.code === 'LN_ERR_CLUSTER_HOST_TAKEN')) {
          // Said once: it stays so until the operator acts (asked again every few seconds).
          if (!refused) o.log.error({ host: o.host }, e.message);
          refused = true;
        } else o.log.warn({ err: e, retryInS: RETRY_MS / 1000 }, 'cluster: NATS does not answer; the last-known peers stay in place');
        if (!stopped) timer = setTimeout(() => void attempt(), RETRY_MS);
      }
    };
    void attempt();
  };
  return {
    port,
    view,
    forget: async (host, f) => (await port.kv()).forgetHost(host, f),
    stats: () => beat?.stats() ?? null,
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
