// Docker's empty-body retries (moby#39331) of calls an earlier supervisor was cut off in: which
// journaled call each one repeats, if that can be known, and its answer (journal.ts has the rules).
import { cutOffRetryErr } from '../errors.ts';
import type { Log } from './log.ts';
import { errReply as err, type Reply } from './forward.ts';
import type { Journal } from './journal.ts';
import { RETRY_BATCH_MS, RETRY_GATHER_MS, teardownReply, type Match } from './retry-match.ts';

/**
 * The worker's internal calls that answer an empty retry of these methods from its model when no
 * journal entry matches (src/api/external-retry.ts and join-retry.ts spell them too).
 */
export const EXTERNAL_RETRY = 'Ledgernet.ExternalRetry';
export const JOIN_RETRY = 'Ledgernet.JoinRetry';
export const CREATE_RETRY = 'Ledgernet.CreateRetry';
export const DELETE_RETRY = 'Ledgernet.DeleteRetry';
export const NETWORK_RETRY = 'Ledgernet.NetworkRetry';
const INFERRED = new Map([
  ['NetworkDriver.CreateNetwork', NETWORK_RETRY],
  ['NetworkDriver.ProgramExternalConnectivity', EXTERNAL_RETRY],
  ['NetworkDriver.Join', JOIN_RETRY],
  ['NetworkDriver.CreateEndpoint', CREATE_RETRY],
  ['NetworkDriver.DeleteEndpoint', DELETE_RETRY],
]);
/**
 * Inferred answers that stay right when the call they repeat was done and only its reply lost
 * (see the `undelivered` check below): a deferred CreateEndpoint creates nothing until a Join
 * names an endpoint ledgernet does not know, and a CreateEndpoint that was done made it known; a
 * deferred CreateNetwork takes only a network ledgernet does not know from Docker's API, and one
 * that was done made it known; a DeleteEndpoint's answer is `{}` either way, and only endpoints
 * left long ago are deleted.
 */
const SAFE_IF_ANSWERED = new Set(['NetworkDriver.CreateNetwork', 'NetworkDriver.CreateEndpoint', 'NetworkDriver.DeleteEndpoint']);
/**
 * Methods whose rules are told the calls of the method answered just before the crash (their
 * replies may not have reached Docker) and take each one's endpoint as a candidate too
 * (src/api/join-retry.ts), instead of the retry being refused.
 */
const TOLD_ANSWERED = new Set(['NetworkDriver.Join']);

/**
 * An empty retry of `method` that no entry matches can be put to the worker's rules: it has them,
 * the previous supervisor crashed recently, and no call of the method may have been answered
 * without its reply reaching Docker (unless the rules are right either way).
 */
function inferable(method: string, journal: Journal): boolean {
  return INFERRED.has(method) && journal.recentCrash() && (!journal.undelivered.has(method) || SAFE_IF_ANSWERED.has(method) || TOLD_ANSWERED.has(method));
}

/** What the worker is told with the question: for ProgramExternalConnectivity, the Joins, Leaves and Revokes the journal kept; for Join, the Joins answered just before the crash. */
function askBody(method: string, journal: Journal): string {
  if (TOLD_ANSWERED.has(method)) return JSON.stringify({ answered: journal.undeliveredCalls.filter((c) => c.method === method).flatMap((c) => jsonOf(c.body)) });
  if (method !== 'NetworkDriver.ProgramExternalConnectivity') return '{}';
  const recent = journal.recent;
  const joins = recent.filter((e) => e.method === 'NetworkDriver.Join').flatMap((e) => jsonOf(e.body));
  const teardowns = recent.filter((e) => e.method !== 'NetworkDriver.Join').flatMap((e) => jsonOf(e.body));
  return JSON.stringify({ joins, teardowns });
}

/** A journaled call's body as JSON, or nothing when it does not parse (the worker then refuses what it cannot match). */
function jsonOf(body: string): unknown[] {
  try {
    return [JSON.parse(body) as unknown];
  } catch {
    return [];
  }
}

export type Forward = (method: string, body: string) => Promise<Reply>;

// Empty retries of calls cut off at the same moment (this supervisor's predecessor died) come
// on the same backoff schedule, so they arrive together: gather those of one method for
// RETRY_BATCH_MS and count them against the journal (see matchEmptyRetries). Fewer retries than
// journaled calls of the method: the others' retries may be late (dockerd's goroutines under
// load), so the batch stays open, RETRY_BATCH_MS at a time, for up to RETRY_GATHER_MS; counted
// too early, the batch would be refused as ambiguous and its entries used up.
function retryClaimer(journal: Journal): (method: string) => Promise<Match> {
  const batches = new Map<string, ((m: Match) => void)[]>();
  const live = (method: string) => journal.pending.filter((e) => e.method === method).length;
  return (method) => {
    if (live(method) === 0) return Promise.resolve({ kind: 'none' });
    return new Promise((resolve) => {
      let batch = batches.get(method);
      if (!batch) {
        const b: ((m: Match) => void)[] = [];
        batch = b;
        batches.set(method, b);
        const opened = Date.now();
        const decide = () => {
          if (b.length < live(method) && Date.now() - opened + RETRY_BATCH_MS <= RETRY_GATHER_MS) {
            setTimeout(decide, RETRY_BATCH_MS);
            return;
          }
          batches.delete(method);
          const m = journal.claim(method, b.length, inferable(method, journal));
          for (const r of b) r(m);
        };
        setTimeout(decide, RETRY_BATCH_MS);
      }
      batch.push(resolve);
    });
  };
}

/**
 * Docker's retry of a call whose first attempt was cut off (moby#39331): a Reply of its own, the
 * journal's entry to send again, or null when the journal knows no such call.
 */
async function emptyRetry(method: string, journal: Journal, claim: (method: string) => Promise<Match>, redo: (m: Match & { kind: 'redoAll' }) => Promise<Reply>, forward: Forward, log: Log): Promise<Reply | { body: string; id: string } | null> {
  const m = await claim(method);
  if (m.kind === 'redoAll') return redo(m);
  const teardown = m.kind === 'replay' || !journal.recentCrash() ? null : teardownReply(method);
  if (teardown !== null) {
    log.warn({ method, match: m.kind }, 'empty-body retry of a teardown call that the journal cannot identify: answered as done (the DeleteEndpoint that follows does its work)');
    return { status: 200, body: teardown };
  }
  if (m.kind === 'ambiguous') {
    log.error({ method, calls: m.count }, 'an empty-body retry matches several cut-off calls; refused');
    return err(500, cutOffRetryErr(`, and ${m.count} such calls were cut off at once, so ledgernet cannot tell which one this is`));
  }
  if (m.kind === 'replay') {
    log.warn({ method, receivedAt: new Date(m.entry.t).toISOString() }, 'answering Docker\'s empty-body retry from the request journal');
    return m.entry;
  }
  const ask = INFERRED.get(method);
  if (ask && journal.recentCrash()) {
    // Cut off before it was journaled: the worker's model (and the calls the journal keeps) may still tell.
    if (journal.undelivered.has(method) && !SAFE_IF_ANSWERED.has(method) && !TOLD_ANSWERED.has(method)) {
      log.error({ method }, 'an empty-body retry after a supervisor crash matches no journaled call, and a call of this method was answered just before the crash (its reply may not have reached Docker): refused');
      return err(500, cutOffRetryErr(', and a call of this kind was answered just as ledgernet was stopped, so ledgernet cannot tell which call this repeats'));
    }
    return forward(ask, askBody(method, journal));
  }
  if (journal.recentCrash()) {
    log.error({ method }, 'an empty-body retry after a supervisor crash matches no journaled call (cut off before the dead supervisor had journaled its body, or after it had marked it answered); the worker refuses it');
  }
  return null;
}

/**
 * Does every call of a 'redoAll' match again (once per batch, however many retries share it) and
 * gives each retry the common answer if all succeeded (or `anyway`), else a clear Err (which
 * retry belongs to the failed call cannot be told). The calls are marked answered before any
 * retry is.
 */
function redoer(journal: Journal, forward: Forward, log: Log): (m: Match & { kind: 'redoAll' }) => Promise<Reply> {
  const done = new WeakMap<Match, Promise<Reply>>();
  const run = async (m: Match & { kind: 'redoAll' }): Promise<Reply> => {
    const method = m.entries[0]?.method ?? '';
    const replies = await Promise.all(m.entries.map((e) => forward(e.method, e.body)));
    for (const e of m.entries) journal.answered(e.id);
    // The retries of calls cut off before they were journaled, one at a time, each seeing the
    // effects of those done before it (INFERRED has the method whenever `inferred` is set).
    const ask = INFERRED.get(method);
    for (let i = 0; ask && i < (m.inferred ?? 0); i++) replies.push(await forward(ask, askBody(method, journal)));
    const failed = replies.map(errOf).filter((e): e is string => e !== null);
    if (failed.length > 0 && m.anyway) {
      log.warn({ method, calls: m.entries.length, failed }, 'empty-body retries of teardown calls: every one done again (some failed; Docker only logs their errors), each answered as done');
      return { status: 200, body: m.reply };
    }
    if (failed.length === 0) {
      log.warn({ method, calls: m.entries.length, ...(m.inferred ? { inferred: m.inferred } : {}) }, 'empty-body retries of calls cut off together: every one done again (and those never journaled answered by the worker\'s rules), each answered with the common reply');
      return { status: 200, body: m.reply };
    }
    log.error({ method, calls: m.entries.length, ...(m.inferred ? { inferred: m.inferred } : {}), failed }, 'empty-body retries of calls cut off together: some failed when done again; refused');
    return err(500, cutOffRetryErr(`; ${m.entries.length + (m.inferred ?? 0)} such calls were cut off at once and ${failed.length} of them failed when done again (${failed[0]}), and ledgernet cannot tell which one this is`, { unchanged: false }));
  };
  return (m) => {
    let p = done.get(m);
    if (!p) done.set(m, (p = run(m)));
    return p;
  };
}

/** The Err of a worker's reply, or null when it succeeded. */
function errOf(r: Reply): string | null {
  let e: unknown = null;
  try {
    e = (JSON.parse(r.body) as { Err?: unknown } | null)?.Err ?? null;
  } catch {
    e = r.body;
  }
  if (r.status === 200 && (e === null || e === '')) return null;
  return typeof e === 'string' && e !== '' ? e : `HTTP ${r.status}`;
}

/**
 * Answers an empty-body call of `method`: a Reply of its own, the journal's entry to send again
 * (with its id, to mark it answered), or null when the journal knows no such call.
 */
export function emptyRetries(journal: Journal, forward: Forward, log: Log): (method: string) => Promise<Reply | { body: string; id: string } | null> {
  const claim = retryClaimer(journal);
  const redo = redoer(journal, forward, log);
  return (method) => emptyRetry(method, journal, claim, redo, forward, log);
}
