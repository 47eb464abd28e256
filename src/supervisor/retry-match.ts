// Which of the calls an earlier supervisor left unanswered in the request journal (journal.ts) an
// empty-body retry of Docker's (moby#39331) repeats, if that can be known, and the calls whose
// retry can be answered without knowing it. Pure rules; retries.ts applies them.

/**
 * Docker's retry budget is 30 s counted from the first attempt (the retries after an EOF come 1,
 * 2, 4 and 8 s apart, so in practice within ~15 s). An entry older than this can have no retry.
 */
export const RETRY_WINDOW_MS = 30_000;

export interface Entry {
  readonly id: string;
  /** ms since the epoch, at receipt */
  readonly t: number;
  readonly method: string;
  readonly body: string;
}

export type Match =
  | { readonly kind: 'none' }
  | { readonly kind: 'replay'; readonly entry: Entry }
  /**
   * Redo every entry; then each retry gets `reply` (the same for every call) if all succeeded, or
   * whatever happened when `anyway` (a method whose errors Docker only logs).
   */
  | {
      readonly kind: 'redoAll';
      readonly entries: readonly Entry[];
      readonly reply: string;
      readonly anyway: boolean;
      /** Retries beyond the entries (calls cut off before they were journaled): each answered by the worker's rules, after the entries were done. */
      readonly inferred?: number;
    }
  | { readonly kind: 'ambiguous'; readonly count: number };

/**
 * Methods whose successful answer can be the same for every call, so that a retry need not be
 * told apart from the others cut off with it.
 *
 * CreateNetwork and ProgramExternalConnectivity answer `{}` when done. So does CreateEndpoint:
 * it sets the MAC on the container-side veth at creation, and Docker keeps an interface's own MAC
 * when the answer names none (observed-docker.md). Their errors fail a docker command, so they
 * need `exact`: as many retries as calls (then each retry is one of them) and every one redone
 * successfully. Join (`SrcName`, the endpoint's own veth), RequestPool and RequestAddress (the
 * pool, the address) have answers of their own, so a wrong pick would cross containers: never.
 *
 * Teardown calls answer `{}` and Docker only logs their errors (protocol.md §2): whatever the
 * count, every journaled one is done again (each is a removal Docker asked for) and each retry
 * gets `{}`. A retry of a call cut off before it was journaled then gets `{}` for work not done,
 * which Docker could not have acted on either way: its endpoint is released by docker-sync
 * (operator/abandoned.ts), its address or pool by `ledgernet repair`.
 */
const CALL_INDEPENDENT = new Map<string, { readonly reply: string; readonly exact: boolean }>([
  ...['NetworkDriver.CreateNetwork', 'NetworkDriver.CreateEndpoint', 'NetworkDriver.ProgramExternalConnectivity'].map((m): [string, { reply: string; exact: boolean }] => [m, { reply: '{}', exact: true }]),
  ...['NetworkDriver.Leave', 'NetworkDriver.RevokeExternalConnectivity', 'NetworkDriver.DeleteEndpoint', 'NetworkDriver.DeleteNetwork', 'IpamDriver.ReleaseAddress', 'IpamDriver.ReleasePool'].map(
    (m): [string, { reply: string; exact: boolean }] => [m, { reply: '{}', exact: false }],
  ),
]);

/** How long the supervisor gathers the empty retries of one method before it decides. */
export const RETRY_BATCH_MS = 500;
/**
 * How long a batch with fewer retries than journaled calls of its method waits for the others
 * (Docker retries every cut-off call 1 s after its failure, all on one schedule: a retry seconds
 * later than the others means a dockerd starved of CPU, or a call whose retry never comes).
 */
export const RETRY_GATHER_MS = 2_500;

/**
 * What to do with `retries` empty-body calls of `method` that arrived together at `now`, given
 * the entries an earlier supervisor left unanswered (not yet used for a retry).
 *
 * One retry and one live candidate: replay it (as a full retry; every handler is idempotent).
 * No candidate: 'none' (the worker refuses the empty body). Anything else is refused: an empty
 * retry carries nothing that tells which call it repeats, and a wrong pick would hand Docker
 * another endpoint's veth (Join) or address (RequestAddress), or answer `{}` for work never
 * done (ProgramExternalConnectivity's ports, CreateNetwork's bridge). More
 * retries than candidates means a call was cut off before it was journaled (still in the
 * listen backlog when the supervisor died), so even one candidate is not enough then. A clear
 * Err costs one failed docker command; a wrong answer corrupts Docker's state.
 *
 * Except for a CALL_INDEPENDENT method: an `exact` one when there are exactly as many retries
 * as candidates (Docker retries every cut-off call on the same backoff schedule from the same
 * instant, so they arrive in one batch; a call cut off before it was journaled would make one
 * retry more), the others always. Every candidate is done again, and the common answer is right
 * for each retry, whichever call it repeats.
 */
export function matchEmptyRetries(candidates: readonly Entry[], method: string, now: number, retries: number, inferable = false): Match {
  const live = candidates.filter((e) => e.method === method && now - e.t >= 0 && now - e.t < RETRY_WINDOW_MS);
  if (live.length === 0) return { kind: 'none' };
  const common = CALL_INDEPENDENT.get(method);
  const one = live.length === 1 && retries === 1;
  if (common && !one && (!common.exact || retries === live.length)) return { kind: 'redoAll', entries: live, reply: common.reply, anyway: !common.exact };
  // More retries than entries: the extra ones are calls cut off before they were journaled. Where
  // the worker has rules for such a retry (`inferable`, retries.ts), every entry is done again
  // and each extra retry asked of them; all succeeded: the common answer is right for each.
  if (common?.exact && inferable && retries > live.length) return { kind: 'redoAll', entries: live, reply: common.reply, anyway: false, inferred: retries - live.length };
  if (live.length > 1 || retries > 1) return { kind: 'ambiguous', count: Math.max(live.length, retries) };
  return { kind: 'replay', entry: live[0] as Entry };
}

/**
 * Calls whose empty retry may be answered without knowing which call it repeats, when the journal
 * holds none of them (the call was cut off before it was journaled): their work is read-only or
 * done again by the DeleteEndpoint that always follows them in Docker's teardown (stop,
 * disconnect, rm: Revoke, Leave, DeleteEndpoint). EndpointOperInfo only feeds `docker inspect`;
 * `{"Value":{}}` is what an unknown endpoint gets. Only used within RETRY_WINDOW_MS of a
 * supervisor crash: otherwise an empty body is plain bad input and gets the worker's Err.
 * Leave's and Revoke's records stay until that DeleteEndpoint removes the endpoint and its ports
 * (residual: a Revoke when Docker moves a container's gateway to another network keeps the old
 * endpoint's published ports until it is deleted). Every other method gets a clear Err.
 */
export function teardownReply(method: string): string | null {
  switch (method) {
    case 'NetworkDriver.EndpointOperInfo':
      return '{"Value":{}}';
    case 'NetworkDriver.Leave':
    case 'NetworkDriver.RevokeExternalConnectivity':
      return '{}';
    default:
      return null;
  }
}

