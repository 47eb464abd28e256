// Who made an event happen (the envelope's `cause`, see Cause in types.ts): the makers, and the
// words `ledgernet events` and `ledgernet audit` show it in.
import type { Cause } from './types.ts';

// One frozen object per call or part, shared by every event that records it (the store keeps
// recent events in memory).
const dockerCalls = new Map<string, Cause>();
const parts = new Map<string, Cause>();

/** What a Docker plugin call (`call`: its method) records. */
export function byDocker(call: string): Cause {
  let c = dockerCalls.get(call);
  if (!c) dockerCalls.set(call, (c = Object.freeze({ by: 'docker', call })));
  return c;
}

/** What ledgernet records on its own; `what` names the part (`reconciler`, `docker-sync`, …). */
export function byLedgernet(what: string): Cause {
  let c = parts.get(what);
  if (!c) parts.set(what, (c = Object.freeze({ by: 'ledgernet', what })));
  return c;
}

/** The longest `--reason` an operator may give (characters). */
export const REASON_MAX = 500;

/**
 * An operator's reason as recorded, or why it cannot be: one line of printable text, at most
 * REASON_MAX characters (it goes into the log, `events` output and every audit subscriber).
 */
export function checkReason(reason: string): string | null {
  if (reason.trim() === '') return '--reason is empty';
  if (reason.length > REASON_MAX) return `--reason is ${reason.length} characters long; at most ${REASON_MAX}`;
  if (/[\p{Cc}\p{Cs}]/u.test(reason)) return '--reason holds a control character (a line break, a tab, an escape…); give one line of text';
  return null;
}

/**
 * One readable phrase: `docker NetworkDriver.CreateNetwork`, `operator alice (uid 0, pid 4242)
 * release: "ticket 42"`, `ledgernet docker-sync`.
 */
export function describeCause(cause: Cause): string {
  switch (cause.by) {
    case 'docker':
      return `docker ${cause.call}`;
    case 'operator': {
      const ids = [cause.uid === undefined ? null : `uid ${cause.uid}`, cause.pid === undefined ? null : `pid ${cause.pid}`].filter((x) => x !== null);
      const who = [cause.user, ids.length > 0 ? `(${ids.join(', ')})` : null].filter((x) => x !== null && x !== undefined).join(' ');
      return `operator${who ? ` ${who}` : ''} ${cause.command}${cause.reason === undefined ? '' : `: ${JSON.stringify(cause.reason)}`}`;
    }
    case 'ledgernet':
      return `ledgernet ${cause.what}`;
    default:
      // A record of a newer ledgernet: show what it holds.
      return JSON.stringify(cause);
  }
}
