// A host's own keys in the cluster's KV bucket (its member and endpoint keys): written again from
// its log when it may have missed something (an outage, a restart, being expired by the others),
// and removed by the host that expires it. Every removal is a compare-and-set on the revision the
// remover read, so a key its host writes again in the meantime is never lost, and two hosts
// removing one expired host at once both succeed or harmlessly fail.
import type { KV } from '@nats-io/kv';
import { DriverError } from '../../errors.ts';
import { deleteAt, deleteSeen, deleteWrittenBefore, isWrongRevision } from './cas.ts';

/** A cluster network as this host's log has it: what the bucket is rebuilt from if it lost it. */
export interface OwnNetwork {
  readonly name: string;
  readonly subnet: string;
  readonly vni: number;
  readonly blockLen: number;
  /** The address blocks this host claimed (its log's block.claimed). */
  readonly blocks: readonly string[];
}

/** What a host says about itself: the cluster networks it has and its endpoints on them. */
export interface OwnKeys {
  readonly members: readonly string[];
  /** The networks of `members`, from the log (absent: nothing to rebuild from). */
  readonly networks?: readonly OwnNetwork[];
  readonly endpoints: readonly { readonly cluster: string; readonly endpointId: string; readonly address: string; readonly mac: string }[];
}

const enc = (v: unknown) => JSON.stringify(v);

const encoder = new TextEncoder();

/**
 * A host name as one token of a KV key, one-to-one: `A-Z a-z 0-9 - _` stay (every name that was
 * a token of its own before is unchanged), every other byte of the UTF-8 name becomes `=` and two
 * hex digits: `node1.example.com` is `node1=2eexample=2ecom`. A `.` separates a key's tokens, so
 * a host named with dots (an FQDN, the default --host where the machine's name is one) was read
 * back from its keys as another host.
 */
export function hostKey(host: string): string {
  let out = '';
  for (const ch of host) {
    if (/^[A-Za-z0-9_-]$/.test(ch)) out += ch;
    else for (const b of encoder.encode(ch)) out += `=${b.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The host name a key token stands for (`hostKey` undone). */
export function hostOfKey(token: string): string {
  try {
    return decodeURIComponent(token.replace(/=([0-9a-f]{2})/g, '%$1'));
  } catch {
    return token;
  }
}

/** `hosts.<host>`: a host's record. */
export const recordKey = (host: string) => `hosts.${hostKey(host)}`;
/** `members.<cluster>.<host>`: the host has cluster network `cluster`. */
export const memberKey = (cluster: string, host: string) => `members.${cluster}.${hostKey(host)}`;
/** `endpoints.<cluster>.<host>.<id>`: the host's endpoint on cluster network `cluster`. */
export const endpointKey = (cluster: string, host: string, endpointId: string) => `endpoints.${cluster}.${hostKey(host)}.${endpointId}`;

/**
 * The keys whose values the mirror keeps: what a cluster network is made of in the bucket, and the
 * hosts' member and endpoint keys (small; the drift check compares this host's with its log).
 */
const KEPT_VALUES = /^(networks|blocks|vnis|subnets|members|endpoints)\./;

/**
 * The bucket's keys and their revisions as this host's watch saw them (so finding a host's keys
 * costs no listing consumer, which stalled now and then under load). Complete once the watch has
 * replayed the bucket and delivered a live change (a heartbeat comes every few seconds).
 */
export class KeyMirror {
  private readonly revs = new Map<string, number>();
  /** The values of the keys KEPT_VALUES names (not the hosts' records, rewritten on every heartbeat), for `dropHost`, `forgetHost` and `driftOf`. */
  private readonly values = new Map<string, string>();
  private live = false;
  /** The bucket's revision the watch delivered last (a delete's too). */
  private upTo = 0;
  private readonly waiters = new Set<{ rev: number; done: () => void }>();

  /** One watch entry: put (its revision and value) or deleted; `isUpdate` once the replay is over; `at`: the entry's revision. */
  seen(key: string, rev: number | null, isUpdate: boolean, value: () => string = () => '', at: number = rev ?? 0): void {
    this.upTo = Math.max(this.upTo, at);
    for (const w of this.waiters) if (w.rev <= this.upTo) w.done();
    if (rev === null) {
      this.revs.delete(key);
      this.values.delete(key);
    } else {
      this.revs.set(key, rev);
      if (KEPT_VALUES.test(key)) this.values.set(key, value());
    }
    if (isUpdate) this.live = true;
  }

  /** The keys starting with `prefix`, each with its revision and value (for the kinds whose values are kept). */
  withPrefix(prefix: string): { key: string; rev: number; value: string }[] {
    if (!this.live) throw new Error("the cluster's KV watch has not caught up yet");
    return [...this.revs].filter(([k]) => k.startsWith(prefix)).map(([key, rev]) => ({ key, rev, value: this.values.get(key) ?? '' }));
  }

  get ready(): boolean {
    return this.live;
  }

  /**
   * Resolves once the watch delivered revision `rev` (this host's own write: what it reads next
   * from the mirror, `status` right after `cluster forget`, then holds it), or after `timeoutMs`
   * (a watch that stalled: the write is in the bucket all the same).
   */
  async caughtUp(rev: number, timeoutMs: number): Promise<void> {
    if (rev <= this.upTo) return;
    let timer: NodeJS.Timeout | undefined;
    const w = { rev, done: () => undefined as void };
    await new Promise<void>((resolve) => {
      w.done = resolve;
      this.waiters.add(w);
      timer = setTimeout(resolve, timeoutMs);
    }).finally(() => {
      clearTimeout(timer);
      this.waiters.delete(w);
    });
  }

  /** Is `key` in the bucket (as the watch saw it)? */
  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** `key` with its revision and value (for the kinds whose values are kept), or undefined when the bucket does not hold it. */
  get(key: string): { key: string; rev: number; value: string } | undefined {
    if (!this.live) throw new Error("the cluster's KV watch has not caught up yet");
    const rev = this.revs.get(key);
    return rev === undefined ? undefined : { key, rev, value: this.values.get(key) ?? '' };
  }

  /** The member and endpoint keys of `host` with their revisions. */
  keysOf(host: string): Map<string, number> {
    if (!this.live) throw new Error("the cluster's KV watch has not caught up yet");
    const out = new Map<string, number>();
    for (const [k, rev] of this.revs) {
      const [kind, , h, id] = k.split('.');
      if (h === hostKey(host) && ((kind === 'members' && id === undefined) || (kind === 'endpoints' && id !== undefined))) out.set(k, rev);
    }
    return out;
  }
}

/** A member key's value. */
export const memberValue = (host: string, vtep: string) => enc({ host, vtep });
/** An endpoint key's value. */
export const endpointValue = (host: string, vtep: string, ep: { readonly endpointId: string; readonly address: string; readonly mac: string }) =>
  enc({ host, vtep, endpointId: ep.endpointId, address: ep.address, mac: ep.mac });

/** The member and endpoint keys of `host` with the values its log gives them (what `syncOwnKeys` writes). */
export function ownValues(host: string, vtep: string, own: OwnKeys): Map<string, string> {
  const want = new Map<string, string>();
  for (const m of own.members) want.set(memberKey(m, host), memberValue(host, vtep));
  for (const e of own.endpoints) want.set(endpointKey(e.cluster, host, e.endpointId), endpointValue(host, vtep, e));
  return want;
}

/**
 * Does the bucket's value `held` say what `want` (an `ownValues` value) says? Every field of
 * `want` the same; fields it lacks (a newer ledgernet's) are not compared.
 */
export function sameValue(want: string, held: string): boolean {
  let h: unknown;
  try {
    h = JSON.parse(held);
  } catch {
    return false;
  }
  if (typeof h !== 'object' || h === null) return false;
  const fields = h as Record<string, unknown>;
  return Object.entries(JSON.parse(want) as Record<string, unknown>).every(([k, v]) => fields[k] === v);
}

/**
 * Writes `own()` for `host` and removes its keys that it no longer has (as the mirror knows them).
 * `own` is asked after the keys are taken, so a key published before is in both and never deleted here.
 */
export async function syncOwnKeys(kv: KV, mirror: KeyMirror, host: string, vtep: string, ownNow: () => OwnKeys): Promise<void> {
  const have = mirror.keysOf(host);
  const want = ownValues(host, vtep, ownNow());
  for (const [k, v] of want) await kv.put(k, v);
  for (const [k, rev] of have) {
    // Still not wanted when read again (a join racing this sync may have written it since).
    if (!want.has(k)) await deleteSeen(kv, k, rev, () => !ownValues(host, vtep, ownNow()).has(k));
  }
}

/**
 * Removes an expired host: its keys as the mirror holds them now, then (a compare-and-set) its record at `rev`, the
 * revision this host saw, or, when it saw none, only while there still is none. Returns how many
 * keys were removed, or null when the host is back (or another host removed it first).
 *
 * A key whose revision in the mirror is stale (the host wrote it again and this host's watch had
 * not delivered that yet, seen under load) is read again: written before the record's deletion,
 * it is the expired host's and is removed at its current revision; written after, its host is
 * back and it stays. Left in place, it would keep the expired host a member on every host.
 */
export async function reapHost(kv: KV, mirror: KeyMirror, host: string, rev: number | null): Promise<number | null> {
  // Read before the record goes: a host only writes its keys again after it finds its record gone,
  // so everything it writes then has a newer revision than the record's deletion and survives.
  const keys = mirror.keysOf(host);
  const record = recordKey(host);
  try {
    if (rev !== null) await kv.delete(record, { previousSeq: rev });
    else if ((await kv.get(record))?.operation === 'PUT') return null;
  } catch (e) {
    if (isWrongRevision(e)) return null;
    throw e;
  }
  // A key written after the record's deletion, or any once the record is back: the host is back, and it is its own.
  return deleteWrittenBefore(kv, record, keys);
}

/** `forgotten.<host>`: an operator forgot the host (`ledgernet cluster forget`), so it may not come back with its old state. */
const forgottenKey = (host: string) => `forgotten.${hostKey(host)}`;

/** Who forgot a host, when and why (the value of its `forgotten.<host>` key). */
interface Forgotten {
  readonly by: string;
  readonly at: string;
  readonly reason?: string;
}

/** A forgotten host as `status` shows it. */
export interface ForgottenHost extends Forgotten {
  readonly host: string;
}

/** The value of a `forgotten.<host>` key; an unreadable one still says the host was forgotten (by and at "unknown"). */
function parseForgotten(value: string): Forgotten {
  let f: Record<string, unknown> = {};
  try {
    f = JSON.parse(value) as Record<string, unknown>;
  } catch {
    // Still a forgotten host.
  }
  const str = (v: unknown) => (typeof v === 'string' ? v : 'unknown');
  return { by: str(f['by']), at: str(f['at']), ...(typeof f['reason'] === 'string' ? { reason: f['reason'] } : {}) };
}

/** The `forgotten.<host>` records among `keys`, by host name. */
export async function forgottenHosts(kv: KV, keys: readonly string[]): Promise<ForgottenHost[]> {
  const out: ForgottenHost[] = [];
  for (const k of keys) {
    const e = await kv.get(k);
    if (e?.operation === 'PUT') out.push({ host: hostOfKey(k.slice('forgotten.'.length)), ...parseForgotten(e.string()) });
  }
  return out.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
}

/** Records that `host` was forgotten (returns the write's revision): a ledgernet starting under that name with its old cluster networks is refused (`admitHost`). */
export function recordForgotten(kv: KV, host: string, f: Forgotten): Promise<number> {
  return kv.put(forgottenKey(host), enc({ host, ...f }));
}

/**
 * Lets `host` into the cluster, or refuses it (DriverError LN_ERR_CLUSTER_FORGOTTEN) when an
 * operator forgot it and its log still has cluster networks: their address blocks were given
 * back, so other hosts may hold its addresses now. A host that has none (started afresh, or whose
 * cluster networks were removed) is let in and the record that it was forgotten goes.
 */
export async function admitHost(kv: KV, host: string, members: () => readonly string[]): Promise<void> {
  const e = await kv.get(forgottenKey(host));
  if (e?.operation !== 'PUT') return;
  const held = members();
  if (held.length === 0) {
    await deleteAt(kv, e.key, e.revision);
    return;
  }
  const f = parseForgotten(e.string());
  const why = typeof f.reason === 'string' ? ` (reason: ${f.reason})` : '';
  throw new DriverError(
    'LN_ERR_CLUSTER_FORGOTTEN',
    `this host (${host}) was forgotten by the cluster (ledgernet cluster forget on host ${f.by} at ${f.at}${why}); ` +
      `its log still has cluster network(s) ${held.join(', ')}, whose address blocks were given back and may be other hosts' now, so it stays out of the cluster. ` +
      `To join again, remove them here (docker network rm) or start ledgernet with a new --state-dir`,
  );
}

/**
 * Takes back that `host` was forgotten (it found its record gone while it ran: it was expired,
 * then forgotten, behind a partition, and is back with its containers). True when it had been.
 */
export async function unforget(kv: KV, host: string): Promise<boolean> {
  const e = await kv.get(forgottenKey(host));
  return e?.operation === 'PUT' && (await deleteAt(kv, e.key, e.revision));
}
