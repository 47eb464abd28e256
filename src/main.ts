// Composition root of `ledgernet serve`: the only place that creates the logger, the fastify
// servers and the real kernel, and wires the layers together.
import { chown, readFile, unlink } from 'node:fs/promises';
import type { NatsConnection, NodeConnectionOptions } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import { DriverError } from './errors.ts';
import type { FastifyInstance } from 'fastify';
import { createPlugin, type Plugin } from './api/index.ts';
import { serveFrames } from './supervisor/worker-link.ts';
import { controlSocket, credsProblem, DEFAULTS, describeNats, natsConnectError, parseHostTimeout, resolveNats, type NatsConfig, type ServeConfig } from './config.ts';
import { startAutoArchive } from './operator/log-archive.ts';
import { acquireHostGuard, acquireLock, isDerivedHostLinkName, isVethName, VETH_PREFIX, openStore, Outbox, type EventStore, type State, type StoredEvent } from './events/index.ts';
import { createKernel, createProxyHost, createReserveHost, driftNotice, enableBridgeNf, proxyName, readHostListeners, reservationName, readSandboxIface, watchLinks, watchNfTables } from './kernel/index.ts';
import type { HostView } from './api/ipam.ts';
import type { FirewallBackend, Kernel, ProxyPort, ReserveHost, ReservePort } from './kernel/index.ts';
import { OutcomeRecorder, Reconciler, bridgeFilteringNeeded, describeFailure, desiredFromState, desiredReservations, isOwnedLink, markLost, planReservations } from './reconciler/index.ts';
import type { Metrics } from './operator/metrics.ts';
import { controlPeerCheck, listenLazily, listenPrivately, peerReader, prepareSocketPath } from './operator/socket.ts';
import { recordDirectRouting, recordFirewall, resolveFirewall, switchableFirewall } from './operator/firewall-choice.ts';
import { recordSwitch } from './operator/switches.ts';
import { followDockerFirewall, startDockerSync } from './operator/docker-background.ts';
import { DockerApi, type DockerNetwork } from './operator/docker-api.ts';
import { DockerLink } from './operator/docker-name.ts';
import { startLeftSweeper } from './operator/left-endpoints.ts';
import { startCluster, type Cluster } from './operator/cluster.ts';
import type { ClusterPort } from './events/index.ts';
import { pluginSocketFrom, previousWorker } from './supervisor/worker-link.ts';

/**
 * Connects to NATS (the only place that does). `persistent`: once connected, reconnect forever
 * (the daemon); otherwise a reader that fails fast (the audit CLI). `nameServers`: a failure
 * names the servers it tried (the audit CLI, whose error is all the user sees).
 */
export async function connectNats(cfg: NatsConfig, o: { name: string; persistent: boolean; nameServers?: boolean }): Promise<NatsConnection> {
  // Credentials go to the client as options, never inside the server URLs it may print.
  const { servers, auth } = resolveNats(cfg);
  // NATS, like the metrics, is loaded only when configured: a daemon without it keeps less memory.
  const { connect, credsAuthenticator } = await import('@nats-io/transport-node');
  const opts: NodeConnectionOptions = {
    servers: servers.map((s) => s.server),
    name: o.name,
    timeout: 5_000,
    reconnect: o.persistent,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1_000,
  };
  if (auth.kind === 'token') opts.token = auth.token;
  if (auth.kind === 'user') Object.assign(opts, { user: auth.user, pass: auth.pass });
  if (auth.kind === 'creds') opts.authenticator = credsAuthenticator(await readCreds(auth.file));
  if (cfg.tlsCa || cfg.tlsCert || cfg.tlsKey) {
    opts.tls = {
      ...(cfg.tlsCa ? { caFile: cfg.tlsCa } : {}),
      ...(cfg.tlsCert ? { certFile: cfg.tlsCert } : {}),
      ...(cfg.tlsKey ? { keyFile: cfg.tlsKey } : {}),
    };
  }
  return connect(opts).catch((e: unknown) => {
    throw natsConnectError(e, cfg, o.nameServers ?? false);
  });
}

/** The creds file's bytes, or an error naming the file and what is wrong with it. */
async function readCreds(file: string): Promise<Uint8Array> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EISDIR' ? 'is a directory, not a file' : code === 'EACCES' ? 'cannot be read (permission denied)' : `cannot be read (${(e as Error).message})`;
    throw new DriverError('LN_ERR_BAD_REQUEST', `the NATS creds file ${file} (--nats-creds, LEDGERNET_NATS_CREDS) ${why}`);
  }
  const problem = credsProblem(bytes.toString('utf8'), file);
  if (problem) throw new DriverError('LN_ERR_BAD_REQUEST', problem);
  return bytes;
}

// The audit publisher runs in the background: nothing here waits for NATS. `replayed` holds the
// events read at start (those after the snapshot); older ones are read from the log on demand.
async function startPublisher(
  cfg: ServeConfig,
  store: EventStore,
  replayed: readonly StoredEvent[],
  log: Logger,
  metrics: Metrics | null,
): Promise<Outbox | null> {
  const nats = cfg.nats;
  if (!nats) return null;
  const plog = log.child({ component: 'publisher' });
  const { NatsPublisher } = await import('./events/audit/publisher-nats.ts');
  const publisher = new NatsPublisher({
    connect: () => connectNats(nats, { name: `ledgernet ${cfg.host}`, persistent: true }),
    stream: nats.stream,
    describe: describeNats(nats),
  });
  const outbox = await Outbox.create({ publisher, host: cfg.host, stateDir: cfg.stateDir, log: plog, initial: replayed, headSeq: store.lastSeq, headHash: store.state.hash });
  store.onEvents((stored) => outbox.notify(stored));
  outbox.start();
  plog.info({ nats: describeNats(nats), stream: nats.stream }, 'publishing the event log to NATS JetStream');
  if (metrics) metrics.auditSource = () => outbox.stats();
  return outbox;
}

/** A snapshot every this many events bounds replay time at start. */
const SNAPSHOT_EVERY = 1000;

export interface Daemon {
  stop(): Promise<void>;
}

type Cleanup = () => Promise<void>;

/** Opens the event log (replaying it) and says what it found. */
async function openState(cfg: ServeConfig, log: Logger, metrics: Metrics | null) {
  const opened = await openStore(
    cfg.stateDir,
    { host: cfg.host, ...(metrics ? { onFlush: metrics.onFlush } : {}) },
    { snapshotEvery: SNAPSHOT_EVERY, onSnapshotError: (e) => log.error({ err: e }, 'could not write a snapshot') },
    // The replayed events are only the audit outbox's (startPublisher).
    cfg.nats ? undefined : 1,
  );
  const { state, replayed, fromSnapshotSeq, repaired, warnings } = opened;
  if (repaired) log.warn(repaired, 'event log had a torn tail (crash mid-write); cut back to the last good record, the cut bytes kept in keptAs');
  for (const w of warnings) log.warn(`event log: ${w}`);
  log.info(
    { fromSnapshotSeq, replayed, seq: state.seq, networks: Object.keys(state.networks).length, endpoints: Object.keys(state.endpoints).length },
    'replayed event log',
  );
  return opened;
}

/** The reconciler of the daemon: lost endpoints and pass outcomes are recorded in the log. */
function buildReconciler(cfg: ServeConfig, store: EventStore, kernel: Kernel, firewall: FirewallBackend, log: Logger, metrics: Metrics | null, cluster: Cluster | null, hosts: Pick<Parts, 'proxies' | 'reservations'>): Reconciler {
  const outcomes = new OutcomeRecorder(store);
  return new Reconciler({
    kernel,
    ...hosts,
    ...(cluster ? { vtep: () => cluster.vtep() } : {}),
    // Decided intents, durable or not yet: Docker's calls start the kernel work during the fsync.
    getState: () => store.latest,
    firewall,
    log: log.child({ component: 'reconciler' }),
    intervalMs: cfg.reconcileIntervalS * 1000,
    onLost: markLost(store),
    onForwarding: (f) => {
      metrics?.forwardingOff.set(f?.devices.length ?? 0);
      metrics?.ipv6ForwardingOff.set(f?.ipv6Off === true ? 1 : 0);
    },
    onIcc: (p) => metrics?.iccUnenforced.set(p?.networks.length ?? 0),
    ipv6Forwarding: cfg.ipv6Forwarding === true,
    onPass: (r) => {
      metrics?.onPass(r);
      outcomes.record(r)?.catch((e: unknown) => log.error({ err: e }, 'could not record the reconcile outcome'));
    },
  });
}

/** One client of Docker's API for the daemon, and the driver's name there (docker-name.ts); null with --docker-socket ''. */
function dockerParts(cfg: ServeConfig, log: Logger): Parts['docker'] {
  if (!cfg.dockerSocket) return null;
  const api = new DockerApi(cfg.dockerSocket);
  return { api, link: new DockerLink({ api, socket: cfg.socket, driverName: cfg.driverName, log: log.child({ component: 'docker' }) }) };
}

/** Docker's networks and version, as the api reads them to take a network whose CreateNetwork was cut off. */
function networksOf(api: DockerApi): { list(): Promise<readonly DockerNetwork[]>; version(): Promise<string> } {
  return { list: () => api.listNetworks(), version: () => api.version() };
}

/** The container of an endpoint, as Docker's inspect of its network lists it (`ep-…` keys hold no container). */
function endpointContainerOf(api: DockerApi): (networkId: string, endpointId: string) => Promise<string | null> {
  return async (networkId, endpointId) => {
    const n = await api.inspectNetwork<{ Containers?: Record<string, { EndpointID?: string }> | null }>(networkId);
    return Object.entries(n.Containers ?? {}).find(([key, c]) => c.EndpointID === endpointId && !key.startsWith('ep-'))?.[0] ?? null;
  };
}

/** Serves `app` on a fresh socket at `path`; the cleanup closes it and removes the socket. */
async function listenOn(app: FastifyInstance, path: string, mode: Parameters<typeof listenPrivately>[2]): Promise<Cleanup> {
  await prepareSocketPath(path);
  await listenPrivately(app, path, mode);
  return async () => {
    await app.close();
    await unlink(path).catch(() => undefined);
  };
}

/** The plugin over HTTP (--in-process only: under the supervisor the worker never loads fastify). */
async function pluginHttpOf(plugin: Plugin): Promise<FastifyInstance> {
  return (await import('./api/plugin-http.ts')).pluginHttp(plugin);
}

interface Parts {
  readonly store: EventStore;
  readonly kernel: Kernel;
  readonly reconciler: Reconciler;
  readonly outbox: Outbox | null;
  readonly metrics: Metrics | null;
  readonly cluster?: ClusterPort | undefined;
  readonly clusterView?: (() => Promise<unknown>) | undefined;
  readonly forgetHost?: Cluster['forget'] | undefined;
  readonly proxies: ProxyPort;
  readonly reservations: ReservePort;
  /** Docker's API (one client for the daemon), and the driver's name there; null with --docker-socket ''. */
  readonly docker: { readonly api: DockerApi; readonly link: DockerLink } | null;
  /** When this daemon (the worker, under the supervisor) started: `status` shows it. */
  readonly startedAt: string;
}

/** The plugin socket Docker calls, then the control socket of the CLI; each cleanup goes to `add` once it listens. */
async function listen(cfg: ServeConfig, p: Parts, log: Logger, add: (c: Cleanup) => void): Promise<void> {
  const plugin = createPlugin({
    store: p.store,
    reconciler: p.reconciler,
    log,
    applyTimeoutMs: cfg.applyTimeoutMs,
    ...(p.metrics ? { onCall: p.metrics.onCall } : {}),
    host: hostView(p, log, cfg.ipv6Forwarding === true),
    defaultPools: cfg.defaultPools,
    cluster: p.cluster,
    ...(p.docker ? { docker: { networks: networksOf(p.docker.api), driverName: p.docker.link.driverName, endpointContainer: endpointContainerOf(p.docker.api) } } : {}),
  });
  // Under the supervisor (src/supervisor/) the worker serves the supervisor's framed link on a
  // private socket in the state dir; Docker's socket (cfg.socket) belongs to the supervisor.
  if (cfg.listenSocket) {
    const path = cfg.listenSocket;
    await prepareSocketPath(path);
    const stop = await serveFrames(path, plugin.call);
    add(async () => {
      await stop();
      await unlink(path).catch(() => undefined);
    });
  } else {
    add(await listenOn(await pluginHttpOf(plugin), cfg.socket, 0o660));
  }
  const ctlPath = controlSocket(cfg.stateDir);
  const peer = peerReader(); // one SO_PEERCRED read per connection, for the check and the record
  // Known now, not when the app is built (the first operator command's time is no start time).
  const info = { pid: process.pid, ...(cfg.listenSocket ? { supervisorPid: process.ppid } : {}), previousWorker: cfg.listenSocket ? previousWorker() : null, host: cfg.host, socket: cfg.socket, socketFrom: pluginSocketFrom(), stateDir: cfg.stateDir, startedAt: p.startedAt };
  // Built, and fastify loaded, at the first operator command (memory: bench row 9).
  const control = async () => (await import('./operator/control.ts')).createControlApp({
    store: p.store,
    reconciler: p.reconciler,
    info,
    audit: () => p.outbox?.stats() ?? null,
    ...(p.clusterView ? { cluster: p.clusterView } : {}),
    ...(p.forgetHost ? { forgetHost: p.forgetHost } : {}),
    proxies: () => p.proxies.list(),
    reservations: () => p.reservations.list(),
    docker: () => p.docker?.link.status() ?? Promise.resolve(null),
    authorize: controlPeerCheck(ctlPath, peer),
    peer,
  });
  const group = cfg.controlGroup;
  add(await listenLazily(ctlPath, group === undefined ? 0o600 : 0o660, control, (e: unknown) => log.error({ err: e }, 'the control socket could not serve: its app failed to load')));
  // Bound in this process's group; the state dir lets only `group` pass, so nobody else is let in before the chown.
  if (group !== undefined) await chown(ctlPath, process.geteuid?.() ?? 0, group);
}

async function startMetrics(cfg: ServeConfig, store: EventStore, metrics: Metrics | null, log: Logger): Promise<Cleanup | null> {
  if (!metrics || !cfg.metrics) return null;
  const { serveMetrics } = await import('./operator/metrics.ts');
  const server = await serveMetrics(metrics, cfg.metrics, () => {
    metrics.logBytes.set(store.logBytes);
    metrics.logSeq.set(store.lastSeq);
    metrics.refreshAudit();
    metrics.refreshCluster();
  });
  log.info({ metrics: `http://${cfg.metrics}/metrics` }, 'serving metrics');
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
}

/**
 * A link or address changed (ours or anyone's): look again now rather than at the next tick.
 * --reconcile-interval 0 turns background repair off altogether: passes run only for intents.
 */
function watchKernel(cfg: ServeConfig, reconciler: Reconciler, log: Logger, metrics: Metrics | null): Cleanup | null {
  if (cfg.reconcileIntervalS <= 0) return null;
  const watch = watchLinks(
    () => void reconciler.requestPass('kernel').catch((e: unknown) => log.error({ err: e }, 'reconcile after a kernel change failed')),
    {
      onError: (e) => log.warn({ err: e }, 'kernel change monitor'),
      // Only drift of our links matters: not Docker's churn, and not the echo of our own apply.
      relevant: (line) => {
        const watched = (name: string) => isDerivedHostLinkName(name) || reconciler.isBridge(name);
        const n = driftNotice(line, { watched, bridged: isVethName });
        if (!n) return false;
        // Docker's calls plan against the kernel model: drift makes it untrusted at once, not
        // only when the debounced pass starts; echoes and changes to unwanted links keep it.
        const verdict = reconciler.noticed(n.name, n.kind);
        metrics?.onNotice(n.kind, verdict);
        return verdict === 'drift';
      },
    },
  );
  return async () => watch.stop();
}

export async function serve(cfg: ServeConfig, log: Logger): Promise<Daemon> {
  const startedAt = new Date().toISOString();
  const group = cfg.controlGroup;
  const release = await acquireLock(
    cfg.stateDir,
    { socket: cfg.socket },
    (from, path) =>
      path === cfg.stateDir
        ? log.warn({ stateDir: cfg.stateDir, mode: from.toString(8) }, `the state directory was open to group or others: tightened to ${group === undefined ? '0700' : '0710'}`)
        : log.warn({ path, mode: from.toString(8), controlGroup: group }, 'the control group could have opened this in the state directory: made owner-only'),
    group,
  );
  const cleanups: Cleanup[] = [release];
  const stopAll = async () => {
    for (const c of cleanups.reverse()) await c().catch((e: unknown) => log.error({ err: e }, 'shutdown step failed'));
  };
  const add = (c: Cleanup | null) => {
    if (c) cleanups.push(c);
  };
  try {
    // One instance per host, whatever its socket or state dir: two remove each other's networks.
    // Under the supervisor, the instance an operator would stop is the supervisor: name its pid.
    add(await acquireHostGuard({ stateDir: cfg.stateDir, socket: cfg.socket, pid: cfg.listenSocket ? process.ppid : process.pid }));
    const metrics = cfg.metrics ? new (await import('./operator/metrics.ts')).Metrics() : null;
    const { store, events } = await openState(cfg, log, metrics);
    add(() => store.close());
    if (cfg.archiveLogBytes) add(startAutoArchive(store, cfg.archiveLogBytes, log));
    const outbox = await startPublisher(cfg, store, events, log, metrics);
    add(outbox && (() => outbox.stop()));
    const onNftRoute = (r: { via: string; why: string }) => log.info({ nft: r.via, why: r.why }, `nftables commands run through ${r.via === 'libnftables' ? 'libnftables, in-process' : 'the nft process'}`);
    // Which nf_tables tables each commit changed: a full pass reads again only those parts of the firewall.
    const nfChanges = watchNfTables();
    add(async () => nfChanges.close());
    const kernel = createKernel({ filterPrefixes: [VETH_PREFIX], onNftRoute, nfChanges });
    const chosen = await resolveFirewall(cfg.firewall ?? 'auto', cfg.dockerSocket, cfg.stateDir, { atStart: true });
    await recordFirewall(cfg.stateDir, chosen.backend);
    log.info({ firewall: chosen.backend.name, why: chosen.why }, `firewall backend: ${chosen.backend.name}`);
    await recordDirectRouting(cfg.stateDir, cfg.allowDirectRouting === true);
    await recordSwitch(cfg.stateDir, 'ipv6Forwarding', cfg.ipv6Forwarding === true);
    const firewall = switchableFirewall(chosen.backend, cfg.allowDirectRouting === true);
    const cluster = clusterOf(cfg, log, () => store.state);
    add(cluster && (() => cluster.stop()));
    if (cluster && metrics) metrics.clusterSource = () => cluster.stats();
    // The userland proxy for ports on ::1: its listeners die with the process and the first pass opens them again.
    const proxies = createProxyHost(log.child({ component: 'proxy' }));
    add(() => proxies.closeAll());
    // The published host ports: their sockets die with the process too; held again at once, before Docker can call.
    const reservations = createReserveHost(log.child({ component: 'reservations' }));
    add(() => reservations.releaseAll());
    await holdPublishedPorts(store.state, reservations, log);
    const reconciler = buildReconciler(cfg, store, kernel, firewall, log, metrics, cluster, { proxies, reservations });
    if (chosen.unsure) add(followDockerFirewall(cfg, firewall, reconciler, log));
    add(() => reconciler.stop());
    // A remote endpoint or member came or went: its FDB and neighbour entries converge now.
    if (cluster) store.onEvents((evs) => void (evs.some((e) => e.type.startsWith('peer.')) && reconciler.requestPass('cluster').catch((e: unknown) => log.warn({ err: e }, 'cluster pass failed'))));
    const docker = dockerParts(cfg, log);
    if (docker) {
      add(async () => docker.link.stop());
      await docker.link.start();
    }
    await listen(cfg, { store, kernel, reconciler, outbox, metrics, cluster: cluster?.port, clusterView: cluster?.view, forgetHost: cluster?.forget, proxies, reservations, docker, startedAt }, log, add);
    add(await startMetrics(cfg, store, metrics, log));
    cluster?.start(store);
    const closed = bridgeFilteringNeeded(store.state);
    if (closed.length > 0) {
      await filterBridges(closed, 'the icc=false networks', log).catch((e: unknown) =>
        log.error({ err: e }, `icc=false networks are not enforced: ${(e as Error).message}`),
      );
    }
    // Crash recovery and garbage collection: converge what the log says with what the kernel holds.
    reconciler.start();
    add(watchKernel(cfg, reconciler, log, metrics));
    await reconciler.requestPass('startup');
    if (docker) add(startDockerSync(cfg, store, reconciler, docker, log));
    add(startLeftSweeper({ store, converge: (t) => void reconciler.requestPass(t).catch((e: unknown) => log.warn({ err: e, trigger: t }, 'background reconcile pass failed')), log }));
    log.info({ socket: cfg.socket, stateDir: cfg.stateDir, intervalS: cfg.reconcileIntervalS, ...(group === undefined ? {} : { controlGroup: group }) }, 'ledgernet is serving');
  } catch (e) {
    await stopAll();
    throw e;
  }
  return { stop: stopAll };
}

/** Cluster networks need NATS: the cluster port connects on first use (src/operator/cluster.ts). */
function clusterOf(cfg: ServeConfig, log: Logger, state: () => State): Cluster | null {
  const nats = cfg.nats;
  if (!nats) return null;
  const connect = () => connectNats(nats, { name: `ledgernet ${cfg.host} cluster`, persistent: true });
  const hostTimeoutMs = cfg.clusterHostTimeoutMs ?? parseHostTimeout(DEFAULTS.clusterHostTimeout);
  return startCluster({ nats, host: cfg.host, vtep: cfg.vtep, stateDir: cfg.stateDir, hostTimeoutMs, connect, state, log: log.child({ component: 'cluster' }) });
}

/**
 * The host ports the replayed log publishes, held before the first pass (which reads the whole
 * kernel first): a port taken since (a program bound it while no daemon ran) is logged here, and
 * the passes report it until it is free again (status, reconcile --dry-run).
 */
async function holdPublishedPorts(state: State, reservations: ReserveHost, log: Logger): Promise<void> {
  const changes = planReservations(desiredReservations(desiredFromState(state).firewall.networks), reservations.list());
  if (changes.length === 0) return;
  const { failures } = await reservations.apply(changes);
  const failed = failures.flatMap((f) => {
    const action = changes[f.index];
    return action ? [describeFailure({ action, message: f.message })] : [];
  });
  if (failed.length > 0) log.warn({ failures: failed }, `${failed.length} of ${changes.length} published host port(s) could not be held: another program may take their traffic`);
  else log.info({ ports: changes.length }, 'published host ports held');
}

/** The host as the api sees it: read through the kernel, so the api never imports it. */
function hostView({ kernel, proxies, reservations }: Pick<Parts, 'kernel' | 'proxies' | 'reservations'>, log: Logger, ipv6Forwarding: boolean): HostView {
  // Said once a process: every later call falls back the same way, at the same cost.
  let warned = false;
  const onFallback = (why: string) => {
    if (warned) return;
    warned = true;
    log.warn({ why }, "the host's listeners are read from /proc/net, whose cost grows with every socket of the host: sock_diag failed");
  };
  return {
    async listeners() {
      // The userland proxy's own listeners (::1) and the sockets holding published ports serve or
      // hold ports ledgernet already publishes: not a program's. Both as they were when the
      // reading began and as they are after it: a socket it saw may have been closed meanwhile
      // (a pass releasing the port of a revoked endpoint), or opened.
      const proxied = new Set(proxies.list().map((l) => proxyName(l)));
      const reserved = reservations.names();
      const sockets = await readHostListeners(onFallback);
      for (const l of proxies.list()) proxied.add(proxyName(l));
      return sockets.filter((l) => {
        if (l.proto === 'sctp') return true;
        const at = { proto: l.proto, hostIp: l.address, hostPort: l.port };
        const name = reservationName(at);
        return !proxied.has(proxyName(at)) && !reserved.has(name) && reservations.find(name) === undefined;
      });
    },
    occupiedPrefixes: () => kernel.observePrefixes(),
    addressPrefixes: () => kernel.observePrefixes(false),
    async hostAddrs() {
      const { links, addrs } = await kernel.observeInterfaces();
      const foreign = new Set(links.filter((l) => !isOwnedLink(l)).map((l) => l.name));
      return addrs.filter((a) => foreign.has(a.dev)).map((a) => ({ dev: a.dev, cidr: a.cidr }));
    },
    async isForeignLink(name) {
      const link = await kernel.observeLinkNamed(name);
      return link !== null && !isOwnedLink(link);
    },
    containerIface: readSandboxIface,
    filterBridges: (families, network) => filterBridges(families, `network ${network.slice(0, 12)}`, log),
    ...(ipv6Forwarding ? { forwardIpv6: (network: string) => forwardIpv6(kernel, `network ${network.slice(0, 12)}`, log) } : {}),
  };
}

/**
 * serve --ipv6-forwarding, for a new network with IPv6: the host's IPv6 forwarding turned on as
 * Docker's bridge driver does for one of its own. A failure is logged; the next full pass plans
 * it again (sysctl.ipv6_forwarding) and reports it, and status names it.
 */
async function forwardIpv6(kernel: Kernel, what: string, log: Logger): Promise<void> {
  try {
    const changed = await kernel.setIpv6ForwardingOn();
    if (changed.length > 0) log.warn({ settings: changed }, `turned ${changed.join(' and ')} on (it was 0) for ${what} (serve --ipv6-forwarding), as Docker's bridge driver does for its own IPv6 networks`);
  } catch (e) {
    log.error({ err: e }, `could not turn IPv6 forwarding on for ${what} (serve --ipv6-forwarding): ${(e as Error).message}`);
  }
}

/**
 * As Docker does for an icc=false network of its own (at its creation and at Docker's start): the
 * kernel made to filter traffic inside bridges (br_netfilter loaded, bridge-nf-call-* at 1).
 * @throws Error naming what is missing when it cannot.
 */
async function filterBridges(families: readonly ('iptables' | 'ip6tables')[], what: string, log: Logger): Promise<void> {
  const changed = await enableBridgeNf(families);
  if (changed.length > 0) {
    log.warn({ settings: changed }, `turned ${changed.join(' and ')} on (it was 0) for ${what}: icc=false needs the kernel to filter traffic inside a bridge, as Docker does for its own icc=false networks; every bridge's traffic now passes the FORWARD chain`);
  }
}
