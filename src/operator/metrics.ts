// Prometheus metrics (prom-client), served on --metrics HOST:PORT, off by default. Every name
// starts with `ledgernet_`. The layers do not import this: main.ts passes the hooks in.
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { DriverError } from '../errors.ts';
import type { HeartbeatStats } from '../events/index.ts';
import type { PassResult } from '../reconciler/loop.ts';
import { driftRepaired } from '../reconciler/drift.ts';

/**
 * How often the event loop's delay is sampled for the `ledgernet_nodejs_eventloop_lag_*` gauges
 * (perf_hooks.monitorEventLoopDelay: a timer of this period whose lateness is recorded). At
 * prom-client's default of 10 ms that timer woke the idle daemon 100 times a second and doubled
 * its idle CPU (~4 ms per second more, measured with schedstat); at 100 ms it adds ~1, and a
 * stall of 100 ms or more is still always seen (shorter ones in proportion to their length).
 */
export const EVENT_LOOP_SAMPLE_MS = 100;

export class Metrics {
  readonly registry = new Registry();
  private readonly requestDuration = new Histogram({
    name: 'ledgernet_request_duration_seconds',
    help: 'Duration of plugin calls from Docker, by method and outcome',
    labelNames: ['method', 'outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });
  private readonly passDuration = new Histogram({
    name: 'ledgernet_reconcile_pass_duration_seconds',
    help: 'Duration of reconcile passes (observe, plan, apply)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });
  private readonly passReads = new Counter({
    name: 'ledgernet_reconcile_passes_total',
    help: 'Reconcile passes by what they planned against: read (the whole kernel read), model (the cached kernel model) or scoped (the model, only the networks changed since the last pass)',
    labelNames: ['against'] as const,
    registers: [this.registry],
  });
  private readonly kernelNotices = new Counter({
    name: 'ledgernet_kernel_notices_total',
    help: 'ip monitor notices about links ledgernet watches, by kind and verdict (drift: the model is dropped and a repair pass runs; echo: of its own apply; unwanted: a link no longer wanted)',
    labelNames: ['kind', 'verdict'] as const,
    registers: [this.registry],
  });
  private readonly actionsApplied = new Counter({
    name: 'ledgernet_reconcile_actions_applied_total',
    help: 'Kernel actions applied by the reconciler, by kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  private readonly actionsFailed = new Counter({
    name: 'ledgernet_reconcile_actions_failed_total',
    help: 'Kernel actions that failed, by kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  private readonly driftRepaired = new Counter({
    name: 'ledgernet_drift_repaired_total',
    help: 'Actions that set right ledgernet objects changed or removed by someone else (not Docker removing its containers or networks, nor Docker rules inserted above a hook), by kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  private readonly endpointsLost = new Counter({
    name: 'ledgernet_endpoints_lost_total',
    help: 'Joined endpoints whose veth vanished',
    registers: [this.registry],
  });
  private readonly fsyncSeconds = new Histogram({
    name: 'ledgernet_log_fsync_duration_seconds',
    help: 'latency of event log group commits (one O_DSYNC write: on disk when it returns)',
    buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
    registers: [this.registry],
  });
  private readonly eventsPerCommit = new Histogram({
    name: 'ledgernet_log_group_commit_events',
    help: 'Events written per group commit (one fsync)',
    buckets: [1, 2, 4, 8, 16, 32, 64],
    registers: [this.registry],
  });
  readonly logBytes = new Gauge({ name: 'ledgernet_log_size_bytes', help: 'Size of the event log', registers: [this.registry] });
  readonly logSeq = new Gauge({ name: 'ledgernet_log_last_seq', help: 'Seq of the last durable event', registers: [this.registry] });
  private readonly natsBacklog = new Gauge({
    name: 'ledgernet_nats_backlog_events',
    help: 'Events in the log not yet acknowledged by NATS JetStream (0 when the publisher is off)',
    registers: [this.registry],
  });

  private readonly natsStopped = new Gauge({
    name: 'ledgernet_nats_publishing_stopped',
    help: '1 while publishing is stopped because the stream holds other events under this host (reason stream_conflict: another event at a seq; stream_ahead: more events than the log); 0 otherwise',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  private readonly natsRefusing = new Gauge({
    name: 'ledgernet_nats_stream_refusing',
    help: '1 while NATS is reachable but the stream does not take events (full with discard new, no stream on the subjects, not ledgernet\'s stream); 0 otherwise',
    registers: [this.registry],
  });

  private readonly natsRefusals = new Counter({
    name: 'ledgernet_nats_publish_refused_total',
    help: 'Publishes the audit stream refused (the daemon retries them)',
    registers: [this.registry],
  });
  private refusalsSeen = 0;

  private readonly natsElided = new Counter({
    name: 'ledgernet_nats_events_elided_total',
    help: "Events published without their data because their message would not fit the audit stream's message limit (NATS max_payload, the stream's max_msg_size); their content is in the log",
    registers: [this.registry],
  });
  private elidedSeen = 0;

  readonly forwardingOff = new Gauge({
    name: 'ledgernet_ipv4_forwarding_off_links',
    help: "Links whose IPv4 forwarding is off though ledgernet's networks need it (their bridges, a default route's device), as the last full read of the kernel found; 0 when none",
    registers: [this.registry],
  });
  readonly iccUnenforced = new Gauge({
    name: 'ledgernet_icc_unenforced_networks',
    help: 'icc=false networks whose containers reach each other because the kernel does not filter traffic inside their bridges (br_netfilter not loaded, or net.bridge.bridge-nf-call-iptables / -ip6tables = 0), as the last full read of the kernel found; 0 when none',
    registers: [this.registry],
  });
  readonly ipv6ForwardingOff = new Gauge({
    name: 'ledgernet_ipv6_forwarding_off',
    help: "1 while IPv6 forwarding is off (net.ipv6.conf.all.forwarding = 0) though ledgernet's networks with IPv6 need it, as the last full read of the kernel found; 0 otherwise",
    registers: [this.registry],
  });
  private readonly clusterInTouch = new Gauge({
    name: 'ledgernet_cluster_in_touch',
    help: "1 while this host's own cluster heartbeats come back through its watch of the KV bucket (only then does it judge other hosts); 0 otherwise or without the cluster",
    registers: [this.registry],
  });
  private readonly clusterHostsHeard = new Gauge({
    name: 'ledgernet_cluster_hosts_heard',
    help: 'Other cluster hosts that wrote their heartbeat within --cluster-host-timeout, as this host saw it',
    registers: [this.registry],
  });
  private readonly clusterConflicts = new Gauge({
    name: 'ledgernet_cluster_conflicts',
    help: "What the cluster's KV bucket holds against this host's log (another subnet or VNI for a network, a block of this host owned by another), as its heartbeat last found",
    registers: [this.registry],
  });
  private readonly clusterCounters = {
    failures: new Counter({ name: 'ledgernet_cluster_heartbeat_failures_total', help: 'Cluster heartbeats that failed (NATS unreachable, the KV bucket refused)', registers: [this.registry] }),
    expired: new Counter({ name: 'ledgernet_cluster_hosts_expired_total', help: 'Cluster hosts this host expired (no heartbeat for the timeout: their entries removed)', registers: [this.registry] }),
    retired: new Counter({ name: 'ledgernet_cluster_networks_retired_total', help: 'Cluster networks this host removed from the KV bucket as the last host to have them', registers: [this.registry] }),
    repaired: new Counter({
      name: 'ledgernet_cluster_keys_repaired_total',
      help: "Times this host found keys of its log missing from the cluster's KV bucket or holding other values there (changed or deleted by hand, lost by a store) and published them again",
      registers: [this.registry],
    }),
  };
  private clusterSeen = { failures: 0, expired: 0, retired: 0, repaired: 0 };

  /** Reads the cluster's heartbeat at scrape time (set when serve runs with --nats); null before it joined. */
  clusterSource: (() => HeartbeatStats | null) | null = null;

  /** Sets the cluster gauges and moves its counters on from clusterSource (gauges zero without it). */
  refreshCluster(): void {
    const c = this.clusterSource?.() ?? null;
    this.clusterInTouch.set(c?.inTouch ? 1 : 0);
    this.clusterHostsHeard.set(c?.hostsHeard ?? 0);
    this.clusterConflicts.set(c?.conflicts.length ?? 0);
    if (!c) return;
    for (const k of ['failures', 'expired', 'retired', 'repaired'] as const) {
      if (c[k] > this.clusterSeen[k]) this.clusterCounters[k].inc(c[k] - this.clusterSeen[k]);
    }
    this.clusterSeen = { failures: c.failures, expired: c.expired, retired: c.retired, repaired: c.repaired };
  }

  /** Reads the NATS outbox at scrape time (set when the publisher runs). */
  auditSource:
    | (() => { readonly backlog: number; readonly conflict: { readonly reason: string } | null; readonly state: string; readonly refusals: number; readonly elided: number })
    | null = null;

  /** Sets the NATS gauges from auditSource (zero when the publisher is off). */
  refreshAudit(): void {
    const a = this.auditSource?.() ?? null;
    this.natsBacklog.set(a?.backlog ?? 0);
    this.natsStopped.reset();
    if (a?.conflict) this.natsStopped.set({ reason: a.conflict.reason }, 1);
    else this.natsStopped.set(0);
    this.natsRefusing.set(a?.state === 'refused' ? 1 : 0);
    if (a && a.refusals > this.refusalsSeen) this.natsRefusals.inc(a.refusals - this.refusalsSeen);
    this.refusalsSeen = a?.refusals ?? this.refusalsSeen;
    if (a && a.elided > this.elidedSeen) this.natsElided.inc(a.elided - this.elidedSeen);
    this.elidedSeen = a?.elided ?? this.elidedSeen;
  }

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'ledgernet_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }

  onCall = (method: string, ms: number, ok: boolean): void => {
    this.requestDuration.observe({ method, outcome: ok ? 'ok' : 'error' }, ms / 1000);
  };

  onFlush = (info: { events: number; bytes: number; fsyncMs: number }): void => {
    this.fsyncSeconds.observe(info.fsyncMs / 1000);
    this.eventsPerCommit.observe(info.events);
  };

  onNotice = (kind: string, verdict: string): void => {
    this.kernelNotices.inc({ kind, verdict });
  };

  onPass = (r: PassResult): void => {
    this.passDuration.observe(r.durationMs / 1000);
    if (r.fullReads === 0) this.passReads.inc({ against: r.scoped ? 'scoped' : 'model' });
    else this.passReads.inc({ against: 'read' }, r.fullReads ?? 1);
    for (const a of r.applied) this.actionsApplied.inc({ kind: a.kind });
    for (const a of r.repaired ?? driftRepaired(r)) this.driftRepaired.inc({ kind: a.kind });
    for (const f of r.failures) this.actionsFailed.inc({ kind: f.action.kind });
    if (r.lost.length > 0) this.endpointsLost.inc(r.lost.length);
  };
}

/** Parses `HOST:PORT` (`[::1]:9654` for IPv6). */
function parseListen(spec: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(spec);
  const port = Number(m?.[3]);
  if (!m || port > 65535) throw new DriverError('LN_ERR_CONFIG', `--metrics must be HOST:PORT such as 127.0.0.1:9654, got ${spec}`);
  return { host: m[1] ?? m[2] ?? '127.0.0.1', port };
}

export async function serveMetrics(metrics: Metrics, spec: string, refresh: () => void): Promise<Server> {
  const { host, port } = parseListen(spec);
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('try /metrics\n');
      return;
    }
    refresh();
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (e: unknown) => res.writeHead(500).end(String(e)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
