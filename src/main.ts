// Composition root of `ledgernet serve`: the only place that creates the logger, the fastify
// servers and the real kernel, and wires the layers together.
import { chmod, readFile, unlink } from 'node:fs/promises';
import { connect, credsAuthenticator, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import pino, { type Logger } from 'pino';
import { createControlApp, createPluginApp } from './api/index.ts';
import { controlSocket, describeNats, type NatsConfig, type ServeConfig } from './config.ts';
import { acquireLock, emptyState, EventLog, EventStore, fold, NatsPublisher, Outbox, type StoredEvent } from './events/index.ts';
import { createKernel } from './kernel/index.ts';
import { Reconciler, describeAction } from './reconciler/index.ts';
import { prepareSocketPath } from './socket.ts';

export function createLogger(level: string): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}

/**
 * Connects to NATS (the only place that does). `persistent`: once connected, reconnect forever
 * (the daemon); otherwise a reader that fails fast (the audit CLI).
 */
export async function connectNats(cfg: NatsConfig, o: { name: string; persistent: boolean }): Promise<NatsConnection> {
  const opts: NodeConnectionOptions = {
    servers: cfg.url.split(',').map((s) => s.trim()),
    name: o.name,
    timeout: 5_000,
    reconnect: o.persistent,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1_000,
  };
  if (cfg.token) opts.token = cfg.token;
  if (cfg.credsFile) opts.authenticator = credsAuthenticator(await readFile(cfg.credsFile));
  if (cfg.tlsCa || cfg.tlsCert || cfg.tlsKey) {
    opts.tls = {
      ...(cfg.tlsCa ? { caFile: cfg.tlsCa } : {}),
      ...(cfg.tlsCert ? { certFile: cfg.tlsCert } : {}),
      ...(cfg.tlsKey ? { keyFile: cfg.tlsKey } : {}),
    };
  }
  return connect(opts);
}

// The audit publisher runs in the background: nothing here waits for NATS.
async function startPublisher(cfg: ServeConfig, store: EventStore, events: readonly StoredEvent[], log: Logger): Promise<Outbox | null> {
  const nats = cfg.nats;
  if (!nats) return null;
  const plog = log.child({ component: 'publisher' });
  const publisher = new NatsPublisher({
    connect: () => connectNats(nats, { name: `ledgernet ${cfg.host}`, persistent: true }),
    stream: nats.stream,
    describe: describeNats(nats),
  });
  const outbox = await Outbox.create({ publisher, host: cfg.host, stateDir: cfg.stateDir, log: plog, initial: events });
  store.onEvents((stored) => outbox.notify(stored));
  outbox.start();
  plog.info({ nats: describeNats(nats), stream: nats.stream }, 'publishing the event log to NATS JetStream');
  return outbox;
}

export interface Daemon {
  stop(): Promise<void>;
}

export async function serve(cfg: ServeConfig, log: Logger): Promise<Daemon> {
  const release = await acquireLock(cfg.stateDir);
  const cleanups: (() => Promise<void>)[] = [release];
  const stopAll = async () => {
    for (const c of cleanups.reverse()) await c().catch((e: unknown) => log.error({ err: e }, 'shutdown step failed'));
  };
  try {
    const { log: eventLog, events, repaired } = await EventLog.open(cfg.stateDir, { host: cfg.host });
    if (repaired) log.warn(repaired, 'event log had a torn tail (crash mid-write); truncated to the last good record');
    const state = fold(emptyState, events);
    log.info({ events: events.length, networks: Object.keys(state.networks).length, endpoints: Object.keys(state.endpoints).length }, 'replayed event log');
    const store = new EventStore(eventLog, state);
    cleanups.push(() => store.close());
    const outbox = await startPublisher(cfg, store, events, log);
    if (outbox) cleanups.push(() => outbox.stop());

    const kernel = createKernel();
    const reconciler: Reconciler = new Reconciler({
      kernel,
      getState: () => store.state,
      log: log.child({ component: 'reconciler' }),
      intervalMs: cfg.reconcileIntervalS * 1000,
      onLost: async (lost) => {
        for (const a of lost) {
          if (a.owner.endpointId) await store.execute({ type: 'MarkLost', endpointId: a.owner.endpointId, reason: a.detail ?? a.reason });
        }
      },
      onPass: (r) => {
        const kernelWork = r.applied.length + r.failures.length;
        if (kernelWork === 0) return;
        store
          .execute({
            type: 'RecordReconcile',
            trigger: r.trigger,
            actions: r.applied.map(describeAction),
            failures: r.failures.map((f) => `${describeAction(f.action)}: ${f.message}`),
          })
          .catch((e: unknown) => log.error({ err: e }, 'could not record the reconcile outcome'));
      },
    });
    cleanups.push(() => reconciler.stop());

    const plugin = createPluginApp({ store, reconciler, log, applyTimeoutMs: cfg.applyTimeoutMs });
    await prepareSocketPath(cfg.socket);
    await plugin.listen({ path: cfg.socket });
    await chmod(cfg.socket, 0o660);
    cleanups.push(async () => {
      await plugin.close();
      await unlink(cfg.socket).catch(() => undefined);
    });

    const ctlPath = controlSocket(cfg.stateDir);
    const control = createControlApp({
      store,
      reconciler,
      info: { pid: process.pid, host: cfg.host, socket: cfg.socket, stateDir: cfg.stateDir, startedAt: new Date().toISOString() },
      audit: () => outbox?.stats() ?? null,
    });
    await prepareSocketPath(ctlPath);
    await control.listen({ path: ctlPath });
    await chmod(ctlPath, 0o600);
    cleanups.push(async () => {
      await control.close();
      await unlink(ctlPath).catch(() => undefined);
    });

    // Crash recovery and garbage collection: converge what the log says with what the kernel holds.
    reconciler.start();
    await reconciler.requestPass('startup');
    log.info({ socket: cfg.socket, stateDir: cfg.stateDir, intervalS: cfg.reconcileIntervalS }, 'ledgernet is serving');
  } catch (e) {
    await stopAll();
    throw e;
  }
  return { stop: stopAll };
}
