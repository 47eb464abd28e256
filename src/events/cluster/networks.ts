// A cluster network's life in the KV bucket (src/events/cluster/kv.ts lists the keys): created by
// the first host that asks for it, joined by the others, its address blocks claimed one host at a
// time, left by each host whose log no longer has it, retired by the last one out, written back
// from the hosts' logs when the bucket lost it, and taken from a host the operator forgot. Every
// write is a compare-and-set (src/events/cluster/cas.ts).
import type { KV } from '@nats-io/kv';
import { DriverError } from '../../errors.ts';
import { overlaps, parsePrefix } from '../domain/cidr.ts';
import { blockAt, blockCount, blockIndex, blockLenFor, firstVni, nextVni, type ClusterNetwork, type JoinRequest, type StaticAddress } from '../domain/cluster.ts';
import { anyLive, CREATE_ATTEMPTS, deleteSeen, deleteWrittenBefore, isWrongRevision, listKeys, ownerOf, pause, rewrite, tryCreate } from './cas.ts';
import { memberKey, ownValues, recordKey, sameValue, type KeyMirror, type OwnKeys, type OwnNetwork } from './host-keys.ts';
import { NETWORK_FORMAT, readNetwork, unreadableNetwork, type StoredNetwork } from './network-record.ts';
import type { UnreadableKeys } from './unreadable.ts';

/** The bucket as its ClusterKv holds it now: `kv` changes when the bucket is made again, `mirror` with each new watch. */
export interface Bucket {
  kv: KV;
  mirror: KeyMirror;
  /** This host's name. */
  readonly host: string;
  /**
   * The revision from which keys held under this host's name are this instance's: 0 (or absent)
   * when the record it found on joining was its own or an older ledgernet's (or there was none);
   * else (another instance of this name, timed out: kv.ts admitInstance) its own record's first write,
   * so the blocks that instance held are not taken for this one's. 0 again once the bucket is
   * made anew (its revisions start over, and nothing of that instance is in it).
   */
  ownSince?: number;
  /** Where records this ledgernet cannot read are said, once per key (network-record.ts). */
  readonly unreadable?: UnreadableKeys;
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

const enc = (v: unknown) => JSON.stringify(v);
const subnetKey = (cidr: string) => `subnets.${cidr.replace(/[.:/]/g, '_')}`;
const recordOf = (name: string) => `networks.${name}`;

/** How many VNIs a name tries before giving up (the range is far larger). */
const MAX_PROBES = 4096;

/** The name of a `networks.<name>` key. */
const nameOfRecord = (key: string) => key.slice('networks.'.length);

/**
 * The record at `key` (`networks.<name>`) as this ledgernet reads it (network-record.ts), with its
 * fields as written; null when it cannot read it, said once per key (`skipped`: what is done
 * instead).
 */
function recordAt(b: Pick<Bucket, 'unreadable'>, key: string, value: string, skipped: string): { r: StoredNetwork; fields: Readonly<Record<string, unknown>> } | null {
  const read = readNetwork(nameOfRecord(key), value);
  if (read.ok) return { r: read.record, fields: read.fields };
  b.unreadable?.say(key, read.why, `cluster: ${unreadableNetwork(key, read.why).message}; ${skipped}`);
  return null;
}

/** The record of `key` as this ledgernet reads it, or null (unreadable, skipped without a word: the caller says why). */
const parseRecord = (key: string, value: string): StoredNetwork | null => {
  const read = readNetwork(nameOfRecord(key), value);
  return read.ok ? read.record : null;
};

/** The record as joinNetwork returns it: the network, without who has it (that changes). */
function networkOf(r: StoredNetwork): ClusterNetwork {
  return { name: r.name, subnet: r.subnet, vni: r.vni, blockLen: r.blockLen, createdBy: r.createdBy };
}

/**
 * The network's record with this host among its hosts (a compare-and-set on the revision read:
 * a host leaving or retiring it at the same moment makes one of the two try again), or a new
 * record when there is none (unless `create` is false: then null). A different --subnet than the
 * one it holds is refused, naming it.
 */
export async function enter(b: Bucket, req: JoinRequest): Promise<ClusterNetwork>;
export async function enter(b: Bucket, req: JoinRequest, create: false): Promise<ClusterNetwork | null>;
export async function enter(b: Bucket, req: JoinRequest, create = true): Promise<ClusterNetwork | null> {
  const key = recordOf(req.name);
  for (let attempt = 1; attempt <= CREATE_ATTEMPTS * 2; attempt++) {
    const e = await b.kv.get(key);
    if (!e || e.operation !== 'PUT') {
      if (!create) return null;
      const created = await createNetwork(b, req);
      if (created) return created;
      continue; // another host created it first: join theirs
    }
    const read = readNetwork(req.name, e.string());
    if (!read.ok) throw unreadableNetwork(key, read.why);
    const r = read.record;
    if (req.subnet !== null && req.subnet !== r.subnet) {
      throw new DriverError(
        'LN_ERR_CLUSTER_SUBNET',
        `cluster network ${req.name} already has subnet ${r.subnet} (allocated by host ${r.createdBy}); ` +
          `create it with --subnet ${r.subnet} or without --subnet`,
      );
    }
    if (req.size !== undefined && !r.subnet.endsWith(`/${req.size}`)) {
      throw new DriverError(
        'LN_ERR_CLUSTER_SUBNET',
        `cluster network ${req.name} already has subnet ${r.subnet} (allocated by host ${r.createdBy}), not a /${req.size}; ` +
          `create it with --subnet ${r.subnet} or without --subnet`,
      );
    }
    if (!Array.isArray(r.hosts) || r.hosts.includes(b.host)) return networkOf(r);
    try {
      await b.kv.update(key, enc({ ...read.fields, v: NETWORK_FORMAT, hosts: [...r.hosts, b.host].sort() }), e.revision);
      return networkOf(r);
    } catch (err) {
      if (!isWrongRevision(err)) throw err;
      await pause(attempt);
    }
  }
  throw new DriverError('LN_ERR_CLUSTER_UNAVAILABLE', `cluster network ${req.name}: its record in the KV bucket kept changing; try again`);
}

/**
 * A new record for `req` with this host as its only host, or null when another host created
 * one first (its subnet and VNI are the network's). The subnet and VNI keys are taken before
 * the record and written again after it: a host retiring an earlier network of this name
 * removes them only at the revisions it saw before that record went.
 */
async function createNetwork(b: Bucket, req: JoinRequest): Promise<ClusterNetwork | null> {
  const subnet = await takeSubnet(b, req);
  const guard = async (key: string) => {
    const owner = await ownerOf(b.kv, key, req.name);
    if (owner !== req.name) throw overlap(subnet, owner, req.name);
  };
  const net: ClusterNetwork = { name: req.name, subnet, vni: await takeVni(b.kv, req.name), blockLen: blockLenFor(subnet), createdBy: b.host };
  if (!(await tryCreate(b.kv, recordOf(req.name), enc({ v: NETWORK_FORMAT, ...net, hosts: [b.host] })))) return null;
  await guard(subnetKey(subnet));
  if ((await ownerOf(b.kv, `vnis.${net.vni}`, req.name)) !== req.name) {
    throw new DriverError('LN_ERR_CLUSTER_UNAVAILABLE', `cluster network ${req.name}: VNI ${net.vni} was taken by another network while it was created; try again`);
  }
  return net;
}

/** How many subnets a network without --subnet proposes, each lost to another network at once, before it gives up. */
const SUBNET_PROPOSALS = 16;

const overlap = (subnet: string, owner: string, name: string) =>
  new DriverError('LN_ERR_IPAM_OVERLAP', `subnet ${subnet} is cluster network ${owner}'s; choose another --subnet for ${name}`);

/** The refusal of a --subnet that overlaps (and is not equal to) another cluster network's subnet. */
const overlapOf = (subnet: string, other: HeldSubnet, name: string) =>
  new DriverError('LN_ERR_IPAM_OVERLAP', `subnet ${subnet} overlaps subnet ${other.subnet} of cluster network ${other.owner}; choose another --subnet for ${name}`);

/**
 * The subnet for a new record, claimed for `req.name` (its `subnets.*` key). The --subnet asked
 * for, refused when another network holds it or a subnet overlapping it; without one, a proposal
 * avoiding every subnet taken, proposed again when another host claimed it (or one overlapping it)
 * for another network between the listing and the claim (hosts creating networks at the same
 * moment propose the same lowest free subnet). A claim's key is its exact CIDR, so two hosts
 * claiming different overlapping subnets at once both get theirs: each looks again after its
 * claim, and the later one (by revision) takes its key back (`earlierOverlap`).
 */
async function takeSubnet(b: Bucket, req: JoinRequest): Promise<string> {
  const lost: string[] = [];
  for (;;) {
    const subnet = req.subnet ?? req.propose([...(await takenSubnets(b)), ...lost]);
    if (req.subnet !== null) {
      const [other] = await overlapping(b, subnet, req.name);
      if (other) throw overlapOf(subnet, other, req.name);
    }
    const owner = await ownerOf(b.kv, subnetKey(subnet), req.name);
    const other = owner === req.name ? await earlierOverlap(b, subnet, req.name) : null;
    if (owner === req.name && other === null) return subnet;
    const refusal = other ? overlapOf(subnet, other, req.name) : overlap(subnet, owner, req.name);
    if (req.subnet !== null || lost.length + 1 >= SUBNET_PROPOSALS) throw refusal;
    lost.push(subnet);
  }
}

/** A subnet the bucket gives another network: its record's, or a `subnets.*` claim (`rev`: the claim's revision). */
interface HeldSubnet {
  readonly subnet: string;
  readonly owner: string;
  readonly claim: boolean;
  readonly rev: number;
}

/** The CIDR of a `subnets.*` key: IPv4 only (cluster networks are): 10_240_1_0_24 is 10.240.1.0/24. */
function subnetOfKey(key: string): string | null {
  const m = /^subnets\.(\d+)_(\d+)_(\d+)_(\d+)_(\d+)$/.exec(key);
  return m ? `${m[1]}.${m[2]}.${m[3]}.${m[4]}/${m[5]}` : null;
}

/**
 * The claims (`subnets.*`), then the records, of networks other than `name` whose subnet overlaps
 * `subnet` without being it (an equal one is its key's, which ownerOf settles). Claims first: a
 * claim rewritten after its network's record was made (createNetwork's guard) is then read with
 * that record already there.
 */
async function overlapping(b: Bucket, subnet: string, name: string): Promise<HeldSubnet[]> {
  const { kv } = b;
  const p = parsePrefix(subnet);
  if (!p) return [];
  const hits = (cidr: string | null, owner: string) => {
    const q = cidr === null ? null : parsePrefix(cidr);
    return q !== null && owner !== name && overlaps(p, q) && !(q.base === p.base && q.len === p.len);
  };
  const out: HeldSubnet[] = [];
  for (const k of await listKeys(kv, 'subnets.*')) {
    const cidr = subnetOfKey(k);
    const e = await kv.get(k);
    if (e?.operation === 'PUT' && hits(cidr, e.string())) out.push({ subnet: cidr!, owner: e.string(), claim: true, rev: e.revision });
  }
  for (const k of await listKeys(kv, 'networks.*')) {
    const e = await kv.get(k);
    if (e?.operation !== 'PUT') continue;
    // A record this ledgernet cannot read still holds the subnets written in it.
    for (const held of subnetsOf(b, k, e.string())) if (hits(held, nameOfRecord(k))) out.push({ subnet: held, owner: nameOfRecord(k), claim: false, rev: e.revision });
  }
  return out;
}

/**
 * After this host claimed `subnet` for `name`: a subnet overlapping it that another network
 * claimed before (a lower revision), or that another network's record has (it was claimed and
 * kept before); this claim is then taken back (at the revision read: a host of the same name that
 * wrote it again backs out alike). Null when this claim stands: an overlapping claim made after
 * it is the other host's to take back.
 */
async function earlierOverlap(b: Bucket, subnet: string, name: string): Promise<HeldSubnet | null> {
  const { kv } = b;
  const key = subnetKey(subnet);
  const mine = await kv.get(key);
  const rev = mine?.operation === 'PUT' ? mine.revision : Number.MAX_SAFE_INTEGER;
  const other = (await overlapping(b, subnet, name)).find((o) => !o.claim || o.rev < rev);
  if (!other) return null;
  await deleteSeen(kv, key, rev, (owner) => owner === name);
  return other;
}

/**
 * Subnets of cluster networks, and subnets claimed (`subnets.*`) by a host that then lost the
 * race for the network's name: the claim stays, so a proposal must avoid it too.
 */
async function takenSubnets(b: Bucket): Promise<string[]> {
  const { kv } = b;
  const out: string[] = [];
  for (const k of await listKeys(kv, 'networks.*')) {
    const e = await kv.get(k);
    if (e && e.operation === 'PUT') out.push(...subnetsOf(b, k, e.string()));
  }
  for (const k of await listKeys(kv, 'subnets.*')) {
    const cidr = subnetOfKey(k);
    if (cidr) out.push(cidr);
  }
  return out;
}

/**
 * The subnet of the record at `key`, or, when this ledgernet cannot read it (said once per key),
 * every subnet written in it: never handed out to another network.
 */
function subnetsOf(b: Bucket, key: string, value: string): readonly string[] {
  const read = readNetwork(nameOfRecord(key), value);
  if (read.ok) return [read.record.subnet];
  const kept = read.subnets.length > 0 ? `its subnet(s) ${read.subnets.join(', ')} stay taken` : 'no subnet could be read from it';
  b.unreadable?.say(key, read.why, `cluster: ${unreadableNetwork(key, read.why).message}; skipped (${kept})`);
  return read.subnets;
}

/** The first VNI from the name's own start that is free or already the name's. */
async function takeVni(kv: KV, name: string): Promise<number> {
  let vni = firstVni(name);
  for (let i = 0; i < MAX_PROBES; i++, vni = nextVni(vni)) {
    if ((await ownerOf(kv, `vnis.${vni}`, name)) === name) return vni;
  }
  throw new DriverError('LN_ERR_CLUSTER_UNAVAILABLE', `cluster network ${name}: no free VNI found after ${MAX_PROBES} tries`);
}

/**
 * A block for this host: one it claimed that is not in `owned` (its log), else the lowest block
 * no host holds yet (compare-and-set: a block another host won is skipped). Returns its CIDR.
 * One held under its name is taken back only if this instance claimed it (`ownSince`): another
 * machine that ran under this name before may still hand out its addresses.
 */
export async function claimBlock(b: Bucket, net: ClusterNetwork, owned: readonly string[]): Promise<string> {
  const taken = new Set<number>();
  for (const k of await listKeys(b.kv, `blocks.${net.name}.*`)) {
    const i = Number(k.split('.').pop());
    taken.add(i);
    // Claimed by this instance before a crash, but not in its log: take it back first (written
    // again, so a leave of the network that read it before, still running, cannot delete it).
    const block = blockAt(net.subnet, net.blockLen, i);
    if (owned.includes(block)) continue;
    const e = await b.kv.get(k);
    if (e?.operation === 'PUT' && e.string() === b.host && e.revision > (b.ownSince ?? 0) && (await rewrite(b.kv, k, b.host, e.revision))) return block;
  }
  const count = blockCount(net.subnet, net.blockLen);
  for (let i = 0; i < count; i++) {
    if (taken.has(i)) continue;
    if (await tryCreate(b.kv, `blocks.${net.name}.${i}`, b.host)) return blockAt(net.subnet, net.blockLen, i);
  }
  throw new DriverError('LN_ERR_IPAM_EXHAUSTED', `cluster network ${net.name}: every address block of ${net.subnet} is claimed by a host`);
}

/**
 * Block `block` for this host, the block of a container's static address (`of.address`, `docker
 * run --ip`): created with this host as its holder, or written again when it holds it already (a
 * new revision, so a leave of the network that read it before, still running, cannot delete it:
 * cas.ts ownerOf). Another host's block is refused: that host hands out its addresses, and may
 * hand out this one later.
 * @throws DriverError `LN_ERR_IPAM_ADDRESS` naming the address, the block, its host and this host's blocks.
 */
export async function claimBlockOf(b: Bucket, net: ClusterNetwork, block: string, of: StaticAddress): Promise<void> {
  const i = blockIndex(net.subnet, net.blockLen, block);
  if (i === null) throw new DriverError('LN_ERR_INTERNAL', `cluster network ${net.name}: ${block} is not an address block of ${net.subnet}`);
  const owner = await ownerOf(b.kv, `blocks.${net.name}.${i}`, b.host);
  if (owner === b.host) return;
  throw new DriverError(
    'LN_ERR_IPAM_ADDRESS',
    `address ${of.address} of cluster network ${net.name} lies in address block ${block}, which host ${owner} holds (it hands out that block's addresses); ` +
      `pick an address of a block this host holds (${of.owned.length > 0 ? of.owned.join(', ') : 'none yet'}), or leave out --ip and let IPAM choose`,
  );
}

/**
 * The networks' side of a full publish (after this host's member and endpoint keys, written from
 * `own` with the networks it is joining as members): it leaves the cluster networks it is among
 * the hosts of but no longer has (`dropHost`), and adds itself to those it has without being
 * listed (it joined them with an older ledgernet). Then what the bucket should hold of this host's
 * networks and lacks (it lost its data: a JetStream store wiped, a bucket deleted) is written back
 * from the log (`restoreNetwork`).
 */
export async function syncNetworks(b: Bucket, own: () => OwnKeys, members: () => readonly string[]): Promise<SyncOutcome> {
  const gone = (name: string) => () => !members().includes(name);
  const retired: string[] = [];
  for (const { key, value } of b.mirror.withPrefix('networks.')) {
    const name = nameOfRecord(key);
    const r = recordAt(b, key, value, 'skipped: this host neither joins nor leaves it')?.r;
    if (!Array.isArray(r?.hosts)) continue; // an older ledgernet's record: never retired
    if (!gone(name)()) {
      // It has the network but is not among its hosts (it joined with a ledgernet before this
      // one): added, unless its log has another subnet (a conflict, which restoreNetwork names).
      const mine = own().networks?.find((n) => n.name === name);
      if (!r.hosts.includes(b.host) && (mine === undefined || mine.subnet === r.subnet)) await enter(b, { name, subnet: r.subnet, propose: () => r.subnet }, false);
    } else if ((r.hosts.includes(b.host) || r.hosts.length === 0) && (await dropHost(b, name, b.host, gone(name)))) {
      retired.push(name);
    }
  }
  const restored: string[] = [];
  const conflicts: string[] = [];
  for (const net of own().networks ?? []) {
    const r = await restoreNetwork(b, net);
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
async function restoreNetwork(b: Bucket, net: OwnNetwork): Promise<{ restored: boolean; conflicts: string[] }> {
  const key = recordOf(net.name);
  const conflicts: string[] = [];
  let restored = false;
  const record = b.mirror.get(key);
  const read = record ? readNetwork(net.name, record.value) : null;
  // Nothing of a record this ledgernet cannot read is written back or compared.
  if (read && !read.ok) return { restored, conflicts: [unreadableNetwork(key, read.why).message] };
  let held = read?.record ?? null;
  if (!record) {
    // As createNetwork: the VNI and subnet keys first, then the record.
    for (const [guard, what] of [[subnetKey(net.subnet), `subnet ${net.subnet}`], [`vnis.${net.vni}`, `VNI ${net.vni}`]] as const) {
      const owner = await ownerOf(b.kv, guard, net.name);
      if (owner !== net.name) conflicts.push(`cluster network ${net.name}: its ${what} (this host's log) is cluster network ${owner}'s in the KV bucket`);
    }
    if (conflicts.length > 0) return { restored, conflicts };
    if (await tryCreate(b.kv, key, enc({ v: NETWORK_FORMAT, name: net.name, subnet: net.subnet, vni: net.vni, blockLen: net.blockLen, createdBy: b.host, hosts: [b.host] }))) restored = true;
    else {
      const e = await b.kv.get(key);
      const now = e?.operation === 'PUT' ? readNetwork(net.name, e.string()) : null;
      if (now && !now.ok) return { restored, conflicts: [unreadableNetwork(key, now.why).message] };
      held = now?.record ?? null;
    }
  }
  if (held && (held.subnet !== net.subnet || held.vni !== net.vni)) {
    // Its blocks are of another subnet there: nothing of this host's is written.
    return { restored, conflicts: [otherNetwork(net, held)] };
  }
  const seen = new Map(b.mirror.withPrefix(`blocks.${net.name}.`).map((k) => [k.key, k.value]));
  for (const block of net.blocks) {
    const i = blockIndex(net.subnet, net.blockLen, block);
    const blockKey = `blocks.${net.name}.${i}`;
    if (i === null || seen.get(blockKey) === b.host) continue;
    if (await tryCreate(b.kv, blockKey, b.host)) {
      restored = true;
      continue;
    }
    const owner = (await b.kv.get(blockKey))?.string();
    if (owner !== undefined && owner !== b.host) conflicts.push(otherOwner(net, block, owner));
  }
  return { restored, conflicts };
}

/** The conflict of a network whose record in the bucket has another subnet or VNI than this host's log. */
const otherNetwork = (net: OwnNetwork, held: StoredNetwork) =>
  `cluster network ${net.name}: this host has subnet ${net.subnet} and VNI ${net.vni}, the KV bucket ${held.subnet} and VNI ${held.vni} (created by ${held.createdBy})`;
/** The conflict of a block of this host's log that the bucket gives to another host. */
const otherOwner = (net: OwnNetwork, block: string, owner: string) =>
  `cluster network ${net.name}: block ${block} is this host's (its log) but host ${owner}'s in the KV bucket: addresses of it may be on both`;

/** What the bucket, as this host's watch sees it, lacks of this host's log and holds against it (`driftOf`). */
export interface BucketDrift {
  /** Keys this host's log says the bucket holds and it does not (a full publish writes them again). */
  readonly missing: readonly string[];
  /** This host's member and endpoint keys that the bucket holds with other values (changed by hand: another address, MAC or VTEP), or holds though the log no longer has them (a removal that did not take); a full publish writes or removes them. */
  readonly changed: readonly string[];
  /** What the bucket holds against the log, as restoreNetwork names it. */
  readonly conflicts: readonly string[];
}

/**
 * Compares this host's log with the bucket as the watch saw it, reading nothing: its member and
 * endpoint keys (there, with the values its log gives them: `vtep` is this host's VTEP address), and
 * for each of its cluster networks the record (same subnet and VNI) and its blocks (this host's).
 * Keys deleted or changed by hand, or lost by a store, are found here on the next heartbeat
 * (src/events/cluster/heartbeat.ts), not only when this host happens to publish.
 */
export function driftOf(mirror: KeyMirror, host: string, vtep: string, own: OwnKeys): BucketDrift {
  const missing: string[] = [];
  const changed: string[] = [];
  const conflicts: string[] = [];
  const want = ownValues(host, vtep, own);
  for (const [key, value] of want) {
    const held = mirror.get(key);
    if (!held) missing.push(key);
    else if (!sameValue(value, held.value)) changed.push(key);
  }
  // Keys of this host the log no longer has (a removal that did not take): the other hosts would keep sending to them.
  for (const key of mirror.keysOf(host).keys()) if (!want.has(key)) changed.push(key);
  for (const net of own.networks ?? []) {
    const key = recordOf(net.name);
    const record = mirror.get(key);
    const read = record ? readNetwork(net.name, record.value) : null;
    const held = read?.ok ? read.record : null;
    if (!record) missing.push(key);
    else if (read && !read.ok) {
      conflicts.push(unreadableNetwork(key, read.why).message);
      continue;
    } else if (held && (held.subnet !== net.subnet || held.vni !== net.vni)) {
      conflicts.push(otherNetwork(net, held));
      continue;
    }
    for (const block of net.blocks) {
      const i = blockIndex(net.subnet, net.blockLen, block);
      if (i === null) continue;
      const owner = mirror.get(`blocks.${net.name}.${i}`)?.value;
      if (owner === undefined) missing.push(`blocks.${net.name}.${i}`);
      else if (owner !== host) conflicts.push(otherOwner(net, block, owner));
    }
  }
  return { missing: missing.sort(), changed: changed.sort(), conflicts };
}

/**
 * Takes `host` out of cluster network `name`: this host, whose log no longer has it (`still`,
 * asked again before each write: a join of it may start meanwhile), or a host forgotten for good
 * (`forgetNetworks`). Its address blocks are given back (no address of them is in use), then its
 * name leaves the record's hosts by compare-and-set. The last host out retires the network: the
 * record goes (compare-and-set), then its VNI, subnet and any block left, each at the revision
 * this host's watch saw before the record went, so a new network of the name (which writes them
 * again after creating its record) keeps its own. True when it retired it.
 */
async function dropHost(b: Bucket, name: string, host: string, still: () => boolean = () => true): Promise<boolean> {
  for (const k of b.mirror.withPrefix(`blocks.${name}.`)) {
    if (k.value === host && still()) await deleteSeen(b.kv, k.key, k.rev, (owner) => owner === host && still());
  }
  const key = recordOf(name);
  for (let attempt = 1; attempt <= CREATE_ATTEMPTS * 2; attempt++) {
    const e = await b.kv.get(key);
    if (!e || e.operation !== 'PUT') return false;
    const read = recordAt(b, key, e.string(), `host ${host} was not taken out of it`);
    if (!read) return false;
    const { r, fields } = read;
    if (!Array.isArray(r.hosts) || !(r.hosts.includes(host) || r.hosts.length === 0) || !still()) return false;
    const rest = r.hosts.filter((h) => h !== host);
    const unlisted = rest.length === 0 && (await heldUnlisted(b, name, host));
    const held = [...b.mirror.withPrefix(`blocks.${name}.`), ...b.mirror.withPrefix('vnis.'), ...b.mirror.withPrefix('subnets.')].filter((k) => k.key.startsWith('blocks.') || k.value === name);
    try {
      if (rest.length > 0 || unlisted) {
        if (rest.length < r.hosts.length) await b.kv.update(key, enc({ ...fields, v: NETWORK_FORMAT, hosts: rest }), e.revision);
        return false;
      }
      await b.kv.delete(key, { previousSeq: e.revision });
    } catch (err) {
      if (!isWrongRevision(err)) throw err;
      await pause(attempt);
      continue;
    }
    // A key written after the record went is a new network's of the name.
    await deleteWrittenBefore(b.kv, key, held.map((k) => [k.key, k.rev] as const));
    return true;
  }
  throw new DriverError('LN_ERR_CLUSTER_UNAVAILABLE', `cluster network ${name}: its record in the KV bucket kept changing while host ${host} was taken out of it`);
}

/**
 * Does a host other than `host`, not among the hosts of network `name`, still hold it? A member
 * key: it joined with a ledgernet before this one, so it still has the network (it adds itself
 * once it runs this one). Or an address block: the same host once the cluster expired it (expiry
 * removes its member key, not its blocks: it may come back with containers on them), or a host
 * away when the bucket was rebuilt (restoreNetwork lists only the restorer). Another host's
 * blocks go only through `cluster forget` (forgetNetworks), which then retires the network.
 * Asked again of the bucket: this host's watch may not have delivered a leaving host's delete yet.
 */
async function heldUnlisted(b: Bucket, name: string, host: string): Promise<boolean> {
  if (await anyLive(b.kv, b.mirror.withPrefix(`members.${name}.`).filter((m) => m.key !== memberKey(name, host)))) return true;
  for (const k of b.mirror.withPrefix(`blocks.${name}.`)) {
    if (k.value === host) continue;
    const e = await b.kv.get(k.key);
    if (e?.operation === 'PUT' && e.string() !== host) return true;
  }
  return false;
}

/** What forgetting a host did (or, as a preview, would do): the networks it left, those removed with it, its blocks given back. */
export interface Forgetting {
  readonly networks: readonly string[];
  readonly retired: readonly string[];
  readonly blocks: number;
}

/**
 * Takes a forgotten host (ClusterKv.forgetHost checked that it is gone) out of every network it
 * had (`dropHost`: the last one out retires it); its blocks and any member or endpoint key left go.
 * A network that no host is listed in and that stayed only for this host's blocks or member key
 * (it was expired, or ran an older ledgernet: dropHost `heldUnlisted`) is retired after them.
 * `dryRun`: nothing is written; `retired` are the networks it would remove (no other host listed,
 * and no member key or block of another host, as the watch sees the bucket now).
 */
export async function forgetNetworks(b: Bucket, host: string, dryRun = false): Promise<Forgetting> {
  const blocks = b.mirror.withPrefix('blocks.').filter((k) => k.value === host);
  const records = b.mirror.withPrefix('networks.').map((n) => ({ name: nameOfRecord(n.key), hosts: parseRecord(n.key, n.value)?.hosts }));
  const listedIn = records.filter((r) => r.hosts?.includes(host)).map((r) => r.name).sort();
  const keys = b.mirror.keysOf(host);
  if (listedIn.length === 0 && blocks.length === 0 && keys.size === 0) {
    throw new DriverError('LN_ERR_BAD_REQUEST', `host ${host} is not in the cluster: no network lists it and it holds no address block`);
  }
  // Networks no host is listed in that stayed for this host's blocks or member key (dropHost
  // `heldUnlisted`: it was expired, or joined with an older ledgernet): retired once they are gone.
  const held = (name: string) => blocks.some((k) => k.key.startsWith(`blocks.${name}.`)) || keys.has(memberKey(name, host));
  const kept = records.filter((r) => r.hosts?.length === 0 && held(r.name)).map((r) => r.name);
  if (dryRun) {
    const others = (name: string) => [...b.mirror.withPrefix(`members.${name}.`), ...b.mirror.withPrefix(`blocks.${name}.`)].some((k) => k.key !== memberKey(name, host) && k.value !== host);
    const alone = (name: string) => records.find((r) => r.name === name)?.hosts?.every((h) => h === host) === true && !others(name);
    return { networks: listedIn, retired: [...listedIn, ...kept].filter(alone).sort(), blocks: blocks.length };
  }
  const retired: string[] = [];
  for (const name of listedIn) if (await dropHost(b, name, host)) retired.push(name);
  // Blocks of networks whose record did not list it (an older ledgernet's: dropHost gave back
  // the others), and its keys left: read again where this watch's revision is not the bucket's
  // (cas.ts deleteSeen); a key written after its record went is a host of that name's back.
  for (const k of blocks) if (!listedIn.some((n) => k.key.startsWith(`blocks.${n}.`))) await deleteSeen(b.kv, k.key, k.rev, (owner) => owner === host);
  await deleteWrittenBefore(b.kv, recordKey(host), keys);
  for (const name of kept) if (await dropHost(b, name, host)) retired.push(name);
  return { networks: listedIn, retired: retired.sort(), blocks: blocks.length };
}
