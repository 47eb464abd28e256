// Compare-and-set on the cluster's KV bucket: every write a host makes to a key another host may
// write too (a network's record, its VNI and subnet keys, an address block, an expired host's
// keys) goes through these, so hosts racing for one key all end up with the winner's value.
import type { KV } from '@nats-io/kv';
import { DriverError } from '../../errors.ts';

/** Tries of a compare-and-set that keeps losing races before it is an error. */
export const CREATE_ATTEMPTS = 5;

/** A short, growing wait between tries of a compare-and-set that lost a race. */
export const pause = (attempt: number) => new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 10));

/** The JetStream answer to a put or delete whose expected revision is not the key's (a compare-and-set lost). */
export function isWrongRevision(e: unknown): boolean {
  const code = (e as { api_error?: { err_code?: number }; code?: unknown } | null)?.api_error?.err_code;
  return code === 10071 || /wrong last sequence/i.test(e instanceof Error ? e.message : String(e));
}

/** Deletes `key` if its revision is still `rev`; false when it is not (a compare-and-set lost). */
export async function deleteAt(kv: KV, key: string, rev: number): Promise<boolean> {
  try {
    await kv.delete(key, { previousSeq: rev });
    return true;
  } catch (e) {
    if (isWrongRevision(e)) return false;
    throw e;
  }
}

/**
 * Deletes `key`, which this host's watch saw at `rev`, if `still` says so of its value. When the
 * bucket holds it at another revision it is read again and, still there and still to go, deleted
 * at the bucket's: the key was written again since, or the watch is served by a replica whose
 * sequence numbers are not the stream's (seen after a power cut of a host of a two-server
 * cluster: a host's key at 22 in its watch, at 18 in the bucket, and it stayed for good).
 */
export async function deleteSeen(kv: KV, key: string, rev: number, still: (value: string) => boolean): Promise<boolean> {
  if (await deleteAt(kv, key, rev)) return true;
  const cur = await kv.get(key);
  return cur?.operation === 'PUT' && still(cur.string()) && (await deleteAt(kv, key, cur.revision));
}

/** The revision of the deletion of `record`, or null when it is there again (or its history is gone). */
async function deletedAt(kv: KV, record: string): Promise<number | null> {
  const e = await kv.get(record);
  return e && e.operation !== 'PUT' ? e.revision : null;
}

/**
 * Deletes `keys` of something whose `record` this host has just deleted, each at the revision its
 * watch saw; one refused there (written again since, or a watch whose revisions are not the
 * bucket's: see deleteSeen) is read again and deleted at the bucket's revision when it was written
 * before the record's deletion. Written after, it is whoever made the record again's, and stays;
 * so do all when the record is there again. Returns how many it deleted.
 */
export async function deleteWrittenBefore(kv: KV, record: string, keys: Iterable<readonly [string, number]>): Promise<number> {
  let gone: { readonly rev: number | null } | null = null;
  let removed = 0;
  for (const [k, rev] of keys) {
    if (await deleteAt(kv, k, rev)) {
      removed++;
      continue;
    }
    gone ??= { rev: await deletedAt(kv, record) };
    if (gone.rev === null) continue;
    const cur = await kv.get(k);
    if (cur?.operation === 'PUT' && cur.revision < gone.rev && (await deleteAt(kv, k, cur.revision))) removed++;
  }
  return removed;
}

/** Writes `value` to `key` again if its revision is still `rev` (compare-and-set); false when not. */
export async function rewrite(kv: KV, key: string, value: string, rev: number): Promise<boolean> {
  try {
    await kv.update(key, value, rev);
    return true;
  } catch (e) {
    if (isWrongRevision(e)) return false;
    throw e;
  }
}

/**
 * Compare-and-set: true when this call created the key, false when it existed. A create that
 * loses a race ("wrong last sequence") against another host's create or delete of the same key,
 * read back from a replica that has not seen the winner's write yet, is tried again: the conflict
 * itself proves the key moved, so a later read settles who holds it.
 */
export async function tryCreate(kv: KV, key: string, value: string): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      await kv.create(key, value);
      return true;
    } catch (e) {
      const now = await kv.get(key);
      if (now && now.operation === 'PUT') return false;
      if (attempt >= CREATE_ATTEMPTS || !isWrongRevision(e)) {
        throw new DriverError('LN_ERR_CLUSTER_UNAVAILABLE', `the cluster KV bucket refused ${key}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
      await pause(attempt);
    }
  }
}

/**
 * Who holds `key`: `value` after creating it, or after writing it again when it already held
 * `value` (a new revision, which a retiring host's compare-and-set then misses), or whoever else
 * created it first.
 */
export async function ownerOf(kv: KV, key: string, value: string): Promise<string> {
  for (let attempt = 1; attempt <= CREATE_ATTEMPTS; attempt++) {
    if (await tryCreate(kv, key, value)) return value;
    const e = await kv.get(key);
    if (e?.operation !== 'PUT') continue; // removed meanwhile: create it
    if (e.string() !== value) return e.string();
    if (await rewrite(kv, key, value, e.revision)) return value;
    await pause(attempt);
  }
  throw new DriverError('LN_ERR_CLUSTER_UNAVAILABLE', `the cluster KV bucket: ${key} kept changing`);
}

/** Is any of these keys still in the bucket? */
export async function anyLive(kv: KV, keys: readonly { key: string }[]): Promise<boolean> {
  for (const { key } of keys) if ((await kv.get(key))?.operation === 'PUT') return true;
  return false;
}

/** How long a key listing may go without a new key before it is dropped and made again (listKeys). */
const LIST_STALL_MS = 1_000;
/** Listings dropped for stalling before the last one, which may wait longer. */
const LIST_ATTEMPTS = 4;
/**
 * How long the last listing may go without a new key: past the listing consumer's idle heartbeat
 * (5 s), at which the NATS client ends a listing whose last message never comes.
 */
const LAST_STALL_MS = 15_000;
/** How long any one listing may take, keys coming or not. */
const LIST_MAX_MS = 30_000;
/** How long a dropped listing is waited for to end. */
const STOP_WAIT_MS = 1_000;

/** The waits of listKeys (tests shorten them). */
export interface ListTiming {
  stallMs: number;
  lastStallMs: number;
  maxMs: number;
}
const LIST_TIMING: ListTiming = { stallMs: LIST_STALL_MS, lastStallMs: LAST_STALL_MS, maxMs: LIST_MAX_MS };

/**
 * Every key of `kv` matching `filter`. `kv.keys()` lists through an ordered consumer that ends at
 * the message with nothing pending after it, or at the consumer's idle heartbeat; when a key
 * changes while it is listed, that message may never come and the listing waits for the heartbeat
 * (seen with two hosts creating one cluster network: 3 joins in 15 took 30 s), and while keys are
 * rewritten without a pause (heartbeats of several hosts) the consumer is never idle and the
 * listing never ends. So:
 * - a key that comes a second time ends the listing: the consumer delivers each key's last
 *   message as of its start in stream order, then every later write, so a key again is a write
 *   made after the listing began and every key before it has come (an ordered consumer that is
 *   reset after a lost message replays from its last stream sequence and could repeat one sooner:
 *   that listing can miss a key rewritten meanwhile, which every caller tolerates as a key made
 *   just after its listing);
 * - a listing that goes `stallMs` without a key is dropped and made again (the next one starts
 *   from the bucket as it is then); the last of LIST_ATTEMPTS may wait `lastStallMs`;
 * - no listing takes more than `maxMs`; one that stalls or overruns the last time is an error
 *   naming the filter, never a wait without end.
 */
export async function listKeys(kv: KV, filter: string, timing: ListTiming = LIST_TIMING): Promise<string[]> {
  for (let attempt = 1; attempt <= LIST_ATTEMPTS; attempt++) {
    const last = attempt === LIST_ATTEMPTS;
    const keys = await listOnce(kv, filter, last ? timing.lastStallMs : timing.stallMs, timing.maxMs);
    if (keys) return keys;
  }
  throw new DriverError('LN_ERR_CLUSTER_UNAVAILABLE', `the cluster KV bucket: a listing of ${filter} stalled ${LIST_ATTEMPTS} times (the NATS server is slow or the bucket is written without a pause)`);
}

/** One listing of `filter`: its keys, or undefined when it went `stallMs` without a key or took `maxMs`. */
async function listOnce(kv: KV, filter: string, stallMs: number, maxMs: number): Promise<string[] | undefined> {
  const iter = await kv.keys(filter);
  const seen = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let gaveUp: () => void = () => undefined;
  const stall = new Promise<false>((resolve) => (gaveUp = () => resolve(false)));
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(gaveUp, stallMs);
  };
  const deadline = setTimeout(gaveUp, maxMs);
  arm();
  let done = false;
  const whole = (async () => {
    for await (const k of iter) {
      if (done || seen.has(k)) break;
      seen.add(k);
      arm();
    }
    return true as const;
  })();
  try {
    if (await Promise.race([whole, stall])) return [...seen];
    return undefined;
  } finally {
    done = true;
    clearTimeout(timer);
    clearTimeout(deadline);
    iter.stop();
    await Promise.race([whole.catch(() => undefined), new Promise((r) => setTimeout(r, STOP_WAIT_MS).unref())]);
  }
}
