// The operator's door into a running daemon: a unix socket in the state directory (mode 0600, or
// 0660 in the group of `serve --control-group`), used by `ledgernet reconcile` and `ledgernet
// status`. Docker never sees it. Each connection's peer is checked (SO_PEERCRED, SO_PEERGROUPS)
// before its first request is served.
import type { Socket } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Command } from '../events/domain/commands.ts';
import { releaseCommand } from '../events/domain/release.ts';
import type { Cause, State, StoredEvent } from '../events/domain/types.ts';
import { isDriverError } from '../errors.ts';
import { operatorCause } from './operator-cause.ts';
import type { Cluster } from './cluster.ts';
import { describeAction } from '../reconciler/actions.ts';
import { describeItem } from '../reconciler/render.ts';
import { describeFailure } from '../reconciler/outcome.ts';
import type { PassResult } from '../reconciler/loop.ts';

/** The worker before this one, as `ledgernet status` shows it: how many this supervisor started, and how the last one ended. */
export interface PreviousWorker {
  /** This worker's number among the supervisor's (2: the second). */
  readonly generation: number;
  readonly pid: number;
  /** When it ended (ISO time). */
  readonly endedAt: string;
  /** e.g. "killed by the watchdog: its event loop had not answered for 15 s", "died (SIGKILL)". */
  readonly why: string;
}

export interface ControlDeps {
  readonly store: {
    readonly state: State;
    readonly lastSeq: number;
    readonly logBytes: number;
    execute(cmd: Command, cause: Cause): Promise<StoredEvent[]>;
    archive(cause: Cause): Promise<{ file: string; first: number; last: number; bytes: number; unrecorded?: string } | null>;
  };
  readonly reconciler: { requestPass(trigger: string): Promise<PassResult> };
  readonly info: { readonly pid: number; readonly supervisorPid?: number; readonly previousWorker?: PreviousWorker | null; readonly host: string; readonly socket: string; readonly socketFrom?: string; readonly stateDir: string; readonly startedAt: string };
  /** The NATS publisher's progress (backlog gauge), or null when publishing is off. */
  readonly audit?: () => unknown;
  /** The cluster as the daemon sees it (hosts and VTEPs from the KV bucket), or null without --nats. */
  readonly cluster?: () => Promise<unknown>;
  /** Forgets a cluster host for good (`ledgernet cluster forget`), or null without --nats. */
  readonly forgetHost?: Cluster['forget'];
  /** The userland proxy's listeners (ports on ::1). */
  readonly proxies?: () => unknown;
  /** The sockets that hold the published host ports. */
  readonly reservations?: () => unknown;
  /** Docker's API as the daemon reaches it (docker-name.ts), or null when it never asks Docker. */
  readonly docker?: () => Promise<unknown>;
  /** Null when the peer on this connection may use the socket, else why not. */
  readonly authorize?: (socket: Socket) => Promise<string | null>;
  /** Who is on this connection, as the kernel says (SO_PEERCRED): recorded in what a command records (main.ts: socket.ts peerReader, shared with `authorize`). */
  readonly peer?: (socket: Socket) => Promise<{ readonly uid: number; readonly pid: number }>;
}

export function createControlApp(deps: ControlDeps): FastifyInstance {
  const app = Fastify({ logger: false });
  const authorize = deps.authorize;
  if (authorize) {
    const verdicts = new WeakMap<Socket, Promise<string | null>>();
    app.addHook('onRequest', async (req, reply) => {
      const socket = req.raw.socket;
      let verdict = verdicts.get(socket);
      if (!verdict) {
        verdict = authorize(socket).catch((e: unknown) => `cannot check who is calling: ${(e as Error).message}`);
        verdicts.set(socket, verdict);
      }
      const refusal = await verdict;
      if (refusal !== null) return reply.code(403).header('connection', 'close').send({ error: refusal });
      return undefined;
    });
  }
  app.post('/reconcile', async () => {
    const r = await deps.reconciler.requestPass('cli');
    return {
      planned: r.planned,
      applied: [...r.applied.map(describeAction), ...(r.cluster ?? []).map(describeItem)],
      failures: r.failures.map(describeFailure),
      lost: r.lost.map(describeAction),
    };
  });
  const peerOf = (socket: Socket) => (deps.peer ? deps.peer(socket).catch(() => null) : Promise.resolve(null));
  app.post<{ Params: { target: string }; Body: unknown }>('/release/:target', async (req, reply) => {
    try {
      const cause = operatorCause(req.body, await peerOf(req.raw.socket));
      const events = await deps.store.execute(releaseCommand(deps.store.state, req.params.target), cause);
      const r = await deps.reconciler.requestPass('cli');
      return { events: events.map((e) => `${e.type} ${e.id}`), applied: r.applied.map(describeAction) };
    } catch (e) {
      return reply.code(isDriverError(e) ? 400 : 500).send({ error: (e as Error).message });
    }
  });
  app.post<{ Body: unknown }>('/archive', async (req, reply) => {
    try {
      const cause = operatorCause(req.body, await peerOf(req.raw.socket));
      return { archived: await deps.store.archive(cause) };
    } catch (e) {
      return reply.code(isDriverError(e) ? 400 : 500).send({ error: (e as Error).message });
    }
  });
  app.post<{ Params: { host: string }; Querystring: { 'dry-run'?: string }; Body: unknown }>('/cluster/forget/:host', async (req, reply) => {
    try {
      const cause = operatorCause(req.body, await peerOf(req.raw.socket));
      if (!deps.forgetHost) return await reply.code(400).send({ error: 'this ledgernet runs without --nats: it is in no cluster' });
      const host = req.params.host;
      // A preview: refused alike, nothing written, nothing recorded.
      if (req.query['dry-run'] === '1') return { host, ...(await deps.forgetHost(host, { dryRun: true })), dryRun: true };
      const done = await deps.forgetHost(host, { reason: cause.by === 'operator' ? cause.reason : undefined });
      // Done in the bucket: recorded here, with who did it (a failure to record is said, not undone).
      const recorded = await deps.store.execute({ type: 'RecordForgottenHost', host, ...done }, cause).then(
        (events) => ({ event: events[0]?.id ?? null }),
        (e: unknown) => ({ unrecorded: (e as Error).message }),
      );
      return { host, ...done, ...recorded };
    } catch (e) {
      return reply.code(isDriverError(e) ? 400 : 500).send({ error: (e as Error).message });
    }
  });
  app.get('/status', async () => ({
    ...deps.info,
    lastSeq: deps.store.lastSeq,
    logBytes: deps.store.logBytes,
    networks: Object.keys(deps.store.state.networks).length,
    endpoints: Object.keys(deps.store.state.endpoints).length,
    audit: deps.audit?.() ?? null,
    cluster: (await deps.cluster?.()) ?? null,
    proxies: deps.proxies?.() ?? [],
    reservations: deps.reservations?.() ?? [],
    docker: (await deps.docker?.()) ?? null,
  }));
  return app;
}
