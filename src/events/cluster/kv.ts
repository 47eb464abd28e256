// The cluster's coordination: a NATS JetStream KV bucket (`ledgernet-cluster`, replicated like
// the servers allow), no home-made consensus. Every allocation is a compare-and-set (`create`
// succeeds only for a key that does not exist), so hosts racing for one name all end up with the
// winner's value. Keys (KV keys allow A-Z a-z 0-9 - _ = . /):
//   hosts.<host>                 {"host","vtep","at","instance","intervalMs"}  the host's heartbeat (src/events/cluster/heartbeat.ts)
//   networks.<name>              StoredNetwork          the first creator's subnet and VNI, and the hosts that have it
//   vnis.<vni>                   <name>                 a VNI taken by a name
//   subnets.<cidr with _>        <name>                 a subnet taken by a name
//   members.<name>.<host>        {"host","vtep"}        hosts that have the network
//   blocks.<name>.<index>        <host>                 an address block claimed by a host
//   endpoints.<name>.<host>.<id> PeerEndpoint           a host's endpoints (address, MAC, VTEP)
//   forgotten.<host>             {"host","by","at",…}   an operator forgot the host (ledgernet cluster forget)
import { randomUUID } from 'node:crypto';
import type { JetStreamManager } from '@nats-io/jetstream';
import type { KV, KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { DriverError } from '../../errors.ts';
import type { PeerChange } from '../domain/peers.ts';
import type { ClusterNetwork, ClusterPort, JoinRequest, StaticAddress } from '../domain/cluster.ts';
import { isWrongRevision, listKeys } from './cas.ts';
import { admitHost, endpointKey, endpointValue, memberValue, forgottenHosts, hostOfKey, KeyMirror, memberKey, reapHost, recordForgotten, recordKey, syncOwnKeys, unforget, type ForgottenHost, type OwnKeys } from './host-keys.ts';
import { heartbeatInterval } from './liveness.ts';
import { readNetwork } from './network-record.ts';
import { readPeer } from './peer-records.ts';
import { UnreadableKeys } from './unreadable.ts';
import { claimBlock, claimBlockOf, driftOf, enter, forgetNetworks, syncNetworks, type Bucket, type BucketDrift, type Forgetting, type SyncOutcome } from './networks.ts';

export type { BucketDrift, Forgetting, SyncOutcome } from './networks.ts';
export type { ForgottenHost } from './host-keys.ts';

const CLUSTER_BUCKET = 'ledgernet-cluster';
/** Joining the bucket (ClusterKv.open): how long one request of the first try waits, and how long it is tried. */
const OPEN_REQUEST_MS = 1_000;
const OPEN_MS = 30_000;
/** Asking whether the bucket's stream has a leader yet: each question's wait, and the pause between two. */
const LEADER_ASK_MS = 250;
const LEADER_PAUSE_MS = 50;
/** How long `cluster forget` waits for its watch to deliver the record it wrote (so `status` lists it at once). */
const FORGET_SEEN_MS = 2_000;

/** The default --cluster-host-timeout (src/config.ts), for a ClusterKv opened without one. */
const DEFAULT_TIMEOUT_MS = 30_000;
/** The instance of a ClusterKv opened without one: this process (serve passes its state directory's). */
const PROCESS_INSTANCE = randomUUID();

const enc = (v: unknown) => JSON.stringify(v);

/** Who writes a host's record: its name, VTEP, instance (its state directory's id) and how often it writes it. */
interface Writer {
  readonly host: string;
  readonly vtep: string;
  readonly instance: string;
  readonly intervalMs: number;
}

const hostRecord = (w: Writer) => enc({ host: w.host, vtep: w.vtep, at: new Date().toISOString(), instance: w.instance, intervalMs: w.intervalMs });

/**
 * Whether `self` may write its host's record, found as `e`: refused when another instance wrote
 * it within the timeout (max(this host's, 3 × the interval the record gives)): another machine
 * runs under this --host (it defaults to the machine's hostname, which cloned VMs share), and
 * both would be handed the same address blocks. The age is the record's as the NATS server
 * stamped it, on this host's clock. A record without an instance (an older ledgernet's) is let
 * through as before. True when the record was another instance's (timed out): what it holds
 * under this name is not `self`'s.
 * @throws DriverError `LN_ERR_CLUSTER_HOST_TAKEN` naming the name, the other's VTEP and what to do.
 */
function admitInstance(e: KvEntry | null, self: Writer, timeoutMs: number): boolean {
  const held = e?.operation === 'PUT' ? recordOf(e.string()) : null;
  if (!e || held?.instance === undefined || held.instance === self.instance) return false;
  const limit = Math.max(timeoutMs, 3 * (held.intervalMs ?? 0));
  const age = Date.now() - e.created.getTime();
  if (age > limit) return true;
  throw new DriverError(
    'LN_ERR_CLUSTER_HOST_TAKEN',
    `another ledgernet (VTEP ${held.vtep ?? 'unknown'}) is in the cluster under this host's name ${self.host}: its record was written ${Math.max(0, Math.round(age / 1000))} s ago, ` +
      `within the host timeout (${limit / 1000} s), by another instance (state directory) than this one (VTEP ${self.vtep}); two machines under one name would be handed the same address blocks. ` +
      `Start ledgernet here with its own --host (it defaults to the hostname, which cloned machines share), or, if that ledgernet is gone for good (this machine's state directory was replaced), wait ${limit / 1000} s for its record to time out`,
  );
}

/**
 * Returns once `stream` has a leader (a standalone server's streams show no cluster: at once), or
 * at `end` (the requests that follow then fail and the caller's tries decide).
 */
async function untilLed(jsm: JetStreamManager, stream: string, end: number): Promise<void> {
  while (Date.now() < end) {
    const info = await jsm.streams.info(stream).catch(() => null);
    if (info && (info.cluster === undefined || info.cluster.leader)) return;
    await new Promise((r) => setTimeout(r, LEADER_PAUSE_MS));
  }
}

/** Where ClusterKv.open says that it raised the bucket's replicas (or could not), and where records of the bucket it cannot read are said (unreadable.ts). */
interface OpenLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/**
 * The replicas the bucket should have: the servers of the connected server's cluster (its INFO's
 * `connect_urls`, itself among them), at least the `given` (--nats URLs), at most 3; 1 when the
 * server is not clustered (a standalone server refuses more). Before, only the --nats URLs counted:
 * a first host given one URL (a DNS name in front of three servers) made the bucket with one
 * replica, and losing that server stopped the whole cluster (test/integration/cluster-replicas.test.ts).
 */
function bucketReplicas(info: { cluster?: string; connect_urls?: string[] } | undefined, given: number): number {
  if (!info?.cluster) return 1;
  return Math.max(1, Math.min(3, Math.max(given, new Set(info.connect_urls ?? []).size)));
}

/**
 * Raises the replicas of the bucket's stream to `want` when it has fewer (made by a host that
 * counted fewer servers, or by a ledgernet before this one); said at info level. A raise JetStream
 * refuses (too few servers up) is said as a warning and the bucket is used as it is.
 */
async function raiseReplicas(jsm: JetStreamManager, stream: string, want: number, log: OpenLog | undefined): Promise<void> {
  const had = (await jsm.streams.info(stream)).config.num_replicas;
  if (had >= want) return;
  try {
    await jsm.streams.update(stream, { num_replicas: want });
    log?.info({ stream, from: had, to: want }, `cluster: the KV bucket ${CLUSTER_BUCKET} had ${had} replica(s), raised to ${want} (the servers of the NATS cluster)`);
  } catch (e) {
    log?.warn({ stream, from: had, to: want, err: e }, `cluster: the KV bucket ${CLUSTER_BUCKET} has ${had} replica(s) and could not be raised to ${want}: ${errorText(e)}`);
  }
}

/** JetStream's refusal of more replicas than it has servers for. */
function isShort(e: unknown): boolean {
  return /insufficient resources|replicas > 1 not supported|no suitable peers/i.test(errorText(e));
}

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** JetStream's answer when the bucket's stream does not exist (no stream takes its subjects). */
function isBucketGone(e: unknown): boolean {
  const code = (e as { api_error?: { err_code?: number } } | null)?.api_error?.err_code;
  return code === 10059 || (e instanceof Error && (e.name === 'JetStreamNotEnabled' || /jetstream is not enabled|stream not found/i.test(e.message)));
}

/** `ledgernet cluster forget`'s options: the operator's --reason (kept in `forgotten.<host>`), or only a preview. */
export interface ForgetOptions {
  readonly reason?: string | undefined;
  readonly dryRun?: boolean;
}

/** A key of the bucket seen by the watch that tells who is alive: a host's record (put or deleted) or another key of a host. */
export interface HostSeen {
  readonly host: string;
  /** For a record: its revision, or null when it was deleted. */
  readonly rev: number | null;
  readonly record: boolean;
  /** For a record put: how often its host writes it (null: an older ledgernet's record). */
  readonly intervalMs?: number | null;
}

export class ClusterKv {
  /** The bucket (made again by `heartbeat` when it is gone) and what the current watch saw of it. */
  private readonly b: Bucket;
  /** Binds the bucket again, creating it if it is gone (`heartbeat`). */
  private readonly bind: () => Promise<KV>;
  private readonly host: string;
  private readonly vtep: string;
  private readonly self: Writer;
  /** The revision of this host's record as it last wrote it. */
  private hostRev: number;
  /** The bucket was bound again (`heartbeat`): no watch feeds the mirror until a new one starts (`watchPeers`). */
  private detached = false;
  /**
   * Cluster networks whose member key joinNetwork wrote and whose pool the log may not have yet
   * (RequestPool in flight, until `settle`): syncOwn keeps their member keys, which it would
   * otherwise take for left-over ones and remove.
   */
  private readonly joining = new Map<string, number>();

  private constructor(kv: KV, bind: () => Promise<KV>, self: Writer, hostRev: number, ownSince: number, log: OpenLog | undefined) {
    this.b = { kv, mirror: new KeyMirror(), host: self.host, ownSince, unreadable: new UnreadableKeys(log) };
    this.bind = bind;
    this.host = self.host;
    this.vtep = self.vtep;
    this.self = self;
    this.hostRev = hostRev;
  }

  /**
   * Binds (or creates) the bucket and says this host is here. `members` are the cluster networks
   * its log has: a host an operator forgot is refused while it has any (`admitHost`). Its record
   * says how often it is written (`timeoutMs`, this host's --cluster-host-timeout, default 30 s:
   * src/events/cluster/liveness.ts heartbeatInterval), so hosts with a shorter timeout wait long
   * enough for it, and which instance writes it (`instance`: serve's state directory's id; default
   * this process's): a record of this host's name that another instance wrote within the timeout
   * is another machine under the same --host, refused (`admitInstance`). Blocks held under this
   * name are taken back (claimBlock) only when the record found was this instance's or an older
   * ledgernet's (or there was none). `replicas` is the least the bucket gets (how many --nats
   * URLs were given); the servers the connected one names as its cluster raise it
   * (`bucketReplicas`), and a bucket made with fewer is raised to it (`raiseReplicas`, said on `log`).
   */
  static async open(
    nc: NatsConnection,
    o: { host: string; vtep: string; replicas: number; members?: () => readonly string[]; instance?: string; timeoutMs?: number; log?: OpenLog },
  ): Promise<ClusterKv> {
    const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const self: Writer = { host: o.host, vtep: o.vtep, instance: o.instance ?? PROCESS_INSTANCE, intervalMs: heartbeatInterval(timeoutMs) };
    const given = Math.max(1, Math.min(3, o.replicas));
    let replicas = bucketReplicas(nc.info, given);
    // Loaded here: a daemon without NATS never loads the KV client (~4 MB, bench row 9).
    const [{ Kvm }, { jetstream }] = await Promise.all([import('@nats-io/kv'), import('@nats-io/jetstream')]);
    const bind = () => new Kvm(nc).create(CLUSTER_BUCKET, { replicas, history: 1 });
    // A bucket several hosts created at the same moment (a cluster starting) exists before its
    // stream has a leader (~1 s, several on a loaded host), and a request to the stream sent before
    // that is never answered: the client waits its whole timeout. So once the bucket is there, the
    // stream's leader is asked for with short questions (what JetStream's meta leader answers)
    // before the host's record is read and written; each attempt's requests wait 1 s, 1 s, 1 s,
    // 2 s, … up to the client's usual 5 s. Before, two of three hosts starting together waited
    // out a request sent just before the leader, 5 s (and 3 s of 1 s timeouts on a loaded CI
    // machine) (test/integration/cluster-join.test.ts).
    const end = Date.now() + OPEN_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        const quick = new Kvm(jetstream(nc, { timeout: Math.min(OPEN_REQUEST_MS * Math.ceil(attempt / 3), 5_000) }));
        const kv = await quick.create(CLUSTER_BUCKET, { replicas, history: 1 });
        await untilLed(await jetstream(nc, { timeout: LEADER_ASK_MS }).jetstreamManager(false), `KV_${CLUSTER_BUCKET}`, end);
        await raiseReplicas(await jetstream(nc).jetstreamManager(false), `KV_${CLUSTER_BUCKET}`, replicas, o.log);
        await admitHost(kv, o.host, o.members ?? (() => []));
        const held = await kv.get(recordKey(o.host));
        const other = admitInstance(held, self, timeoutMs);
        // Written by compare-and-set on what was read: another machine of this name opening at the same moment makes one of the two look again.
        const rev = await kv.put(recordKey(o.host), hostRecord(self), { previousSeq: held?.revision ?? 0 });
        // After another instance (timed out): what it holds under this name is not this one's, only what is written from now on.
        // The daemon's own handle: the client's usual wait per request.
        return new ClusterKv(await new Kvm(nc).open(CLUSTER_BUCKET), bind, self, rev, other ? rev : 0, o.log);
      } catch (e) {
        if (Date.now() >= end || e instanceof DriverError) throw e;
        // More servers named than can hold a replica (some without JetStream, or down): as many as were given.
        if (replicas > given && isShort(e)) {
          o.log?.warn({ replicas, given, err: e }, `cluster: the KV bucket ${CLUSTER_BUCKET} cannot have ${replicas} replicas (${errorText(e)}); made with ${given}`);
          replicas = given;
        }
        await new Promise((r) => setTimeout(r, Math.min(50 * attempt, 1_000)));
      }
    }
  }

  /**
   * The cluster network `name`: the one the bucket holds, or a new one with this host's subnet
   * and a free VNI (src/events/cluster/networks.ts); this host is added to its hosts. A different
   * --subnet than the one it holds is refused, naming it.
   */
  async joinNetwork(req: JoinRequest): Promise<ClusterNetwork> {
    // Counted first: a leave of this network running meanwhile (syncOwn) must not take this host out.
    this.joining.set(req.name, (this.joining.get(req.name) ?? 0) + 1);
    try {
      const net = await enter(this.b, req);
      await this.b.kv.put(memberKey(req.name, this.host), memberValue(this.host, this.vtep));
      return net;
    } catch (e) {
      this.settle(req.name);
      throw e;
    }
  }

  /** The RequestPool that joined `name` is over (its pool in the log, or refused). */
  settle(name: string): void {
    const n = (this.joining.get(name) ?? 0) - 1;
    if (n > 0) this.joining.set(name, n);
    else this.joining.delete(name);
  }

  /** A block of `net` for this host (src/events/cluster/networks.ts); `owned` are those its log has. Returns its CIDR. */
  claimBlock(net: ClusterNetwork, owned: readonly string[]): Promise<string> {
    return claimBlock(this.b, net, owned);
  }

  /** `block` of `net` for this host, for a container's static address in it; refused when another host holds it (src/events/cluster/networks.ts). */
  claimBlockOf(net: ClusterNetwork, block: string, of: StaticAddress): Promise<void> {
    return claimBlockOf(this.b, net, block, of);
  }

  /** Says that this host has an endpoint on cluster network `name` (or no longer has it). */
  async publishEndpoint(name: string, ep: { endpointId: string; address: string; mac: string } | { endpointId: string; gone: true }): Promise<void> {
    const key = endpointKey(name, this.host, ep.endpointId);
    if ('gone' in ep) await this.b.kv.delete(key);
    else await this.b.kv.put(key, endpointValue(this.host, this.vtep, ep));
  }

  /**
   * This host's heartbeat: its record written again, a compare-and-set on the revision it wrote
   * last. When that fails the record is written anew and the caller publishes this host's keys
   * again: `expired` when another host had deleted it (`forgotten` when an operator then forgot
   * this host too: that is taken back, it is here), `rewritten` when it was changed otherwise
   * (a heartbeat that timed out in a reconnect and was stored after all, or a second host under
   * this --host).
   */
  async heartbeat(): Promise<'ok' | 'expired' | 'forgotten' | 'rewritten'> {
    const key = recordKey(this.host);
    try {
      this.hostRev = await this.b.kv.update(key, hostRecord(this.self), this.hostRev);
      return 'ok';
    } catch (e) {
      if (!isWrongRevision(e)) {
        // The bucket itself is gone (deleted, or a JetStream store wiped): made again for the next
        // beat, which finds its record gone and publishes everything (syncOwn rebuilds the rest).
        if (isBucketGone(e)) {
          const kv = await this.bind().catch(() => null);
          // What the watch saw was of the old bucket: nothing is known until a new watch catches up.
          if (kv) {
            [this.b.kv, this.b.mirror, this.b.ownSince] = [kv, new KeyMirror(), 0];
            // The old watch, if it still runs, fills a mirror no longer read: until a new watch
            // starts, `watching` stays false and nothing is published (the heartbeat watches again).
            this.detached = true;
          }
        }
        throw e;
      }
      const now = await this.b.kv.get(key);
      this.hostRev = await this.b.kv.put(key, hostRecord(this.self));
      if (now?.operation === 'PUT') return 'rewritten';
      return (await unforget(this.b.kv, this.host)) ? 'forgotten' : 'expired';
    }
  }

  /**
   * Writes this host's member and endpoint keys from its log, removes those it no longer has, then
   * does the networks' side (src/events/cluster/networks.ts `syncNetworks`): leaves the cluster
   * networks it no longer has, retiring those it was the last host of, and writes back what the
   * bucket lost of those it has. Returns the networks it retired and restored, and the conflicts
   * found (the bucket holds another subnet, VNI or block owner than the log).
   */
  async syncOwn(own: () => OwnKeys): Promise<SyncOutcome> {
    const withJoining = () => this.withJoining(own());
    await syncOwnKeys(this.b.kv, this.b.mirror, this.host, this.vtep, withJoining);
    return syncNetworks(this.b, own, () => withJoining().members);
  }

  /** `own` with the networks being joined as members (their member keys are written before the log has their pools). */
  private withJoining(own: OwnKeys): OwnKeys {
    const joining = [...this.joining.keys()].filter((n) => !own.members.includes(n));
    return joining.length === 0 ? own : { ...own, members: [...own.members, ...joining].sort() };
  }

  /**
   * Forgets a host that is gone for good (`ledgernet cluster forget`): only one the cluster has
   * expired (no record in the bucket: a host that is alive, or not yet timed out, is refused). It
   * is taken out of every network it had (the last one out retires it), and its blocks and any
   * member or endpoint key left go. Without this its blocks stay claimed for ever (expiry keeps
   * them: the host may be alive behind a partition). That it was forgotten stays in the bucket: a
   * ledgernet starting under its name with its old cluster networks is refused (`admitHost`).
   * `dryRun`: refused alike, but nothing is written: what it would do.
   */
  async forgetHost(host: string, o: ForgetOptions = {}): Promise<Forgetting> {
    if (host === this.host) throw new DriverError('LN_ERR_BAD_REQUEST', `${host} is this host; to take it out of a cluster network, remove the network here (docker network rm)`);
    const record = await this.b.kv.get(recordKey(host));
    if (record?.operation === 'PUT') {
      const seen = hostOf(host, record.string())?.lastSeen ?? 'unknown';
      throw new DriverError('LN_ERR_CONFLICT', `host ${host} is still in the cluster (its record was last written at ${seen}); a host is forgotten only once the others expired it: stop its ledgernet for good and wait for --cluster-host-timeout`);
    }
    if (o.dryRun) return forgetNetworks(this.b, host, true);
    const done = await forgetNetworks(this.b, host);
    const rev = await recordForgotten(this.b.kv, host, { by: this.host, at: new Date().toISOString(), ...(o.reason === undefined ? {} : { reason: o.reason }) });
    // Read your own write: `status` right after reads the watch's mirror (it once listed no forgotten host).
    if (this.b.mirror.ready) await this.b.mirror.caughtUp(rev, FORGET_SEEN_MS);
    return done;
  }

  /** What the bucket lacks of this host's log or holds against it, as the watch sees it (networks.ts `driftOf`); null before the watch caught up. */
  drift(own: () => OwnKeys): BucketDrift | null {
    return this.b.mirror.ready ? driftOf(this.b.mirror, this.host, this.vtep, this.withJoining(own())) : null;
  }

  /** Removes an expired host's record and keys (src/events/cluster/host-keys.ts); null: it is back, or already removed. */
  reap(host: string, rev: number | null): Promise<number | null> {
    return reapHost(this.b.kv, this.b.mirror, host, rev);
  }

  /** True once the watch has caught up with the bucket (what syncOwn and reap need). */
  get watching(): boolean {
    return this.b.mirror.ready;
  }

  /** The bucket was bound again and no watch of it has started since: its mirror stays empty until one does. */
  get watchDetached(): boolean {
    return this.detached;
  }

  /**
   * Every member and endpoint key of other hosts, first as the bucket holds them now, then each
   * change as it comes; deletes as null. `onSeen` hears of every host record (this host's too)
   * and of every other host's key put. Stops when `stop` is called, or `onEnd` says it ended.
   */
  async watchPeers(onChange: (c: PeerChange) => void, onSeen: (s: HostSeen) => void = () => undefined, onEnd: () => void = () => undefined): Promise<{ stop(): void }> {
    const it = await this.b.kv.watch({ key: '>' });
    const mirror = new KeyMirror();
    this.b.mirror = mirror;
    this.detached = false;
    // The subnets of the cluster networks as this watch saw their records: an endpoint's address must lie in its network's.
    const subnets = new Map<string, string>();
    void (async () => {
      for await (const e of it) {
        const put = e.operation === 'PUT';
        mirror.seen(e.key, put ? e.revision : null, e.isUpdate, () => e.string(), e.revision);
        const [kind, token] = e.key.split('.');
        const host = token === undefined ? undefined : hostOfKey(token);
        if (kind === 'hosts' && host) onSeen({ host, rev: put ? e.revision : null, record: true, intervalMs: put ? (recordOf(e.string())?.intervalMs ?? null) : null });
        if (kind === 'networks') keepSubnet(subnets, e.key, put ? e.string() : null);
        const read = readPeer(e.key, put ? e.string() : null, token === undefined ? null : (subnets.get(token) ?? null));
        if (!read || read.change.host === this.host) continue;
        if (put) onSeen({ host: read.change.host, rev: null, record: false });
        this.saySkipped(e.key, read.problem);
        onChange(read.change);
      }
    })()
      .catch(() => undefined)
      .finally(onEnd);
    return { stop: () => it.stop() };
  }

  /** A peer's key whose value was dropped (`problem`: why), said once per key; one read again (or deleted) is said again once it turns bad. */
  private saySkipped(key: string, problem: string | null): void {
    if (problem === null) this.b.unreadable?.clear(key);
    else this.b.unreadable?.say(key, problem, `cluster: ${key} dropped: ${problem}; taken as removed (this host does not send to what it names) until its host writes it again`);
  }

  /** The hosts an operator forgot (`forgotten.<host>`): who forgot each, when and why. */
  async forgotten(): Promise<ForgottenHost[]> {
    return forgottenHosts(this.b.kv, await this.keysOf('forgotten.'));
  }

  /**
   * The bucket's keys under `prefix` (`kind.`): from the watch's mirror once it has caught up, else
   * listed. A listing can end early and empty while the keys it lists are rewritten (each host's
   * record is, every heartbeat): `status` once showed no cluster host at all, this host included.
   */
  private async keysOf(prefix: string): Promise<string[]> {
    const { mirror } = this.b;
    return mirror.ready ? mirror.withPrefix(prefix).map((k) => k.key) : listKeys(this.b.kv, `${prefix}*`);
  }

  /** Every host record of the bucket (`hosts.<host>`): its VTEP and when it last wrote it. */
  async hosts(): Promise<ClusterHost[]> {
    const out: ClusterHost[] = [];
    // This host's own record is read whatever the listing says: it is written before the daemon
    // serves, so a listing without it is one that ended early.
    for (const k of new Set([recordKey(this.host), ...(await this.keysOf('hosts.'))])) {
      const e = await this.b.kv.get(k);
      if (e?.operation !== 'PUT') continue;
      const h = hostOf(hostOfKey(k.slice('hosts.'.length)), e.string());
      if (h) out.push(h);
    }
    return out.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
  }
}

/**
 * How long joining a cluster network or claiming an address block waits for NATS, connecting and
 * binding the bucket included: well inside the 25 s the supervisor gives a Docker call, so a
 * JetStream that does not answer (no quorum, a cluster still forming) is a clear refusal of that
 * call, not the supervisor's "did not answer".
 */
export const CLUSTER_ANSWER_MS = 12_000;

/**
 * `p`, or once `ms` have passed the error `timedOut` makes; `p` goes on, and `late` is called
 * with it then (to undo what it does if it still succeeds).
 */
export async function answerWithin<T>(p: Promise<T>, ms: number, timedOut: () => Error, late: (p: Promise<T>) => void = () => undefined): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = Symbol('expired');
  const out = await Promise.race([p, new Promise<typeof expired>((r) => (timer = setTimeout(r, ms, expired)))]).finally(() => clearTimeout(timer));
  if (out !== expired) return out as T;
  p.catch(() => undefined);
  late(p);
  throw timedOut();
}

/** A cluster call the bucket did not answer within `ms`: retryable, nothing recorded. */
const unanswered = (what: string, ms: number) =>
  new DriverError('LN_ERR_CLUSTER_UNAVAILABLE', `${what}: the cluster's KV bucket (NATS JetStream, ${CLUSTER_BUCKET}) did not answer within ${ms / 1000} s; nothing was recorded: try again once NATS answers (ledgernet status shows the cluster)`);

/**
 * The cluster port that connects on first use and again after a failure, so serve starts and
 * local Docker calls go on without NATS; only joining a network or claiming a block waits for it,
 * each for at most `answerMs` (CLUSTER_ANSWER_MS). A join given up on that succeeds afterwards is
 * settled as refused, and `abandoned` hears of it (the heartbeat then removes its member key).
 */
export function lazyCluster(open: () => Promise<ClusterKv>, o: { answerMs?: number; abandoned?: (name: string) => void } = {}): ClusterPort & { kv(): Promise<ClusterKv> } {
  const answerMs = o.answerMs ?? CLUSTER_ANSWER_MS;
  let opening: Promise<ClusterKv> | null = null;
  const get = () => {
    opening ??= open().catch((e: unknown) => {
      opening = null;
      if (e instanceof DriverError) throw e; // the bucket answered, and refused this host
      throw new DriverError('LN_ERR_CLUSTER_UNAVAILABLE', `the cluster's KV bucket cannot be reached: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    });
    return opening;
  };
  const settle = (name: string) => {
    void opening?.then((kv) => kv.settle(name), () => undefined);
  };
  return {
    joinNetwork: (req) =>
      answerWithin((async () => (await get()).joinNetwork(req))(), answerMs, () => unanswered(`joining cluster network ${req.name}`, answerMs), (p) => {
        // It may still join (its member key written): then it is settled as refused here.
        void p.then(
          (net) => {
            settle(req.name);
            o.abandoned?.(net.name);
          },
          () => undefined,
        );
      }),
    // A block claimed after the wait stays this host's in the bucket: the next claim takes it (networks.ts claimBlock).
    claimBlock: (net, owned) => answerWithin((async () => (await get()).claimBlock(net, owned))(), answerMs, () => unanswered(`claiming an address block of cluster network ${net.name}`, answerMs)),
    // Likewise: claimed after the wait, the block stays this host's in the bucket, unrecorded, until claimBlock takes it back.
    claimBlockOf: (net, block, of) =>
      answerWithin((async () => (await get()).claimBlockOf(net, block, of))(), answerMs, () => unanswered(`claiming address block ${block} of cluster network ${net.name} for address ${of.address}`, answerMs)),
    settle,
    kv: get,
  };
}

/** Keeps the subnet of the network record at `key` (`value` null: deleted), when this ledgernet reads it. */
function keepSubnet(subnets: Map<string, string>, key: string, value: string | null): void {
  const name = key.slice('networks.'.length);
  const read = value === null ? null : readNetwork(name, value);
  if (read?.ok) subnets.set(name, read.record.subnet);
  else subnets.delete(name);
}

/** A host as its record in the bucket says: `lastSeen` is the record's `at` (null when it has none). */
export interface ClusterHost {
  readonly host: string;
  readonly vtep: string | null;
  readonly lastSeen: string | null;
}

function hostOf(host: string, value: string): ClusterHost | null {
  const r = recordOf(value);
  return r && { host, vtep: r.vtep, lastSeen: r.at };
}

/** A host's record (`hosts.<host>`) as far as it says: `instance` and `intervalMs` are absent from an older ledgernet's. */
function recordOf(value: string): { vtep: string | null; at: string | null; instance?: string; intervalMs?: number } | null {
  try {
    const v = JSON.parse(value) as Record<string, unknown>;
    const str = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : null);
    const instance = str('instance');
    const interval = v['intervalMs'];
    return {
      vtep: str('vtep'),
      at: str('at'),
      ...(instance === null ? {} : { instance }),
      ...(typeof interval === 'number' && Number.isFinite(interval) && interval > 0 ? { intervalMs: interval } : {}),
    };
  } catch {
    return null;
  }
}
