// Host liveness in the cluster. Every interval this host writes its record (`hosts.<host>`,
// compare-and-set on the revision it wrote last) and looks at the other hosts' records through
// its watch (src/events/cluster/liveness.ts). A host not heard of for the timeout is expired by
// whichever host gets there first: it deletes the record by compare-and-set, then the host's
// member and endpoint keys (src/events/cluster/host-keys.ts); every host, the remover too, sees
// those deletes through its watch and records them as peer.* events, as for any remote change.
// A host that finds its record gone (its heartbeat's compare-and-set fails) writes it again and
// publishes all its keys: the others add it back. The same full publish runs at start and after
// anything failed (a NATS outage), so what was missed is caught up once NATS answers.
import { heartbeatInterval, HostLiveness } from './liveness.ts';
import type { OwnKeys } from './host-keys.ts';
import type { BucketDrift, HostSeen, SyncOutcome } from './kv.ts';

interface HeartbeatKv {
  /** The watch has caught up: this host knows the bucket's keys (syncOwn and reap need it). */
  readonly watching: boolean;
  /** The bucket was bound again (it seemed gone) and no watch of it has started since. */
  readonly watchDetached: boolean;
  heartbeat(): Promise<'ok' | 'expired' | 'forgotten' | 'rewritten'>;
  syncOwn(own: () => OwnKeys): Promise<SyncOutcome>;
  /** What the bucket lacks of this host's log or holds against it, from the watch alone; null before it caught up. */
  drift(own: () => OwnKeys): BucketDrift | null;
  reap(host: string, rev: number | null): Promise<number | null>;
}

interface HeartbeatLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface Heartbeat {
  /** The watch's view of a host (src/events/cluster/kv.ts `watchPeers`). */
  seen(s: HostSeen): void;
  /** This host's keys may be out of date in the bucket (a publish failed, a pool was released): written on the next beat. */
  dirty(): void;
  /** One endpoint was published: if a full publish runs right now it may have missed it, so another follows. */
  touched(): void;
  /** The watch ended or was restarted: nobody is judged for a timeout. */
  lostTouch(): void;
  /** What the metrics show (src/operator/metrics.ts `ledgernet_cluster_*`). */
  stats(): HeartbeatStats;
  stop(): void;
}

export interface HeartbeatStats {
  /** This host's own heartbeats come back through its watch. */
  readonly inTouch: boolean;
  /** Other hosts that wrote their record within the timeout. */
  readonly hostsHeard: number;
  /** Beats that failed (NATS unreachable, the bucket refused). */
  readonly failures: number;
  /** Hosts this host expired (removed their entries). */
  readonly expired: number;
  /** Cluster networks this host removed from the bucket, the last host out. */
  readonly retired: number;
  /** Full publishes run because the bucket lacked keys of this host's log (`drift`). */
  readonly repaired: number;
  /** What the bucket holds against this host's log (networks.ts restoreNetwork at a full publish, driftOf on every beat). */
  readonly conflicts: readonly string[];
}

export function startHeartbeat(o: {
  kv: HeartbeatKv;
  self: string;
  timeoutMs: number;
  own: () => OwnKeys;
  /** Called when this host's own heartbeats stop coming back through the watch while writing them works. */
  rewatch: () => void;
  log: HeartbeatLog;
  now?: () => number;
}): Heartbeat {
  const now = o.now ?? (() => performance.now());
  const intervalMs = heartbeatInterval(o.timeoutMs);
  const live = new HostLiveness({ self: o.self, timeoutMs: o.timeoutMs, intervalMs });
  let dirty = true;
  let syncing = false;
  let failing = false;
  /** A beat failed since the last full publish: the next one is logged (what was missed is written then). */
  let outage = false;
  let running = false;
  let lastBeat = now();
  let lastRewatch = now();
  const counts = { failures: 0, expired: 0, retired: 0, repaired: 0 };
  /** What the last full publish found the bucket holding against the log. */
  let published: readonly string[] = [];
  /** What the bucket holds against the log now: the last drift check's, and the publish's while keys are missing. */
  let conflicts: readonly string[] = [];
  /** The keys the last drift check found missing or changed, and those a full publish was last run for. */
  let seenMissing = '';
  let triedMissing = '';

  /**
   * Keys of this host's log that the bucket lacks (deleted by hand, lost by a store) or holds with
   * other values (a member or endpoint key changed by hand: the other hosts would send this host's
   * endpoint's traffic to another address or VTEP) are written again, and keys of this host the
   * log no longer has (a removal that did not take) removed, by a full publish: when two
   * beats in a row find the same keys (one may only be a key just written that the watch has not
   * delivered yet), and once per set (a key the publish cannot write back, e.g. a record whose
   * subnet another network took, is a conflict, not a reason to publish on every beat).
   */
  const checkDrift = () => {
    const d = o.kv.drift(o.own);
    if (d === null) return;
    const keys = [...d.missing, ...d.changed];
    const missing = keys.join(' ');
    if (missing !== '' && missing === seenMissing && missing !== triedMissing) {
      triedMissing = missing;
      dirty = true;
      counts.repaired++;
      o.log.warn(
        { missing: d.missing.slice(0, 10), changed: d.changed.slice(0, 10), count: keys.length },
        "cluster: the KV bucket lacks keys of this host's log or holds other values for them (changed or deleted by hand? a store that lost data? a removal that did not take?); publishing them again",
      );
    }
    if (missing === '') triedMissing = '';
    seenMissing = missing;
    conflicts = missing === '' ? d.conflicts : [...new Set([...published, ...d.conflicts])];
  };

  const beat = async () => {
    const r = await o.kv.heartbeat();
    if (r === 'expired') o.log.warn({ host: o.self }, 'this host was expired by the cluster (no heartbeat seen in time); publishing its endpoints again');
    if (r === 'forgotten') {
      o.log.error(
        { host: o.self },
        'this host was expired and then forgotten by an operator (ledgernet cluster forget) while it ran (behind a partition?); it is back: publishing its endpoints and blocks again, and what other hosts took meanwhile shows as conflicts',
      );
    }
    if (r === 'rewritten') o.log.warn({ host: o.self }, "this host's record in the KV bucket was changed by someone else (a late heartbeat, or another host with this --host?); publishing its endpoints again");
    if (r !== 'ok') dirty = true;
    // Expired with no watch caught up: the bucket was made again (kv.ts heartbeat); watch the new one now.
    if ((r === 'expired' || r === 'forgotten') && !o.kv.watching) {
      lastRewatch = now();
      o.rewatch();
    } else if (o.kv.watchDetached && now() - lastRewatch > 3 * intervalMs) {
      // Bound again though it was there all along (JetStream not ready yet after a restart): this
      // host's record is in place, so its own heartbeats still come back through the old watch,
      // but nothing reads that watch any more and nothing would be published again.
      lastRewatch = now();
      o.log.info({}, 'cluster: the KV bucket was bound again after an error; watching it again');
      o.rewatch();
    }
    if (!dirty && o.kv.watching) checkDrift();
    // Not before the watch has caught up: the keys to remove are known from it.
    if (dirty && o.kv.watching) {
      dirty = false;
      syncing = true;
      try {
        const done = await o.kv.syncOwn(o.own);
        // After an outage: what was missed is in the bucket now (the others add it from there).
        if (outage) {
          outage = false;
          const own = o.own();
          o.log.info({ endpoints: own.endpoints.length, networks: own.members.length }, "cluster: this host's member and endpoint keys written to the KV bucket again (heartbeats had failed: NATS unreachable, or not ready at start)");
        }
        for (const name of done.retired) {
          counts.retired++;
          o.log.info({ cluster: name }, `cluster network ${name}: no host has it any more; removed from the KV bucket (its subnet and VNI are free for a new network)`);
        }
        for (const name of done.restored) o.log.warn({ cluster: name }, `cluster network ${name}: the KV bucket had lost it (or this host's blocks of it); written back from this host's log`);
        for (const c of done.conflicts) o.log.error({}, c);
        published = conflicts = done.conflicts;
      } finally {
        syncing = false;
      }
    }
    // Whether the keys are written yet or wait for the watch to catch up (they go on the first beat after).
    if (failing) o.log.info({ watchCaughtUp: o.kv.watching, keysPending: dirty }, 'cluster: the KV bucket answers again; heartbeats resume');
    failing = false;
  };

  const reap = async (t: number) => {
    if (!o.kv.watching) return;
    for (const { host, rev } of live.expired(t)) {
      const removed = await o.kv.reap(host, rev);
      if (removed === null) continue; // back in time, or another host removed it first: its watch events tell
      if (rev !== null || removed > 0) {
        counts.expired++;
        o.log.warn({ host, timeoutS: o.timeoutMs / 1000, keys: removed }, `host ${host} sent no heartbeat for the timeout: removed its entries from the cluster`);
      }
      live.forget(host, rev);
    }
  };

  const tick = async () => {
    if (running) return;
    running = true;
    const t = now();
    // This process did not run for a while (stopped, starved): it saw nothing in that time.
    if (t - lastBeat > 3 * intervalMs) live.lostTouch();
    lastBeat = t;
    try {
      await beat();
      // Writing works but this host's own records do not come back: the watch is stuck; start it again.
      if (!live.inTouch(now()) && now() - lastRewatch > 3 * intervalMs) {
        lastRewatch = now();
        o.log.info({ afterMs: Math.round(3 * intervalMs) }, "cluster: this host's own heartbeats do not come back through its watch of the KV bucket; watching it again");
        o.rewatch();
      }
      await reap(now());
    } catch (e) {
      dirty = true;
      outage = true;
      counts.failures++;
      if (!failing) o.log.warn({ err: e }, 'cluster: heartbeat or expiry check failed (NATS unreachable?); the last-known peers stay in place');
      failing = true;
    } finally {
      running = false;
    }
  };

  const timer = setInterval(() => void tick(), intervalMs);
  timer.unref();
  void tick();
  return {
    seen: (s) => {
      if (s.record) live.record(s.host, s.rev, now(), s.intervalMs ?? null);
      else live.keys(s.host, now());
    },
    dirty: () => {
      dirty = true;
    },
    touched: () => {
      if (syncing) dirty = true;
    },
    lostTouch: () => live.lostTouch(),
    stats: () => ({ inTouch: live.inTouch(now()), hostsHeard: live.heard(now()), ...counts, conflicts }),
    stop: () => clearInterval(timer),
  };
}
