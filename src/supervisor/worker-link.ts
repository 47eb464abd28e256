// The worker's side of the supervisor link: where to listen, how to say "ready", and stopping
// when the supervisor is gone (its IPC channel closes when it dies, even by SIGKILL).

/** Set by the supervisor in the worker's environment: the private socket the worker listens on. */
export const WORKER_SOCKET_ENV = 'LEDGERNET_WORKER_SOCKET';

export interface WorkerMessage {
  readonly ledgernet: 'ready';
  readonly pid: number;
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

/** Calls `stop` when the supervisor is gone; a worker never outlives it (it holds the state lock). */
export function onSupervisorGone(stop: () => void): void {
  if (process.send) process.once('disconnect', stop);
}
