// An empty-body retry that several calls could be repeating (join-retry.ts, external-retry.ts)
// need not be refused at once: Docker sends the other calls' own requests, with their bodies, right
// after (each container start goes on by itself), and every one that names a candidate rules it
// out. The rule is asked again as the state changes, among the candidates it had when the retry
// came (an endpoint made after it cannot be its target), until one is left or the wait is over.

/** How long such a retry waits for the others to be told apart (Docker's call has no timeout; a managed plugin's 30 s, the supervisor's forward 25 s). */
export const RETRY_WAIT_MS = 10_000;
/** How often the rule is asked again (it reads the in-memory state: microseconds). */
const POLL_MS = 20;

/** A rule's verdict that more calls may still tell: the candidates it had, and why it cannot answer yet. */
export interface Wait {
  readonly kind: 'wait';
  readonly reason: string;
  readonly candidates: readonly string[];
}

/** `evaluate` until it answers something other than 'wait', or `waitMs` have passed (then its last 'wait'). */
export async function untilTold<R extends { readonly kind: string }>(evaluate: () => R | Wait, waitMs: number): Promise<R | Wait> {
  const deadline = Date.now() + waitMs;
  let r = evaluate();
  while (r.kind === 'wait' && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    r = evaluate();
  }
  return r;
}
