// A host's own keys in the cluster's KV bucket (its member and endpoint keys): written again from
// its log when it may have missed something (an outage, a restart, being expired by the others),
// and removed by the host that expires it. Every removal is a compare-and-set on the revision the
// remover read, so a key its host writes again in the meantime is never lost, and two hosts
// removing one expired host at once both succeed or harmlessly fail.
import type { KV } from '@nats-io/kv';

/** What a host says about itself: the cluster networks it has and its endpoints on them. */
export interface OwnKeys {
  readonly members: readonly string[];
  readonly endpoints: readonly { readonly cluster: string; readonly endpointId: string; readonly address: string; readonly mac: string }[];
}

const enc = (v: unknown) => JSON.stringify(v);

/** The JetStream answer to a put or delete whose expected revision is not the key's (a compare-and-set lost). */
export function isWrongRevision(e: unknown): boolean {
  const code = (e as { api_error?: { err_code?: number }; code?: unknown } | null)?.api_error?.err_code;
  return code === 10071 || /wrong last sequence/i.test(e instanceof Error ? e.message : String(e));
}

/** How long listing keys may take: a listing whose consumer stalls is given up, and the caller tries again later. */
const LIST_TIMEOUT_MS = 8_000;

/** The keys matching `filter`; throws when the listing does not finish in time. */
async function listKeys(kv: KV, filter: string): Promise<string[]> {
  const it = await kv.keys(filter);
  const out: string[] = [];
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      it.stop();
      reject(new Error(`listing the keys ${filter} of the cluster's KV bucket took over ${LIST_TIMEOUT_MS / 1000} s`));
    }, LIST_TIMEOUT_MS);
  });
  try {
    await Promise.race([(async () => { for await (const k of it) out.push(k); })(), late]);
  } finally {
    clearTimeout(timer);
  }
  return out;
}

/** The member and endpoint keys of `host` with their revisions. */
async function keysOf(kv: KV, host: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const filter of [`members.*.${host}`, `endpoints.*.${host}.*`]) {
    for (const k of await listKeys(kv, filter)) {
      const e = await kv.get(k);
      if (e && e.operation === 'PUT') out.set(k, e.revision);
    }
  }
  return out;
}

/**
 * Writes `own()` for `host` and removes its keys that it no longer has. `own` is asked after the
 * bucket is read, so a key published meanwhile is in both and never deleted here.
 */
export async function syncOwnKeys(kv: KV, host: string, vtep: string, ownNow: () => OwnKeys): Promise<void> {
  const have = await keysOf(kv, host);
  const own = ownNow();
  const want = new Map<string, string>();
  for (const m of own.members) want.set(`members.${m}.${host}`, enc({ host, vtep }));
  for (const e of own.endpoints) want.set(`endpoints.${e.cluster}.${host}.${e.endpointId}`, enc({ host, vtep, endpointId: e.endpointId, address: e.address, mac: e.mac }));
  for (const [k, v] of want) await kv.put(k, v);
  for (const [k, rev] of have) {
    if (!want.has(k)) await kv.delete(k, { previousSeq: rev }).catch((e: unknown) => { if (!isWrongRevision(e)) throw e; });
  }
}

/**
 * Removes an expired host: its keys as read now, then (a compare-and-set) its record at `rev`, the
 * revision this host saw, or, when it saw none, only while there still is none. Returns how many
 * keys were removed, or null when the host is back (or another host removed it first).
 */
export async function reapHost(kv: KV, host: string, rev: number | null): Promise<number | null> {
  // Read before the record goes: a host only writes its keys again after it finds its record gone,
  // so everything it writes then has a newer revision than these and survives the deletes below.
  const keys = await keysOf(kv, host);
  const record = `hosts.${host}`;
  try {
    if (rev !== null) await kv.delete(record, { previousSeq: rev });
    else if ((await kv.get(record))?.operation === 'PUT') return null;
  } catch (e) {
    if (isWrongRevision(e)) return null;
    throw e;
  }
  let removed = 0;
  for (const [k, r] of keys) {
    try {
      await kv.delete(k, { previousSeq: r });
      removed++;
    } catch (e) {
      if (!isWrongRevision(e)) throw e;
    }
  }
  return removed;
}
