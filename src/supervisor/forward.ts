// Forwarding one Docker call to the worker, across worker crashes: a transport error (the worker
// died before or while handling the call, or is restarting) waits for the next worker and sends
// the same request again with its full body. Every handler is idempotent, as it must already be
// for Docker's own full-body retries. An answer from the worker, whatever its status, is final.
import { createConnection, type Socket } from 'node:net';
import { readFrames, sendFrame, type FrameReply } from './frames.ts';

export interface Reply {
  readonly status: number;
  readonly body: string;
}

/** A reply carrying Docker's error field. */
export const errReply = (status: number, message: string): Reply => ({ status, body: JSON.stringify({ Err: message }) });

/** Managed plugins time out at 30 s (legacy ones never); leave Docker room to read our Err. */
export const FORWARD_DEADLINE_MS = 25_000;
/** A request that kills the worker this many times in a row is not sent again (a poison call). */
const MAX_ATTEMPTS = 4;

export interface ForwardDeps {
  /** One attempt; rejects only on transport errors (no answer). */
  send(): Promise<Reply>;
  /**
   * Resolves once a worker newer than the one of `generation` is ready, or after `ms` (then the
   * caller looks again). Generation: see `generation()`.
   */
  nextWorker(generation: number, ms: number): Promise<void>;
  /** The generation of the worker that is ready now, or null while none is. */
  generation(): number | null;
  now(): number;
}

export type ForwardOutcome =
  | { readonly kind: 'reply'; readonly reply: Reply; readonly attempts: number }
  | { readonly kind: 'timeout'; readonly attempts: number; readonly lastError: string }
  | { readonly kind: 'poison'; readonly attempts: number; readonly lastError: string };

/**
 * A transport error before the call reached a worker: the connection to it could not be made (a
 * worker that is stopping has closed its socket). Not a death: waiting for the next worker is not
 * one of the attempts that make a poison call.
 */
class UnreachedError extends Error {}

/** Sends until the worker answers, the deadline passes, or MAX_ATTEMPTS attempts died in transport. */
export async function forwardWithRetry(deps: ForwardDeps, deadlineMs = FORWARD_DEADLINE_MS, maxAttempts = MAX_ATTEMPTS): Promise<ForwardOutcome> {
  const end = deps.now() + deadlineMs;
  let attempts = 0;
  let lastError = 'no worker was ready';
  let lastGen = -1;
  for (;;) {
    const gen = deps.generation();
    if (gen === null || gen === lastGen) {
      // No worker, or the one that just failed us: wait for the next (bounded, then look again).
      const left = end - deps.now();
      if (left <= 0) return { kind: 'timeout', attempts, lastError };
      await deps.nextWorker(gen ?? lastGen, Math.min(left, 250));
      if (deps.generation() === lastGen && deps.now() < end) {
        // Still the same worker after a pause: a transient failure (it is alive), try it again.
        lastGen = -1;
      }
      continue;
    }
    if (attempts >= maxAttempts) return { kind: 'poison', attempts, lastError };
    attempts += 1;
    try {
      return { kind: 'reply', reply: await deps.send(), attempts };
    } catch (e) {
      lastError = e instanceof Error ? e.message : String(e);
      lastGen = gen;
      if (e instanceof UnreachedError) attempts -= 1;
    }
  }
}

interface Pending {
  readonly resolve: (r: Reply) => void;
  readonly reject: (e: Error) => void;
  readonly deadline: number;
  readonly timeoutMs: number;
}

interface Link {
  readonly gen: number;
  readonly socket: Socket;
  readonly pending: Map<number, Pending>;
  /** Connected: from then on a failure may have cut a call the worker had (it counts as a death). */
  connected: boolean;
}

/** How often calls past their deadline are failed (one timer per link, not one per call). */
const SWEEP_MS = 100;

/**
 * The supervisor's end of the framed link (frames.ts): one connection to the worker of each
 * generation, opened on the first call to it, carrying every call. When the connection closes
 * (the worker died or is stopping) or a call outlives its time, the call fails in transport and
 * forwardWithRetry sends it again, to the next worker.
 */
export class WorkerLink {
  private link: Link | null = null;
  private nextId = 1;
  private sweeper: NodeJS.Timeout | null = null;
  private readonly path: string;

  constructor(socketPath: string) {
    this.path = socketPath;
  }

  /** One call to the worker of generation `gen`; rejects only on transport errors (no answer). */
  send(gen: number, method: string, body: string, timeoutMs: number): Promise<Reply> {
    const link = this.connect(gen);
    const i = this.nextId++;
    return new Promise((resolve, reject) => {
      link.pending.set(i, { resolve, reject, deadline: performance.now() + Math.max(1, timeoutMs), timeoutMs });
      this.sweeper ??= setInterval(() => this.sweep(), SWEEP_MS).unref();
      sendFrame(link.socket, { i, m: method, b: body });
    });
  }

  close(): void {
    this.link?.socket.destroy();
    this.link = null;
  }

  private connect(gen: number): Link {
    if (this.link && this.link.gen === gen && !this.link.socket.destroyed) return this.link;
    // An older worker's link: calls still on it finish or fail with it.
    this.link?.socket.end();
    const link: Link = { gen, socket: createConnection(this.path), pending: new Map(), connected: false };
    link.socket.once('connect', () => (link.connected = true));
    readFrames(link.socket, (msg) => {
      const r = msg as FrameReply;
      const p = link.pending.get(r.i);
      if (!p) return;
      link.pending.delete(r.i);
      p.resolve({ status: r.s, body: r.b });
    });
    const fail = (e?: Error) => {
      const why = !link.connected
        ? new UnreachedError(`could not reach the worker: ${e?.message ?? 'the connection closed before it was made'}`)
        : new Error(e ? `the link to the worker failed: ${e.message}` : 'the worker closed the connection mid-call');
      for (const p of link.pending.values()) p.reject(why);
      link.pending.clear();
      if (this.link === link) this.link = null;
    };
    link.socket.on('error', fail);
    link.socket.on('close', () => fail());
    this.link = link;
    return link;
  }

  private sweep(): void {
    const now = performance.now();
    const p = this.link?.pending;
    for (const [i, call] of p ?? []) {
      if (call.deadline > now) continue;
      p?.delete(i);
      call.reject(new Error(`no answer from the worker within ${call.timeoutMs} ms`));
    }
    if (!p || p.size === 0) {
      if (this.sweeper) clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }
}
