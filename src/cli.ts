#!/usr/bin/env node
// The `ledgernet` command. Flags win over environment variables, which win over defaults.
import { DEFAULT_POOLS } from './api/ipam.ts';
import { parseCli, type Values } from './cli-args.ts';
import { DEFAULTS, defaultHost, parseDuration, parseSeconds, parseSwitch, parseHostTimeout, parseRetention, parseSize, resolveNats, SECONDS, settingsEnv, type DefaultPools, type NatsConfig, type ServeConfig } from './config.ts';
import { canonicalIp, parsePrefix } from './events/domain/cidr.ts';
import { DriverError, isDriverError } from './errors.ts';
import { DEFAULT_DOCKER_SOCKET } from './operator/docker-api.ts';
import { parseDirectRouting, parseFirewallChoice } from './operator/firewall-choice.ts';
import { controlGroupId } from './operator/socket.ts';
import { inheritedPluginSocket } from './supervisor/activation.ts';
import { holdsStateLock } from './events/log/lock.ts';
import { jsonLog, type Log } from './supervisor/log.ts';
import { supervise } from './supervisor/supervisor.ts';
import { answerPings, notifyReady, onSupervisorGone, workerSocket } from './supervisor/worker-link.ts';

const USAGE = `usage: ledgernet <command> [options]

commands:
  serve       run the driver: [--socket P] [--state-dir D] [--reconcile-interval S (default ${DEFAULTS.reconcileIntervalS}, at least 1;
                         0: no background repair)] [--log-level L]
              [--worker-watchdog S]  a worker whose event loop has not answered for S seconds is killed and
                         replaced (default ${DEFAULTS.workerWatchdogS}, at least 2; 0: never)
              [--worker-start-timeout S]  the same for a worker that has not said it is ready yet
                         (default ${DEFAULTS.workerStartTimeoutS}, at least 2; 0: never)
              [--in-process]  no supervisor: the daemon itself listens on the socket (tests, debugging)
              [--metrics HOST:PORT]  Prometheus metrics (off by default)
              [--docker-socket P]  Docker's API (default /var/run/docker.sock; '' never asks Docker)
              [--abandoned-grace S]  release an endpoint Docker has not held for S seconds (default 60, at least 1)
              [--apply-timeout S]  how long a Docker call that needs the kernel waits for it (default ${DEFAULTS.applyTimeoutMs / 1000}, at least 1; then
                         an Err naming the timeout; a network, endpoint or ports it added are taken back)
              [--archive-log-size SIZE]  archive events.log once it holds SIZE bytes (e.g. 256M; default off:
                         see 'events archive')
              [--firewall iptables|nftables|auto]  firewall backend (default auto: nftables when Docker's is)
              [--allow-direct-routing]  no direct-access protection on any network (Docker 28's dockerd flag)
              [--ipv6-forwarding]  turn the host's IPv6 forwarding on while a network has IPv6, as Docker's
                         bridge driver does (default: off is only named, in status and the log)
              [--control-group NAME|GID]  members of this group may use the control socket (the
                         CLI's door: reconcile, release, events archive, cluster forget); default: root only
              [--default-pool CIDR] [--default-pool-size N] [--default-pool6 CIDR] [--default-pool6-size N]
              (automatic IPAM pools: default ${DEFAULT_POOLS.v4.range} in /${DEFAULT_POOLS.v4.size}s, ${DEFAULT_POOLS.v6.range} in /${DEFAULT_POOLS.v6.size}s)
  reconcile   converge the kernel once (through the running daemon if there is one)
              --dry-run  only show what would change (exit 0: nothing, 2: changes pending, 1: error)
              --json     machine-readable output
              --firewall B  (with --dry-run only) plan with this backend (default: the one serve recorded)
              --allow-direct-routing  (with --dry-run only) plan as serve --allow-direct-routing would
                         (default: as serve runs; LEDGERNET_ALLOW_DIRECT_ROUTING=0 plans as serve without it);
                         a real reconcile runs as serve does and refuses both
  status      networks, endpoints, IPAM pools and published ports, desired vs actual [--json] [--firewall B]
  events      print the event log [--json] [--follow] [--since SEQ|TIME] (from that seq, or
              that time by the events' own; a time without a zone is UTC, as times are printed)
              [--network ID|NAME] (one network's events: its id, a 12+ hex prefix, or the name
              Docker gave it) [--container ID|NAME]
              (the events of the endpoints a container had) [--address IP] (of the endpoints
              that had it, and its IPAM events); filters combine; 'events verify' checks it
              (and the archives); 'events archive' moves the log's events into <state-dir>/archive/
              (kept whole, hash chain unbroken; move or delete old archives as your retention says)
  release ID|CIDR|IP  forget a network or endpoint (id or unique 12+ hex prefix), an IPAM pool or
              address that Docker no longer has (e.g. after a crash mid-call); its kernel objects are removed
              --dry-run  only show the events it would record and the kernel objects it would remove
              --reason TEXT  why, recorded with the events (with the login name, uid and pid)
              refused when Docker still holds it (asked through --docker-socket P, default
              /var/run/docker.sock) or cannot be asked; --force releases it anyway
  repair      after a crash, make Docker and ledgernet agree through Docker's API: force-disconnect
              endpoints Docker holds whose removal was lost; release endpoints, networks, IPAM pools
              and addresses Docker does not hold [--dry-run (exit 2: repairs pending)] [--docker-socket P]
              [--reason TEXT]
  cluster forget HOST  forget a cluster host that is gone for good (through the running daemon): it
              leaves every cluster network it had (the last host out removes the network from the
              KV bucket) and its address blocks are given back; refused while the cluster has not
              expired it (its heartbeat is still in the bucket) [--reason TEXT]
              [--dry-run (only show what it would do; exit 2)]
  install     put the systemd unit in place, enable and start it [--root DIR] [--no-start] [--prefix P]
              [--force]  overwrite a unit changed since install wrote it (refused without: put
                         settings in a drop-in, ledgernet.service.d/*.conf, which install never touches)
  uninstall   stop and disable the systemd unit and remove it [--root DIR]
  audit       read the audit stream from NATS: --nats URL [--host H] [--since SEQ|TIME] (UTC
              unless it names a zone) [--follow] [--json] [--verify] (exit 1 naming the first gap, duplicate or
              altered event; 2 when events published without their data could not be checked)
              [--network ID|NAME] [--container ID|NAME] [--address IP] (as events)

an option or argument the command does not take is refused (exit 1, nothing done)
every command takes --state-dir (env LEDGERNET_STATE_DIR, default ${DEFAULTS.stateDir}) and --help (-h: this text)

NATS (serve publishes every event when --nats is set; audit reads them):
  --nats URL[,URL]        env LEDGERNET_NATS_URL; off when unset
  --nats-token T          env LEDGERNET_NATS_TOKEN (prefer the env: argv is visible in ps)
  --nats-creds FILE       env LEDGERNET_NATS_CREDS
                          user and password: in the URL (nats://user:password@host:4222) or
                          env LEDGERNET_NATS_USER, LEDGERNET_NATS_PASSWORD; one way to authenticate
  --nats-tls-ca FILE      env LEDGERNET_NATS_TLS_CA; --nats-tls-cert/--nats-tls-key FILE
                          (env LEDGERNET_NATS_TLS_CERT, LEDGERNET_NATS_TLS_KEY) for mutual TLS
  --nats-stream NAME      env LEDGERNET_NATS_STREAM, default ${DEFAULTS.natsStream}
  serve only, used when the stream is created:
  --nats-retention R      limits|interest|workqueue, default ${DEFAULTS.natsRetention}
  --nats-max-age D        e.g. 30d; default 0 (keep forever)
  --nats-dup-window D     JetStream duplicate window, default ${DEFAULTS.natsDupWindow}

Cluster networks (serve with --nats; coordinated in the KV bucket ledgernet-cluster):
  --host NAME             env LEDGERNET_HOST; this host's name in the cluster (default the machine's)
  --vtep ADDR             env LEDGERNET_VTEP; this host's underlay address (default: the source
                          address of the route towards the first NATS server)
  --cluster-host-timeout D
                          env LEDGERNET_CLUSTER_HOST_TIMEOUT; a host not heard of for this long
                          has its entries removed from the others (default ${DEFAULTS.clusterHostTimeout}, at least 1s)
`;


function defaultPool(
  family: 4 | 6,
  flag: string,
  range: string | undefined,
  sizeText: string | undefined,
  fallback: { range: string; size: number },
): { range: string; size: number } {
  const r = range ?? fallback.range;
  const p = parsePrefix(r, true);
  if (!p || p.family !== family) {
    throw new DriverError('LN_ERR_BAD_REQUEST', `--${flag} must be an IPv${family} CIDR without host bits such as ${fallback.range}, got ${r}`);
  }
  // Digits only: Number() took '' as 0 and `0x18` as 24.
  const size = sizeText === undefined ? fallback.size : /^\d+$/.test(sizeText) ? Number(sizeText) : NaN;
  if (!Number.isInteger(size) || size < p.len || size > (family === 4 ? 30 : 126)) {
    throw new DriverError(
      'LN_ERR_BAD_REQUEST',
      `--${flag}-size must be a prefix length from ${p.len} (the range's own) to ${family === 4 ? 30 : 126}, got ${JSON.stringify(sizeText)}`,
    );
  }
  return { range: r, size };
}

function defaultPools(values: Values, env: NodeJS.ProcessEnv): DefaultPools {
  const v = (k: 'default-pool' | 'default-pool-size' | 'default-pool6' | 'default-pool6-size') => values[k];
  return {
    v4: defaultPool(4, 'default-pool', v('default-pool') ?? env['LEDGERNET_DEFAULT_POOL'], v('default-pool-size') ?? env['LEDGERNET_DEFAULT_POOL_SIZE'], DEFAULT_POOLS.v4),
    v6: defaultPool(6, 'default-pool6', v('default-pool6') ?? env['LEDGERNET_DEFAULT_POOL6'], v('default-pool6-size') ?? env['LEDGERNET_DEFAULT_POOL6_SIZE'], DEFAULT_POOLS.v6),
  };
}

function natsConfig(values: Values, env: NodeJS.ProcessEnv): NatsConfig | null {
  const url = values.nats ?? env['LEDGERNET_NATS_URL'];
  if (!url) return null;
  const nats = {
    url,
    token: values['nats-token'] ?? env['LEDGERNET_NATS_TOKEN'],
    user: env['LEDGERNET_NATS_USER'],
    password: env['LEDGERNET_NATS_PASSWORD'],
    credsFile: values['nats-creds'] ?? env['LEDGERNET_NATS_CREDS'],
    tlsCa: values['nats-tls-ca'] ?? env['LEDGERNET_NATS_TLS_CA'],
    tlsCert: values['nats-tls-cert'] ?? env['LEDGERNET_NATS_TLS_CERT'],
    tlsKey: values['nats-tls-key'] ?? env['LEDGERNET_NATS_TLS_KEY'],
  };
  resolveNats(nats); // refused here, before anything starts, and never quoting a secret
  return nats;
}

function natsServeConfig(values: Values, env: NodeJS.ProcessEnv) {
  const nats = natsConfig(values, env);
  if (!nats) return null;
  const stream = {
    name: values['nats-stream'] ?? env['LEDGERNET_NATS_STREAM'] ?? DEFAULTS.natsStream,
    retention: parseRetention(values['nats-retention'] ?? DEFAULTS.natsRetention),
    maxAgeMs: parseDuration('nats-max-age', values['nats-max-age'] ?? DEFAULTS.natsMaxAge),
    duplicateWindowMs: parseDuration('nats-dup-window', values['nats-dup-window'] ?? DEFAULTS.natsDupWindow),
  };
  return { ...nats, stream };
}

/**
 * `ledgernet status | head -1`: once the reader is gone there is nobody to tell; stop at once and
 * quietly, as Unix tools do, instead of an EPIPE stack trace. Not for `serve`, whose stdout is
 * its log.
 */
function exitQuietlyOnEpipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code !== 'EPIPE') throw e;
      process.exit(process.exitCode ?? 0);
    });
  }
}

const SUPERVISOR_GONE = 'supervisor gone';

/**
 * How long a worker whose supervisor is gone may take to stop. Nobody is left to answer, and the
 * next supervisor needs the state lock this worker holds: a call in flight that does not end (one
 * waiting on NATS, say) must not keep it alive. Whatever it leaves unanswered the next supervisor
 * sends again from its journal, and the log is read back as after a crash.
 */
const ORPHAN_STOP_MS = 5_000;

/** Exits the process `ms` from now unless it has ended by then (the timer keeps nothing alive). */
function exitAfter(ms: number, log: Log): void {
  setTimeout(() => {
    log.error({ afterS: ms / 1000 }, `the supervisor is gone and this worker did not stop within ${ms / 1000} s (a call in flight that does not end): exiting now`);
    process.exit(1);
  }, ms).unref();
}

/** Resolves with the first SIGTERM/SIGINT/SIGHUP (or `extra`'s trigger); later signals are only logged. */
function stopSignal(log: Log, extra?: (stop: () => void) => void): Promise<string> {
  return new Promise((resolve) => {
    let stopping = false;
    // Stay subscribed (not `once`): execa's signal-exit re-raises a signal nobody else listens to.
    const onSignal = (sig: string) => {
      if (stopping) {
        if (sig !== SUPERVISOR_GONE) log.warn({ signal: sig }, 'already shutting down');
        return;
      }
      stopping = true;
      resolve(sig);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    // SIGHUP stops as SIGTERM does (node's default ended the supervisor at once, leaving the socket
    // file and worker.pid). systemd sends it only with SendSIGHUP= (then beside SIGTERM) or an
    // ExecReload= (the unit has none: there is nothing to reload), so it comes from a closed
    // terminal, whose foreground run is over, or an operator's `kill -HUP`; Restart=always brings
    // a service back. Ignoring it would leave a daemon that went on writing to a closed terminal.
    process.on('SIGHUP', onSignal);
    extra?.(() => onSignal(SUPERVISOR_GONE));
  });
}

function vtepOf(v: string | undefined): string | null {
  if (v === undefined || v === '') return null;
  const a = canonicalIp(v);
  if (a === null) throw new DriverError('LN_ERR_BAD_REQUEST', `--vtep must be this host's underlay IP address, got ${v}`);
  return a;
}

/** `ledgernet serve`: the supervisor, or (as its worker, or with --in-process) the daemon itself. */
async function runServe(values: Values, env: NodeJS.ProcessEnv, argv: string[], stateDir: string): Promise<number> {
  const logLevel = values['log-level'] ?? env['LEDGERNET_LOG_LEVEL'] ?? DEFAULTS.logLevel;
  const pools = defaultPools(values, env);
  const listen = workerSocket(env);
  const supervisor = !listen && !values['in-process'];
  // Looked up in the supervisor too, so an unknown group is refused before a worker starts.
  const controlGroup = await controlGroupId(values['control-group'] ?? env['LEDGERNET_CONTROL_GROUP']);
  // pino only where it is used: the supervisor writes the same lines without it (memory, bench row
  // 9) unless a terminal reads them (pino-pretty).
  const logger = supervisor && !process.stdout.isTTY ? null : (await import('./logger.ts')).createLogger(logLevel);
  const log: Log = logger ?? jsonLog(logLevel);
  const cfg: ServeConfig = {
    socket: values.socket ?? env['LEDGERNET_SOCKET'] ?? DEFAULTS.socket,
    stateDir,
    reconcileIntervalS: parseSeconds(SECONDS.reconcileInterval, values['reconcile-interval'], env),
    abandonedGraceS: parseSeconds(SECONDS.abandonedGrace, values['abandoned-grace'], env),
    archiveLogBytes: parseSize('archive-log-size', values['archive-log-size'] ?? env['LEDGERNET_ARCHIVE_LOG_SIZE'] ?? '0'),
    applyTimeoutMs: Math.round(parseSeconds(SECONDS.applyTimeout, values['apply-timeout'], env) * 1000),
    logLevel,
    host: values.host || env['LEDGERNET_HOST'] || defaultHost(),
    vtep: vtepOf(values.vtep ?? env['LEDGERNET_VTEP']),
    clusterHostTimeoutMs: parseHostTimeout(values['cluster-host-timeout'] ?? env['LEDGERNET_CLUSTER_HOST_TIMEOUT'] ?? DEFAULTS.clusterHostTimeout),
    metrics: values.metrics ?? (env['LEDGERNET_METRICS'] || null),
    dockerSocket: (values['docker-socket'] ?? env['LEDGERNET_DOCKER_SOCKET'] ?? DEFAULT_DOCKER_SOCKET) || null,
    ...(env['LEDGERNET_DRIVER_NAME'] ? { driverName: env['LEDGERNET_DRIVER_NAME'] } : {}),
    defaultPools: pools,
    nats: natsServeConfig(values, env),
    firewall: parseFirewallChoice(values.firewall ?? env['LEDGERNET_FIREWALL']) ?? 'auto',
    allowDirectRouting: parseDirectRouting(values['allow-direct-routing'], env['LEDGERNET_ALLOW_DIRECT_ROUTING']) ?? false,
    ipv6Forwarding: parseSwitch(values['ipv6-forwarding'], 'LEDGERNET_IPV6_FORWARDING', env['LEDGERNET_IPV6_FORWARDING']) ?? false,
    ...(controlGroup === null ? {} : { controlGroup }),
  };
  const watchdogMs = Math.round(parseSeconds(SECONDS.workerWatchdog, values['worker-watchdog'], env) * 1000);
  const startTimeoutMs = Math.round(parseSeconds(SECONDS.workerStartTimeout, values['worker-start-timeout'], env) * 1000);
  for (const flag of ['worker-watchdog', 'worker-start-timeout'] as const) {
    if (values['in-process'] && values[flag] !== undefined) {
      throw new DriverError('LN_ERR_BAD_REQUEST', `--${flag} watches the worker a supervisor runs; --in-process runs none`);
    }
  }
  // By default a supervisor keeps Docker's socket and runs the daemon as its worker
  // (src/supervisor/); --in-process runs the daemon alone, as before.
  if (logger === null || supervisor) { // (null only for the supervisor)
    // Socket activation (ledgernet.socket): the plugin socket outlives the daemon.
    const inheritedFd = inheritedPluginSocket(env, cfg.socket);
    // Listened for from the start: a signal while the worker starts stops it too (not an orphan).
    const stopAsked = stopSignal(log);
    const stopped = new AbortController();
    void stopAsked.then(() => stopped.abort());
    const sup = await supervise({ socket: cfg.socket, stateDir, workerArgv: [process.argv[1] ?? '', ...argv], log, inheritedFd, watchdogMs, startTimeoutMs, stopped: stopped.signal, holdsStateLock: (pid) => holdsStateLock(stateDir, pid) });
    if (!sup) return 0;
    const why = await Promise.race([stopAsked, sup.failed.then((e) => { throw e; })]);
    log.info({ signal: why }, 'shutting down: finishing in-flight calls; the kernel is left as it is');
    await sup.stop();
    return 0;
  }
  if (!listen && inheritedPluginSocket(env, cfg.socket) !== null) {
    throw new DriverError('LN_ERR_CONFIG', 'socket activation: --in-process cannot serve a socket the service manager passed; run `ledgernet serve` without --in-process');
  }
  // A worker listens before it starts: node says once that the supervisor is gone, and a worker
  // that missed it would run on forever with the state lock. Gone during the start, it exits within
  // ORPHAN_STOP_MS; a signal then stops it once started. Pings are answered during the start too
  // (the supervisor's start-up watch, worker-process.ts).
  const stopAsked = listen ? stopSignal(log, onSupervisorGone) : null;
  if (listen) answerPings();
  void stopAsked?.then((why) => why === SUPERVISOR_GONE && exitAfter(ORPHAN_STOP_MS, log));
  // Loaded here, not at the top: the supervisor process never loads the daemon (memory).
  const { serve } = await import('./main.ts');
  let daemon: Awaited<ReturnType<typeof serve>>;
  try {
    daemon = await serve(listen ? { ...cfg, listenSocket: listen } : cfg, logger);
  } catch (e) {
    // The listeners above hold the channel to the supervisor open: a worker that cannot start
    // lets go of it, or it would never exit (the supervisor waits for its exit and its message).
    if (listen && process.connected) process.disconnect();
    throw e;
  }
  if (listen) notifyReady();
  const why = await (stopAsked ?? stopSignal(log));
  log.info({ signal: why }, 'shutting down: finishing in-flight calls; the kernel is left as it is');
  await daemon.stop();
  log.info('stopped');
  if (listen && process.connected) process.disconnect();
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const { cmd, values, args } = parseCli(argv);
  const [sub] = args;
  if (values.help || !cmd) {
    process.stdout.write(USAGE);
    return cmd || values.help ? 0 : 1;
  }
  if (cmd !== 'serve') exitQuietlyOnEpipe();
  const env = settingsEnv(process.env);
  const stateDir = values['state-dir'] ?? env['LEDGERNET_STATE_DIR'] ?? DEFAULTS.stateDir;
  switch (cmd) {
    case 'serve':
      return runServe(values, env, argv, stateDir);
    case 'reconcile':
      return (await import('./operator/commands.ts')).runReconcile({ stateDir, dryRun: values['dry-run'] ?? false, json: values.json ?? false, firewall: values.firewall, allowDirectRouting: values['allow-direct-routing'] });
    case 'status':
      return (await import('./operator/commands.ts')).runStatus({ stateDir, json: values.json ?? false, firewall: values.firewall });
    case 'release':
      return (await import('./operator/commands.ts')).runRelease({ stateDir, target: sub, dryRun: values['dry-run'] ?? false, force: values.force ?? false, dockerSocket: values['docker-socket'] || DEFAULT_DOCKER_SOCKET, ...(values.reason === undefined ? {} : { reason: values.reason }) });
    case 'repair':
      return (await import('./operator/repair.ts')).runRepair({ stateDir, dryRun: values['dry-run'] ?? false, dockerSocket: values['docker-socket'] || DEFAULT_DOCKER_SOCKET, ...(values.reason === undefined ? {} : { reason: values.reason }) });
    case 'events':
      if (sub === 'archive') {
        if (values.json || values.follow || values.since !== undefined || values.network !== undefined || values.container !== undefined || values.address !== undefined) {
          throw new DriverError('LN_ERR_CONFIG', '`events archive` takes no --json, --follow, --since, --network, --container or --address (see ledgernet --help)');
        }
        return (await import('./operator/commands.ts')).runArchive({ stateDir });
      }
      return (await import('./operator/commands.ts')).runEvents({
        stateDir,
        json: values.json ?? false,
        follow: values.follow ?? false,
        verify: sub === 'verify',
        ...(values.since === undefined ? {} : { since: values.since }),
        ...(values.network === undefined ? {} : { network: values.network }),
        ...(values.container === undefined ? {} : { container: values.container }),
        ...(values.address === undefined ? {} : { address: values.address }),
      });
    case 'cluster':
      return (await import('./operator/commands.ts')).runClusterForget({ stateDir, host: args[1] ?? '', dryRun: values['dry-run'] ?? false, ...(values.reason === undefined ? {} : { reason: values.reason }) });
    case 'install':
      return (await import('./operator/install.ts')).install({ root: values.root ?? '/', noStart: values['no-start'] ?? false, force: values.force ?? false, ...(values.prefix === undefined ? {} : { prefix: values.prefix }) });
    case 'uninstall':
      return (await import('./operator/install.ts')).uninstall({ root: values.root ?? '/' });
    case 'audit': {
      const nats = natsConfig(values, env);
      if (!nats) throw new DriverError('LN_ERR_BAD_REQUEST', 'audit needs --nats URL (or LEDGERNET_NATS_URL)');
      const [{ runAudit }, { connectNats }] = await Promise.all([import('./events/audit/reader.ts'), import('./main.ts')]);
      return runAudit({
        // --follow rides out a NATS restart; a one-off read fails fast.
        connect: () => connectNats(nats, { name: 'ledgernet audit', persistent: values.follow ?? false, nameServers: true }),
        stream: values['nats-stream'] ?? env['LEDGERNET_NATS_STREAM'] ?? DEFAULTS.natsStream,
        host: values.host,
        since: values.since,
        follow: values.follow ?? false,
        json: values.json ?? false,
        verify: values.verify ?? false,
        query: {
          ...(values.network === undefined ? {} : { network: values.network }),
          ...(values.container === undefined ? {} : { container: values.container }),
          ...(values.address === undefined ? {} : { address: values.address }),
        },
      });
    }
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    const msg = isDriverError(e) ? `${e.message} (${e.code})` : e instanceof Error ? e.message : String(e);
    process.stderr.write(`ledgernet: ${msg}\n`);
    process.exitCode = 1;
  },
);

