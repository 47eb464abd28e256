// Forwarding one Docker call to the worker, across worker crashes: a transport error (the worker
// died before or while handling the call, or is restarting) waits for the next worker and sends
// the same request again with its full body. Every handler is idempotent, as it must already be
// for Docker's own full-body retries. An answer from the worker, whatever its status, is final.
import { Agent, request } from 'node:http';

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
    }
  }
}

/**
 * Kept-alive connections to the worker (pooled per socket path): a call costs no connect and no
 * accept (row 6: the supervisor's largest cost per call was `internalConnect`). An idle one is
 * closed after IDLE_MS, long before the worker's keep-alive timeout (fastify: 72 s), so a call
 * never goes out on a connection the worker is closing for idleness; one the worker closes by
 * dying fails the attempt in transport, and forwardWithRetry sends it again.
 */
const IDLE_MS = 4_000;
const workerAgent = new Agent({ keepAlive: true, timeout: IDLE_MS, scheduling: 'lifo' });

/** One HTTP POST of `method` with `body` to the worker's socket; rejects on transport errors only. */
export function postToWorker(socketPath: string, method: string, body: string, timeoutMs: number): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        method: 'POST',
        path: `/${method}`,
        agent: workerAgent,
        headers: { 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('aborted', () => reject(new Error('the worker closed the connection mid-reply')));
        res.on('end', () => resolve({ status: res.statusCode ?? 500, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.setTimeout(Math.max(1, timeoutMs), () => req.destroy(new Error(`no answer from the worker within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
