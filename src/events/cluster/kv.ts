// The cluster's coordination: a NATS JetStream KV bucket (`ledgernet-cluster`, replicated like
// the servers allow), no home-made consensus. Every allocation is a compare-and-set (`create`
// succeeds only for a key that does not exist), so hosts racing for one name all end up with the
// winner's value. Keys (KV keys allow A-Z a-z 0-9 - _ = . /):
//   hosts.<host>                 {"host","vtep","at"}   the host's heartbeat (src/events/cluster/heartbeat.ts)
//   networks.<name>              StoredNetwork          the first creator's subnet and VNI, and the hosts that have it
//   vnis.<vni>                   <name>                 a VNI taken by a name
//   subnets.<cidr with _>        <name>                 a subnet taken by a name
//   members.<name>.<host>        {"host","vtep"}        hosts that have the network
//   blocks.<name>.<index>        <host>                 an address block claimed by a host
//   endpoints.<name>.<host>.<id> PeerEndpoint           a host's endpoints (address, MAC, VTEP)
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { DriverError } from '../../errors.ts';
import type { PeerChange } from '../domain/peers.ts';
import { deleteAt, hostKey, hostOfKey, isWrongRevision, KeyMirror, memberKey, reapHost, recordKey, syncOwnKeys, type OwnKeys, type OwnNetwork } from './host-keys.ts';
import { blockAt, blockCount, blockIndex, blockLenFor, firstVni, nextVni, type ClusterNetwork, type ClusterPort, type JoinRequest } from '../domain/cluster.ts';

const CLUSTER_BUCKET = 'ledgernet-cluster';

const enc = (v: unknown) => JSON.stringify(v);
const hostRecord = (host: string, vtep: string) => enc({ host, vtep, at: new Date().toISOString() });
const subnetKey = (cidr: string) => `subnets.${cidr.replace(/[.:/]/g, '_')}`;

/** How many VNIs or blocks a name tries before giving up (the ranges are far larger). */
const MAX_PROBES = 4096;
/** Tries of a compare-and-set create that keeps losing races before it is an error. */
const CREATE_ATTEMPTS = 5;

/**
 * A network's record in the bucket: `hosts` are the hosts that have it (each adds and removes
 * itself by compare-and-set), so the last one out retires it. A record without `hosts` (written
 * by a ledgernet before it) is never retired: who has it is not known.
 */
type StoredNetwork = ClusterNetwork & { readonly hosts?: readonly string[] };

/** A network record from its value in the bucket, or null when it does not parse. */
function parseRecord(value: string): StoredNetwork | null {
  try {
    return JSON.parse(value) as StoredNetwork;
  } catch {
    return null;
  }
}

/** The record as joinNetwork returns it: the network, without who has it (that changes). */
function networkOf(r: StoredNetwork): ClusterNetwork {
  return { name: r.name, subnet: r.subnet, vni: r.vni, blockLen: r.blockLen, createdBy: r.createdBy };
}

/** What a full publish of this host's keys did beyond its own keys (ClusterKv.syncOwn). */
export interface SyncOutcome {
  /** Networks it removed from the bucket, the last host out. */
  readonly retired: readonly string[];
  /** Networks whose record or blocks the bucket had lost, written back from the log. */
  readonly restored: readonly string[];
  /** What the bucket holds against the log, one sentence each. */
  readonly conflicts: readonly string[];
}

/** JetStream's answer when the bucket's stream does not exist (no stream takes its subjects). */
function isBucketGone(e: unknown): boolean {
  const code = (e as { api_error?: { err_code?: number } } | null)?.api_error?.err_code;
  return code === 10059 || (e instanceof Error && (e.name === 'JetStreamNotEnabled' || /jetstream is not enabled|stream not found/i.test(e.message)));
}

/** A short, growing wait between tries of a compare-and-set that lost a race. */
const pause = (attempt: number) => new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 10));

/** A key of the bucket seen by the watch that tells who is alive: a host's record (put or deleted) or another key of a host. */
export interface HostSeen {
  readonly host: string;
  /** For a record: its revision, or null when it was deleted. */
  readonly rev: number | null;
  readonly record: boolean;
}

export class ClusterKv {
  private kv: KV;
  /** Binds the bucket again, creating it if it is gone (`heartbeat`). */
  private readonly bind: () => Promise<KV>;
  private readonly host: string;
  private readonly vtep: string;
  /** The revision of this host's record as it last wrote it. */
  private hostRev: number;
  /** The bucket as the current watch saw it. */
  private mirror = new KeyMirror();
  /**
   * Cluster networks whose member key joinNetwork wrote and whose pool the log may not have yet
   * (RequestPool in flight, until `settle`): syncOwn keeps their member keys, which it would
   * otherwise take for left-over ones and remove.
   */
  private readonly joining = new Map<string, number>();

  private constructor(kv: KV, bind: () => Promise<KV>, host: string, vtep: string, hostRev: number) {
    this.kv = kv;
    this.bind = bind;
    this.host = host;
    this.vtep = vtep;
    this.hostRev = hostRev;
  }

  /** Binds (or creates) the bucket and says this host is here. */
  static async open(nc: NatsConnection, o: { host: string; vtep: string; replicas: number }): Promise<ClusterKv> {
    const replicas = Math.max(1, Math.min(3, o.replicas));
    // Loaded here: a daemon without NATS never loads the KV client (~4 MB, bench row 9).
    const { Kvm } = await import('@nats-io/kv');
    // A bucket another host has just created may not answer yet (no responders): a few tries.
    const bind = () => new Kvm(nc).create(CLUSTER_BUCKET, { replicas, history: 1 });
    for (let attempt = 1; ; attempt++) {
      try {
        const kv = await bind();
        const rev = await kv.put(recordKey(o.host), hostRecord(o.host, o.vtep));
        return new ClusterKv(kv, bind, o.host, o.vtep, rev);
      } catch (e) {
        if (attempt >= 6) throw e;
        await new Promise((r) => setTimeout(r, 250 * attempt));
      }
    }
  }

  /**
   * The cluster network `name`: the one the bucket holds, or a new one with this host's subnet
   * and a free VNI; this host is added to its hosts. A different --subnet than the one it holds
   * is refused, naming it.
   */
  async joinNetwork(req: JoinRequest): Promise<ClusterNetwork> {
    // Counted first: a leave of this network running meanwhile (syncOwn) must not take this host out.
    this.joining.set(req.name, (this.joining.get(req.name) ?? 0) + 1);
    try {
      const net = await this.enter(req);
      await this.kv.put(memberKey(req.name, this.host), enc({ host: this.host, vtep: this.vtep }));
      return net;
    } catch (e) {
      this.settle(req.name);
      throw e;
    }
  }

  /**
   * The network's record with this host among its hosts (a compare-and-set on the revision read:
   * a host leaving or retiring it at the same moment makes one of the two try again), or a new
   * record when there is none (unless `create` is false: then null).
   */
  private async enter(req: JoinRequest): Promise<ClusterNetwork>;
  private async enter(req: JoinRequest, create: false): Promise<ClusterNetwork | null>;
  private async enter(req: JoinRequest, create = true): Promise<ClusterNetwork | null> {
    const key = `networks.${req.name}`;
    for (let attempt = 1; attempt <= CREATE_ATTEMPTS * 2; attempt++) {
      const e = await this.kv.get(key);
      if (!e || e.operation !== 'PUT') {
        if (!create) return null;
        const created = await this.createNetwork(req);
        if (created) return created;
        continue; // another host created it first: join theirs
      }
      const r = e.json<StoredNetwork>();
      if (req.subnet !== null && req.subnet !== r.subnet) {
        throw new DriverError(
          'LN_ERR_CLUSTER_SUBNET',
          `cluster network ${req.name} already has subnet ${r.subnet} (allocated by host ${r.createdBy}); ` +
            `create it with --subnet ${r.subnet} or without --subnet`,
        );
      }
      if (!Array.isArray(r.hosts) || r.hosts.includes(this.host)) return networkOf(r);
      try {
        await this.kv.update(key, enc({ ...r, hosts: [...r.hosts, this.host].sort() }), e.revision);
        return networkOf(r);
      } catch (err) {
        if (!isWrongRevision(err)) throw err;
        await pause(attempt);
      }
    }
    throw new DriverError('LN_ERR_CLUSTER_UNAVAILABLE', `cluster network ${req.name}: its record in the KV bucket kept changing; try again`);
  }

  /** The RequestPool that joined `name` is over (its pool in the log, or refused). */
  settle(name: string): void {
    const n = (this.joining.get(name) ?? 0) - 1;
    if (n > 0) this.joining.set(name, n);
    else this.joining.delete(name);
  }

  /**
   * A block for this host: one it claimed that is not in `owned` (its log), else the lowest block
   * no host holds yet (compare-and-set: a block another host won is skipped). Returns its CIDR.
   */
  async claimBlock(net: ClusterNetwork, owned: readonly string[]): Promise<string> {
    const taken = new Set<number>();
    for await (const k of await this.kv.keys(`blocks.${net.name}.*`)) {
      const i = Number(k.split('.').pop());
      taken.add(i);
      // Claimed by this host before a crash, but not in its log: take it back first (written
      // again, so a leave of the network that read it before, still running, cannot delete it).
      const block = blockAt(net.subnet, net.blockLen, i);
      if (owned.includes(block)) continue;
      const e = await this.kv.get(k);
      if (e?.operation === 'PUT' && e.string() === this.host && (await this.rewrite(k, this.host, e.revision))) return block;
    }
    const count = blockCount(net.subnet, net.blockLen);
    for (let i = 0; i < count; i++) {
      if (taken.has(i)) continue;
      if (await this.tryCreate(`blocks.${net.name}.${i}`, this.host)) return blockAt(net.subnet, net.blockLen, i);
    }
    throw new DriverError('LN_ERR_IPAM_EXHAUSTED', `cluster network ${net.name}: every address block of ${net.subnet} is claimed by a host`);
  }

  /** Says that this host has an endpoint on cluster network `name` (or no longer has it). */
  async publishEndpoint(name: string, ep: { endpointId: string; address: string; mac: string } | { endpointId: string; gone: true }): Promise<void> {
    const key = `endpoints.${name}.${hostKey(this.host)}.${ep.endpointId}`;
    if ('gone' in ep) await this.kv.delete(key);
    else await this.kv.put(key, enc({ host: this.host, vtep: this.vtep, ...ep }));
  }

  /**
   * This host's heartbeat: its record written again, a compare-and-set on the revision it wrote
   * last. When that fails the record is written anew and the caller publishes this host's keys
   * again: `expired` when another host had deleted it, `rewritten` when it was changed otherwise
   * (a heartbeat that timed out in a reconnect and was stored after all, or a second host under
   * this --host).
   */
  async heartbeat(): Promise<'ok' | 'expired' | 'rewritten'> {
    const key = recordKey(this.host);
    try {
      this.hostRev = await this.kv.update(key, hostRecord(this.host, this.vtep), this.hostRev);
      return 'ok';
    } catch (e) {
      if (!isWrongRevision(e)) {
        // The bucket itself is gone (deleted, or a JetStream store wiped): made again for the next
        // beat, which finds its record gone and publishes everything (syncOwn rebuilds the rest).
        if (isBucketGone(e)) {
          const kv = await this.bind().catch(() => null);
          // What the watch saw was of the old bucket: nothing is known until a new watch catches up.
          if (kv) [this.kv, this.mirror] = [kv, new KeyMirror()];
        }
        throw e;
      }
      const now = await this.kv.get(key);
      this.hostRev = await this.kv.put(key, hostRecord(this.host, this.vtep));
      return now?.operation === 'PUT' ? 'rewritten' : 'expired';
    }
  }

  /**
   * Writes this host's member and endpoint keys from its log, removes those it no longer has, and
   * leaves the cluster networks it is among the hosts of but no longer has (`dropHost`).
   * Then what the bucket should hold of this host's networks and lacks (it lost its data: a
   * JetStream store wiped, a bucket deleted) is written back from the log (`restoreNetwork`).
   * Returns the networks it retired (it was the last host out), those it restored, and the
   * conflicts found (the bucket holds another subnet, VNI or block owner than the log).
   */
  async syncOwn(own: () => OwnKeys): Promise<SyncOutcome> {
    const withJoining = () => {
      const o = own();
      const joining = [...this.joining.keys()].filter((n) => !o.members.includes(n));
      return joining.length === 0 ? o : { ...o, members: [...o.members, ...joining].sort() };
    };
    await syncOwnKeys(this.kv, this.mirror, this.host, this.vtep, withJoining);
    const gone = (name: string) => () => !withJoining().members.includes(name);
    const retired: string[] = [];
    for (const { key, value } of this.mirror.withPrefix('networks.')) {
      const name = key.slice('networks.'.length);
      const r = parseRecord(value);
      if (!Array.isArray(r?.hosts)) continue; // an older ledgernet's record: never retired
      if (!gone(name)()) {
        // It has the network but is not among its hosts (it joined with a ledgernet before this
        // one): added, unless its log has another subnet (a conflict, which restoreNetwork names).
        const mine = own().networks?.find((n) => n.name === name);
        if (!r.hosts.includes(this.host) && (mine === undefined || mine.subnet === r.subnet)) await this.enter({ name, subnet: r.subnet, propose: () => r.subnet }, false);
      } else if ((r.hosts.includes(this.host) || r.hosts.length === 0) && (await this.dropHost(name, this.host, gone(name)))) {
        retired.push(name);
      }
    }
    const restored: string[] = [];
    const conflicts: string[] = [];
    for (const net of own().networks ?? []) {
      const r = await this.restoreNetwork(net);
      if (r.restored) restored.push(net.name);
      conflicts.push(...r.conflicts);
    }
    return { retired, restored, conflicts };
  }

  /**
   * Writes back what the bucket lacks of a network this host's log has: its record (this host's
   * subnet, VNI and block size; it is among its hosts), its VNI and subnet keys, and this host's
   * blocks, each only if absent (create), so the next host to join gets the same network and no
   * block of this host goes to another. Whatever the bucket holds otherwise is a conflict, named.
   * Only keys this host's watch does not show are touched (a full publish costs nothing more).
   */
  private async restoreNetwork(net: OwnNetwork): Promise<{ restored: boolean; conflicts: string[] }> {
    const key = `networks.${net.name}`;
    const conflicts: string[] = [];
    let restored = false;
    const record = this.mirror.withPrefix(key).find((k) => k.key === key);
    let held = record ? parseRecord(record.value) : null;
    if (!record) {
      // As createNetwork: the VNI and subnet keys first, then the record.
      for (const [guard, what] of [[subnetKey(net.subnet), `subnet ${net.subnet}`], [`vnis.${net.vni}`, `VNI ${net.vni}`]] as const) {
        const owner = await this.ownerOf(guard, net.name);
        if (owner !== net.name) conflicts.push(`cluster network ${net.name}: its ${what} (this host's log) is cluster network ${owner}'s in the KV bucket`);
      }
      if (conflicts.length > 0) return { restored, conflicts };
      if (await this.tryCreate(key, enc({ name: net.name, subnet: net.subnet, vni: net.vni, blockLen: net.blockLen, createdBy: this.host, hosts: [this.host] }))) restored = true;
      else {
        const e = await this.kv.get(key);
        held = e?.operation === 'PUT' ? e.json<StoredNetwork>() : null;
      }
    }
    if (held && (held.subnet !== net.subnet || held.vni !== net.vni)) {
      // Its blocks are of another subnet there: nothing of this host's is written.
      return { restored, conflicts: [`cluster network ${net.name}: this host has subnet ${net.subnet} and VNI ${net.vni}, the KV bucket ${held.subnet} and VNI ${held.vni} (created by ${held.createdBy})`] };
    }
    const seen = new Map(this.mirror.withPrefix(`blocks.${net.name}.`).map((b) => [b.key, b.value]));
    for (const block of net.blocks) {
      const i = blockIndex(net.subnet, net.blockLen, block);
      const blockKey = `blocks.${net.name}.${i}`;
      if (i === null || seen.get(blockKey) === this.host) continue;
      if (await this.tryCreate(blockKey, this.host)) {
        restored = true;
        continue;
      }
      const owner = (await this.kv.get(blockKey))?.string();
      if (owner !== undefined && owner !== this.host) conflicts.push(`cluster network ${net.name}: block ${block} is this host's (its log) but host ${owner}'s in the KV bucket: addresses of it may be on both`);
    }
    return { restored, conflicts };
  }


  /**
   * Takes `host` out of cluster network `name`: this host, whose log no longer has it (`still`,
   * asked again before each write: a join of it may start meanwhile), or a host forgotten for good
   * (`forgetHost`). Its address blocks are given back (no address of them is in use), then its
   * name leaves the record's hosts by compare-and-set. The last host out retires the network: the
   * record goes (compare-and-set), then its VNI, subnet and any block left, each at the revision
   * this host's watch saw before the record went, so a new network of the name (which writes them
   * again after creating its record) keeps its own. True when it retired it.
   */
  private async dropHost(name: string, host: string, still: () => boolean = () => true): Promise<boolean> {
    for (const b of this.mirror.withPrefix(`blocks.${name}.`)) {
      if (b.value === host && still()) await deleteAt(this.kv, b.key, b.rev);
    }
    const key = `networks.${name}`;
    for (let attempt = 1; attempt <= CREATE_ATTEMPTS * 2; attempt++) {
      const e = await this.kv.get(key);
      if (!e || e.operation !== 'PUT') return false;
      const r = e.json<StoredNetwork>();
      if (!Array.isArray(r.hosts) || !(r.hosts.includes(host) || r.hosts.length === 0) || !still()) return false;
      const rest = r.hosts.filter((h) => h !== host);
      // A member key of another host that is not among the hosts: it joined with a ledgernet
      // before this one, so it still has the network (it adds itself once it runs this one).
      // (Asked again of the bucket: this host's watch may not have delivered a leaving host's delete yet.)
      const unlisted = rest.length === 0 && (await this.anyLive(this.mirror.withPrefix(`members.${name}.`).filter((m) => m.key !== memberKey(name, host))));
      const held = [...this.mirror.withPrefix(`blocks.${name}.`), ...this.mirror.withPrefix('vnis.'), ...this.mirror.withPrefix('subnets.')].filter((k) => k.key.startsWith('blocks.') || k.value === name);
      try {
        if (rest.length > 0 || unlisted) {
          if (rest.length < r.hosts.length) await this.kv.update(key, enc({ ...r, hosts: rest }), e.revision);
          return false;
        }
        await this.kv.delete(key, { previousSeq: e.revision });
      } catch (err) {
        if (!isWrongRevision(err)) throw err;
        await pause(attempt);
        continue;
      }
      for (const k of held) await deleteAt(this.kv, k.key, k.rev);
      return true;
    }
    throw new DriverError('LN_ERR_CLUSTER_UNAVAILABLE', `cluster network ${name}: its record in the KV bucket kept changing while host ${host} was taken out of it`);
  }

  /**
   * Forgets a host that is gone for good (`ledgernet cluster forget`): only one the cluster has
   * expired (no record in the bucket: a host that is alive, or not yet timed out, is refused). It
   * is taken out of every network it had (`dropHost`: the last one out retires it), and its
   * blocks and any member or endpoint key left go. Without this its blocks stay claimed for ever
   * (expiry keeps them: the host may be alive behind a partition).
   */
  async forgetHost(host: string): Promise<{ networks: string[]; retired: string[]; blocks: number }> {
    if (host === this.host) throw new DriverError('LN_ERR_BAD_REQUEST', `${host} is this host; to take it out of a cluster network, remove the network here (docker network rm)`);
    const record = await this.kv.get(recordKey(host));
    if (record?.operation === 'PUT') {
      const seen = hostOf(host, record.string())?.lastSeen ?? 'unknown';
      throw new DriverError('LN_ERR_CONFLICT', `host ${host} is still in the cluster (its record was last written at ${seen}); a host is forgotten only once the others expired it: stop its ledgernet for good and wait for --cluster-host-timeout`);
    }
    const blocks = this.mirror.withPrefix('blocks.').filter((b) => b.value === host);
    const listedIn = this.mirror.withPrefix('networks.').filter((n) => parseRecord(n.value)?.hosts?.includes(host)).map((n) => n.key.slice('networks.'.length)).sort();
    const keys = this.mirror.keysOf(host);
    if (listedIn.length === 0 && blocks.length === 0 && keys.size === 0) {
      throw new DriverError('LN_ERR_BAD_REQUEST', `host ${host} is not in the cluster: no network lists it and it holds no address block`);
    }
    const retired: string[] = [];
    for (const name of listedIn) if (await this.dropHost(name, host)) retired.push(name);
    // Blocks of networks whose record did not list it (an older ledgernet's: dropHost gave back
    // the others), and its keys left.
    for (const b of blocks) if (!listedIn.some((n) => b.key.startsWith(`blocks.${n}.`))) await deleteAt(this.kv, b.key, b.rev);
    for (const [k, rev] of keys) await deleteAt(this.kv, k, rev);
    return { networks: listedIn, retired, blocks: blocks.length };
  }


  /** Removes an expired host's record and keys (src/events/cluster/host-keys.ts); null: it is back, or already removed. */
  reap(host: string, rev: number | null): Promise<number | null> {
    return reapHost(this.kv, this.mirror, host, rev);
  }

  /** True once the watch has caught up with the bucket (what syncOwn and reap need). */
  get watching(): boolean {
    return this.mirror.ready;
  }

  /**
   * Every member and endpoint key of other hosts, first as the bucket holds them now, then each
   * change as it comes; deletes as null. `onSeen` hears of every host record (this host's too)
   * and of every other host's key put. Stops when `stop` is called, or `onEnd` says it ended.
   */
  async watchPeers(onChange: (c: PeerChange) => void, onSeen: (s: HostSeen) => void = () => undefined, onEnd: () => void = () => undefined): Promise<{ stop(): void }> {
    const it = await this.kv.watch({ key: '>' });
    const mirror = new KeyMirror();
    this.mirror = mirror;
    void (async () => {
      for await (const e of it) {
        mirror.seen(e.key, e.operation === 'PUT' ? e.revision : null, e.isUpdate, () => e.string());
        const [kind, token] = e.key.split('.');
        const host = token === undefined ? undefined : hostOfKey(token);
        if (kind === 'hosts' && host) onSeen({ host, rev: e.operation === 'PUT' ? e.revision : null, record: true });
        const c = peerChangeOf(e.key, e.operation === 'PUT' ? e.string() : null);
        if (!c || c.host === this.host) continue;
        if (e.operation === 'PUT') onSeen({ host: c.host, rev: null, record: false });
        onChange(c);
      }
    })()
      .catch(() => undefined)
      .finally(onEnd);
    return { stop: () => it.stop() };
  }

  /** Every host record of the bucket (`hosts.<host>`): its VTEP and when it last wrote it. */
  async hosts(): Promise<ClusterHost[]> {
    const out: ClusterHost[] = [];
    for await (const k of await this.kv.keys('hosts.*')) {
      const e = await this.kv.get(k);
      if (e?.operation !== 'PUT') continue;
      const h = hostOf(hostOfKey(k.slice('hosts.'.length)), e.string());
      if (h) out.push(h);
    }
    return out.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
  }

  /**
   * A new record for `req` with this host as its only host, or null when another host created
   * one first (its subnet and VNI are the network's). The subnet and VNI keys are taken before
   * the record and written again after it: a host retiring an earlier network of this name
   * removes them only at the revisions it saw before that record went.
   */
  private async createNetwork(req: JoinRequest): Promise<ClusterNetwork | null> {
    const subnet = req.subnet ?? req.propose(await this.takenSubnets());
    const guard = async (key: string) => {
      const owner = await this.ownerOf(key, req.name);
      if (owner !== req.name) {
        throw new DriverError('LN_ERR_IPAM_OVERLAP', `subnet ${subnet} is cluster network ${owner}'s; choose another --subnet for ${req.name}`);
      }
    };
    await guard(subnetKey(subnet));
    const net: ClusterNetwork = { name: req.name, subnet, vni: await this.takeVni(req.name), blockLen: blockLenFor(subnet), createdBy: this.host };
    if (!(await this.tryCreate(`networks.${req.name}`, enc({ ...net, hosts: [this.host] })))) return null;
    await guard(subnetKey(subnet));
    if ((await this.ownerOf(`vnis.${net.vni}`, req.name)) !== req.name) {
      throw new DriverError('LN_ERR_CLUSTER_UNAVAILABLE', `cluster network ${req.name}: VNI ${net.vni} was taken by another network while it was created; try again`);
    }
    return net;
  }

  /**
   * Subnets of cluster networks, and subnets claimed (`subnets.*`) by a host that then lost the
   * race for the network's name: the claim stays, so a proposal must avoid it too.
   */
  private async takenSubnets(): Promise<string[]> {
    const out: string[] = [];
    for await (const k of await this.kv.keys('networks.*')) {
      const e = await this.kv.get(k);
      if (e && e.operation === 'PUT') out.push(e.json<ClusterNetwork>().subnet);
    }
    for await (const k of await this.kv.keys('subnets.*')) {
      // IPv4 only (cluster networks are): 10_240_1_0_24 is 10.240.1.0/24.
      const m = /^subnets\.(\d+)_(\d+)_(\d+)_(\d+)_(\d+)$/.exec(k);
      if (m) out.push(`${m[1]}.${m[2]}.${m[3]}.${m[4]}/${m[5]}`);
    }
    return out;
  }

  /** The first VNI from the name's own start that is free or already the name's. */
  private async takeVni(name: string): Promise<number> {
    let vni = firstVni(name);
    for (let i = 0; i < MAX_PROBES; i++, vni = nextVni(vni)) {
      if ((await this.ownerOf(`vnis.${vni}`, name)) === name) return vni;
    }
    throw new DriverError('LN_ERR_CLUSTER_UNAVAILABLE', `cluster network ${name}: no free VNI found after ${MAX_PROBES} tries`);
  }

  /**
   * Who holds `key`: `value` after creating it, or after writing it again when it already held
   * `value` (a new revision, which a retiring host's compare-and-set then misses), or whoever else
   * created it first.
   */
  private async ownerOf(key: string, value: string): Promise<string> {
    for (let attempt = 1; attempt <= CREATE_ATTEMPTS; attempt++) {
      if (await this.tryCreate(key, value)) return value;
      const e = await this.kv.get(key);
      if (e?.operation !== 'PUT') continue; // removed meanwhile: create it
      if (e.string() !== value) return e.string();
      if (await this.rewrite(key, value, e.revision)) return value;
      await pause(attempt);
    }
    throw new DriverError('LN_ERR_CLUSTER_UNAVAILABLE', `the cluster KV bucket: ${key} kept changing`);
  }

  /** Is any of these keys still in the bucket? */
  private async anyLive(keys: readonly { key: string }[]): Promise<boolean> {
    for (const { key } of keys) if ((await this.kv.get(key))?.operation === 'PUT') return true;
    return false;
  }

  /** Writes `value` to `key` again if its revision is still `rev` (compare-and-set); false when not. */
  private async rewrite(key: string, value: string, rev: number): Promise<boolean> {
    try {
      await this.kv.update(key, value, rev);
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
  private async tryCreate(key: string, value: string): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.kv.create(key, value);
        return true;
      } catch (e) {
        const now = await this.kv.get(key);
        if (now && now.operation === 'PUT') return false;
        if (attempt >= CREATE_ATTEMPTS || !isWrongRevision(e)) {
          throw new DriverError('LN_ERR_CLUSTER_UNAVAILABLE', `the cluster KV bucket refused ${key}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
        }
        await pause(attempt);
      }
    }
  }
}

/**
 * The cluster port that connects on first use and again after a failure, so serve starts and
 * local Docker calls go on without NATS; only joining a network or claiming a block waits for it.
 */
export function lazyCluster(open: () => Promise<ClusterKv>): ClusterPort & { kv(): Promise<ClusterKv> } {
  let opening: Promise<ClusterKv> | null = null;
  const get = () => {
    opening ??= open().catch((e: unknown) => {
      opening = null;
      throw new DriverError('LN_ERR_CLUSTER_UNAVAILABLE', `the cluster's KV bucket cannot be reached: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    });
    return opening;
  };
  return {
    joinNetwork: async (req) => (await get()).joinNetwork(req),
    claimBlock: async (net, owned) => (await get()).claimBlock(net, owned),
    settle: (name) => {
      void opening?.then((kv) => kv.settle(name), () => undefined);
    },
    kv: get,
  };
}

/** A host as its record in the bucket says: `lastSeen` is the record's `at` (null when it has none). */
export interface ClusterHost {
  readonly host: string;
  readonly vtep: string | null;
  readonly lastSeen: string | null;
}

function hostOf(host: string, value: string): ClusterHost | null {
  try {
    const v = JSON.parse(value) as Record<string, unknown>;
    const str = (k: string) => (typeof v[k] === 'string' ? (v[k] as string) : null);
    return { host, vtep: str('vtep'), lastSeen: str('at') };
  } catch {
    return null;
  }
}

/** A member or endpoint key of the bucket as a peer change; null for other keys or bad values. */
export function peerChangeOf(key: string, value: string | null): PeerChange | null {
  const [kind, cluster, token, endpointId] = key.split('.');
  const host = token === undefined ? undefined : hostOfKey(token);
  if (!cluster || !host) return null;
  try {
    const v = value === null ? null : (JSON.parse(value) as Record<string, unknown>);
    const str = (k: string) => (typeof v?.[k] === 'string' ? (v[k] as string) : null);
    if (kind === 'members' && endpointId === undefined) {
      const vtep = str('vtep');
      if (v !== null && !vtep) return null;
      return { op: 'member', cluster, host, member: v === null || !vtep ? null : { host, vtep } };
    }
    if (kind === 'endpoints' && endpointId) {
      const [vtep, address, mac] = [str('vtep'), str('address'), str('mac')];
      const endpoint = v !== null && vtep && address && mac ? { host, vtep, endpointId, address, mac } : null;
      if (v !== null && !endpoint) return null;
      return { op: 'endpoint', cluster, host, endpointId, endpoint };
    }
  } catch {
    return null;
  }
  return null;
}
