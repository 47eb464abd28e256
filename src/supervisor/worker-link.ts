// The worker's side of the supervisor link: where to listen, how to say "ready", and stopping
// when the supervisor is gone (its IPC channel closes when it dies, even by SIGKILL), and the
// worker's end of the framed link the supervisor sends Docker's calls over (frames.ts).
import { createServer, type Socket } from 'node:net';
import { listenPrivately } from '../operator/socket.ts';
import { readFrames, sendFrame, type FrameRequest } from './frames.ts';

/** Set by the supervisor in the worker's environment: the private socket the worker listens on. */
export const WORKER_SOCKET_ENV = 'LEDGERNET_WORKER_SOCKET';

/** The worker's messages to its supervisor over the IPC channel: ready, and its answer to a watchdog ping (watchdog.ts). */
export type WorkerMessage = { readonly ledgernet: 'ready'; readonly pid: number } | { readonly ledgernet: 'pong' };

/** Set by the supervisor in a worker's environment when an earlier worker of it ended: JSON of PreviousWorker. */
export const PREVIOUS_WORKER_ENV = 'LEDGERNET_PREVIOUS_WORKER';

/** The worker before this one: its number among the supervisor's, its pid, when and how it ended (the wire shape of control.ts's PreviousWorker). */
export type PreviousWorker = { readonly generation: number; readonly pid: number; readonly endedAt: string; readonly why: string };

/** The worker before this one, or null (the first, or no supervisor). */
export function previousWorker(env: NodeJS.ProcessEnv = process.env): PreviousWorker | null {
  const raw = env[PREVIOUS_WORKER_ENV];
  if (!raw) return null;
  try {
    const v = JSON.parse(raw) as Partial<PreviousWorker>;
    if (typeof v.generation === 'number' && typeof v.pid === 'number' && typeof v.endedAt === 'string' && typeof v.why === 'string') {
      return { generation: v.generation, pid: v.pid, endedAt: v.endedAt, why: v.why };
    }
  } catch {
    // not ours: shown as nothing
  }
  return null;
}

/** Set by the supervisor in the worker's environment when systemd passed the plugin socket (socket activation). */
export const SOCKET_FROM_ENV = 'LEDGERNET_PLUGIN_SOCKET_FROM';

/** Where the plugin socket came from, for `ledgernet status`: 'service manager', or 'ledgernet' (bound by the supervisor or daemon). */
export function pluginSocketFrom(env: NodeJS.ProcessEnv = process.env): 'service manager' | 'ledgernet' {
  return env[SOCKET_FROM_ENV] === 'service manager' ? 'service manager' : 'ledgernet';
}

/** The socket a worker started by a supervisor listens on, or null (not a worker). */
export function workerSocket(env: NodeJS.ProcessEnv = process.env): string | null {
  return env[WORKER_SOCKET_ENV] || null;
}

/** Tells the supervisor (if any) that this worker serves now. */
export function notifyReady(): void {
  if (process.send && process.connected) process.send({ ledgernet: 'ready', pid: process.pid } satisfies WorkerMessage);
}

/** Answers the supervisor's watchdog pings (watchdog.ts) from this event loop: a loop that stops answers none. */
export function answerPings(): void {
  if (!process.send) return;
  process.on('message', (m: unknown) => {
    if ((m as { ledgernet?: unknown } | null)?.ledgernet === 'ping' && process.connected) process.send?.({ ledgernet: 'pong' } satisfies WorkerMessage);
  });
}

/**
 * Calls `stop` when the supervisor is gone; a worker never outlives it (it holds the state lock).
 * Node emits 'disconnect' once, to the listeners of that moment: a channel already closed is stopped at once.
 */
export function onSupervisorGone(stop: () => void): void {
  if (!process.send) return;
  if (!process.connected) return stop();
  process.once('disconnect', stop);
}

/** A plugin call by method and raw body (the api's createPlugin().call). */
export type CallHandler = (method: string, body: string) => Promise<{ readonly status: number; readonly body: string }>;

/**
 * Serves the framed link (frames.ts) on `path` (created 0600 from the start): each request runs
 * `call`, and its answer goes back under the request's id, in whatever order they finish.
 * The returned stop closes the socket, waits for the calls in flight to be answered, then ends
 * the connections (the supervisor re-sends whatever a worker that dies leaves unanswered).
 */
export async function serveFrames(path: string, call: CallHandler): Promise<() => Promise<void>> {
  const conns = new Set<Socket>();
  let inFlight = 0;
  let idle: (() => void) | null = null;
  const server = createServer((socket) => {
    conns.add(socket);
    socket.on('close', () => conns.delete(socket));
    socket.on('error', () => socket.destroy());
    readFrames(socket, (msg) => {
      const { i, m, b } = msg as FrameRequest;
      inFlight += 1;
      void call(String(m), typeof b === 'string' ? b : '')
        .catch((e: unknown) => ({ status: 500, body: JSON.stringify({ Err: `internal error (LN_ERR_INTERNAL): ${String(e)}` }) }))
        .then((r) => {
          sendFrame(socket, { i, s: r.status, b: r.body });
          inFlight -= 1;
          if (inFlight === 0) idle?.();
        });
    });
  });
  await listenPrivately({ server, listen: ({ path: p }) => new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(p, () => resolve(p));
  }) }, path, 0o600);
  return async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    if (inFlight > 0) await new Promise<void>((resolve) => (idle = resolve));
    for (const s of conns) s.end();
    await closed;
  };
}
