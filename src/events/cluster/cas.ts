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
/** Listings dropped for stalling before the last one is let run to its end. */
const LIST_ATTEMPTS = 4;

/**
 * Every key of `kv` matching `filter`. `kv.keys()` lists through an ordered consumer that ends at
 * the message with nothing pending after it, or at the consumer's idle heartbeat; when a key
 * changes while it is listed, that message may never come and the listing waits for the heartbeat,
 * 30 s (seen with two hosts creating one cluster network: 3 joins in 15 took 30 s). A listing that
 * goes LIST_STALL_MS without a key is therefore dropped and made again (the next one starts from
 * the bucket as it is then); the last of LIST_ATTEMPTS runs to its end. A key rewritten while it is
 * listed can come more than once: each is returned once.
 */
export async function listKeys(kv: KV, filter: string): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    const iter = await kv.keys(filter);
    const out: string[] = [];
    if (attempt >= LIST_ATTEMPTS) {
      for await (const k of iter) out.push(k);
      return [...new Set(out)];
    }
    let timer: NodeJS.Timeout | undefined;
    let stalled: () => void = () => undefined;
    const stall = new Promise<false>((resolve) => (stalled = () => resolve(false)));
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(stalled, LIST_STALL_MS);
    };
    arm();
    const whole = (async () => {
      for await (const k of iter) {
        out.push(k);
        arm();
      }
      return true as const;
    })();
    try {
      if (await Promise.race([whole, stall])) return [...new Set(out)];
    } finally {
      clearTimeout(timer);
    }
    iter.stop();
    await whole.catch(() => undefined);
  }
}
