// Cluster networks leave the KV bucket with the last host that has them, on a real nats-server:
// a host that no longer has a network gives back its address blocks and takes its name out of
// the network's record; the last one out removes the record, its VNI and subnet keys, so the name
// can be created again with another --subnet and the subnet and VNI can go to another network.
// Races of a leave against joins of the same name (by another host, or by the leaving host
// itself) never leave a host on a network the bucket no longer has.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm, type KV } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';
import { DriverError } from '../../src/errors.ts';
import { ClusterKv } from '../../src/events/cluster/kv.ts';
import { KeyMirror, type OwnKeys } from '../../src/events/cluster/host-keys.ts';
import { forgetNetworks, syncNetworks } from '../../src/events/cluster/networks.ts';
import type { JoinRequest } from '../../src/events/domain/cluster.ts';
import { waitFor } from '../helpers/docker.ts';
import { createNatsServer, type NatsServer } from '../helpers/nats.ts';

let nats: NatsServer;
let nc: NatsConnection;
let bucket: KV;
const conns: NatsConnection[] = [];
const watches: { stop(): void }[] = [];
/** The newest host-record revision each watch has delivered (what `settle` waits on). */
let seenBy: { rev: number }[] = [];
let h1: ClusterKv;
let h2: ClusterKv;
let h3: ClusterKv;

before(async () => {
  nats = await createNatsServer();
  nc = await connect({ servers: nats.url });
  const hosts: ClusterKv[] = [];
  for (const h of ['h1', 'h2', 'h3']) {
    const c = await connect({ servers: nats.url });
    conns.push(c);
    const kv = await ClusterKv.open(c, { host: h, vtep: `192.0.2.${h.slice(1)}`, replicas: 1 });
    // A host knows the bucket's keys from its watch, live after its first heartbeat.
    watches.push(await watchSeen(kv));
    await kv.heartbeat();
    hosts.push(kv);
  }
  [h1, h2, h3] = hosts as [ClusterKv, ClusterKv, ClusterKv];
  await waitFor(() => hosts.every((kv) => kv.watching), { timeoutMs: 5_000, what: 'the watches to catch up' });
  bucket = await new Kvm(nc).open('ledgernet-cluster');
});
after(async () => {
  for (const w of watches) w.stop();
  for (const c of [...conns, nc]) await c?.close();
  await nats?.stop();
});

/** A watch of `kv` (what its syncOwn and drift read) whose delivered revisions `settle` can wait on. */
async function watchSeen(kv: ClusterKv): Promise<{ stop(): void }> {
  const seen = { rev: 0 };
  seenBy.push(seen);
  return kv.watchPeers(
    () => undefined,
    (s) => {
      if (s.record && s.rev !== null) seen.rev = Math.max(seen.rev, s.rev);
    },
  );
}

const NOTHING: OwnKeys = { members: [], endpoints: [] };
/** A full publish of a host whose log has no cluster network: the networks it retired. */
const leave = async (kv: ClusterKv) => (await kv.syncOwn(() => NOTHING)).retired;
const join = (kv: ClusterKv, name: string, subnet: string | null = null): ReturnType<ClusterKv['joinNetwork']> =>
  kv.joinNetwork({ name, subnet, propose: () => '10.242.250.0/24' } satisfies JoinRequest);

/**
 * Lets the watches deliver what was just written (a host leaves what its watch has seen): writes a
 * marker host record and waits until every watch delivered it; a watch delivers in the bucket's
 * order, so it has then seen every earlier write too.
 */
async function settle(): Promise<void> {
  const rev = await bucket.put('hosts.settle', '{}');
  await waitFor(() => seenBy.every((s) => s.rev >= rev), { timeoutMs: 5_000, what: 'every watch to deliver what was written' });
}

/** The bucket's keys that belong to network `name` (its record, members, blocks) or hold its name (VNI and subnet keys). */
async function keysOf(name: string): Promise<string[]> {
  const out: string[] = [];
  for await (const k of await bucket.keys()) {
    const [kind, of] = k.split('.');
    if (of === name || ((kind === 'vnis' || kind === 'subnets') && (await bucket.get(k))?.string() === name)) out.push(k);
  }
  return out.sort();
}

/** A watch as seen after a replica restarted after a power cut: every key, at a revision 4 above the bucket's. */
async function offWatch(): Promise<KeyMirror> {
  const mirror = new KeyMirror();
  for await (const k of await bucket.keys()) {
    const e = await bucket.get(k);
    if (e?.operation === 'PUT') mirror.seen(k, e.revision + 4, true, () => e.string());
  }
  return mirror;
}

async function hostsOf(name: string): Promise<readonly string[] | null | undefined> {
  const e = await bucket.get(`networks.${name}`);
  return e?.operation === 'PUT' ? (e.json<{ hosts?: string[] }>().hosts ?? null) : undefined;
}

describe('cluster networks retired with the last host', () => {
  it('a host that left gives back its blocks and its place; the last one out removes the network, its VNI and subnet; the name is new again', async () => {
    const amber = await join(h1, 'amber', '10.242.0.0/24');
    assert.deepEqual(await join(h2, 'amber', '10.242.0.0/24'), amber);
    const b1 = await h1.claimBlock(amber, []);
    const b2 = await h2.claimBlock(amber, []);
    assert.notEqual(b1, b2);
    h1.settle('amber');
    h2.settle('amber');
    assert.deepEqual(await hostsOf('amber'), ['h1', 'h2']);
    await settle();

    assert.deepEqual(await leave(h1), [], 'h2 still has it');
    assert.deepEqual(await hostsOf('amber'), ['h2']);
    assert.deepEqual(await keysOf('amber'), ['blocks.amber.1', 'members.amber.h2', 'networks.amber', 'subnets.10_242_0_0_24', `vnis.${amber.vni}`], "h1's block and member key are gone, h2's stay");
    assert.deepEqual(await leave(h3), [], 'a host that never had it changes nothing');
    assert.deepEqual(await hostsOf('amber'), ['h2']);

    await settle();
    assert.deepEqual(await leave(h2), ['amber']);
    assert.deepEqual(await keysOf('amber'), []);
    // Created again with another subnet: refused before (the bucket kept 10.242.0.0/24 for ever).
    const again = await join(h3, 'amber', '10.242.1.0/24');
    assert.equal(again.subnet, '10.242.1.0/24');
    assert.equal(again.vni, amber.vni, 'the name tries the same VNI first, and it is free');
    // The old subnet is free for another network.
    assert.equal((await join(h1, 'lime', '10.242.0.0/24')).subnet, '10.242.0.0/24');
    h3.settle('amber');
    h1.settle('lime');
    await settle();
    assert.deepEqual(await leave(h3), ['amber']);
    assert.deepEqual(await leave(h1), ['lime']);
    assert.deepEqual([...(await keysOf('amber')), ...(await keysOf('lime'))], []);
  });

  it("a host that left gives back its block, and the last one out removes the network, though their watches know the bucket's keys at other revisions (a replica that restarted after a power cut)", async () => {
    const jade = await join(h1, 'jade', '10.242.9.0/24');
    await join(h2, 'jade', '10.242.9.0/24');
    await h1.claimBlock(jade, []);
    await h2.claimBlock(jade, []);
    h1.settle('jade');
    h2.settle('jade');
    await settle();
    const blockOf = async (host: string) => {
      for await (const k of await bucket.keys('blocks.jade.>')) if ((await bucket.get(k))?.string() === host) return k;
      return 'none';
    };
    const [k1, k2] = [await blockOf('h1'), await blockOf('h2')];
    assert.deepEqual((await syncNetworks({ kv: bucket, mirror: await offWatch(), host: 'h2' }, () => NOTHING, () => [])).retired, []);
    assert.deepEqual(await hostsOf('jade'), ['h1']);
    const left = await keysOf('jade');
    assert.ok(!left.includes(k2), `h2's block ${k2} is given back: ${left.join(' ')}`);
    assert.ok(left.includes(k1), `h1's block ${k1} stays`);
    h2.settle('jade');
    await settle();
    assert.deepEqual(await leave(h2), [], 'its member key');
    // h1, the last one out, with such a watch too: the record, its VNI, subnet and block go all the same.
    assert.deepEqual((await syncNetworks({ kv: bucket, mirror: await offWatch(), host: 'h1' }, () => NOTHING, () => [])).retired, ['jade']);
    h1.settle('jade');
    await settle();
    assert.deepEqual(await leave(h1), [], 'its member key');
    assert.deepEqual(await keysOf('jade'), []);
  });

  it('a network whose record names no hosts (made by an older ledgernet) is joined as before and never retired', async () => {
    const old = { name: 'legacy', subnet: '10.242.9.0/24', vni: 4242, blockLen: 26, createdBy: 'h0' };
    await bucket.create('networks.legacy', JSON.stringify(old));
    assert.deepEqual(await join(h1, 'legacy'), old);
    h1.settle('legacy');
    await settle();
    assert.deepEqual(await leave(h1), []);
    assert.equal(await hostsOf('legacy'), null);
    await bucket.delete('networks.legacy');
  });

  it("a host leaving a network while another joins it, 15 times: the joiner always ends on a network the bucket has, with its VNI and subnet keys", async () => {
    for (let i = 0; i < 15; i++) {
      const name = `race-${i}`;
      const subnet = `10.243.${i}.0/24`;
      await join(h1, name, subnet);
      h1.settle(name);
      await settle();
      // h1's leave and h2's join at the same moment: either h2 joined h1's network (and h1 only
      // left it) or h1 retired it first and h2 made it again.
      const [retired, net] = await Promise.all([leave(h1), join(h2, name, subnet)]);
      h2.settle(name);
      assert.deepEqual(await hostsOf(name), ['h2'], `${name}: h1 ${retired.length ? 'retired it' : 'left'}`);
      assert.deepEqual(await keysOf(name), [`members.${name}.h2`, `networks.${name}`, `subnets.${subnet.replace(/[./]/g, '_')}`, `vnis.${net.vni}`]);
      await settle();
      assert.deepEqual(await leave(h2), [name]);
      assert.deepEqual(await keysOf(name), []);
    }
  });

  it('a retiring host that stalls after removing the record cannot take the VNI and subnet keys of the network made again meanwhile', async () => {
    const first = await join(h1, 'slow', '10.242.6.0/24');
    h1.settle('slow');
    const guards = [`vnis.${first.vni}`, 'subnets.10_242_6_0_24'];
    // What the retiring host saw before the record went, then the record gone (its compare-and-set).
    const seen = await Promise.all(guards.map(async (k) => (await bucket.get(k))?.revision ?? -1));
    await bucket.delete('networks.slow');
    const again = await join(h2, 'slow', '10.242.6.0/24');
    assert.equal(again.vni, first.vni);
    // The stalled host goes on: its deletes at the revisions it saw miss the keys written again.
    for (const [i, k] of guards.entries()) await assert.rejects(bucket.delete(k, { previousSeq: seen[i] ?? -1 }), /wrong last sequence/i, k);
    assert.deepEqual(await keysOf('slow'), ['members.slow.h1', 'members.slow.h2', 'networks.slow', ...guards].sort());
    h2.settle('slow');
    await settle(); // h1's watch has seen its member key, the key its leave removes
    // h1 (its log no longer has slow) removes its member key; not among the new record's hosts, it changes nothing else.
    assert.deepEqual(await leave(h1), []);
    assert.deepEqual(await hostsOf('slow'), ['h2']);
    await settle();
    assert.deepEqual(await leave(h2), ['slow']);
    assert.deepEqual(await keysOf('slow'), []);
  });

  it('a host that joined with an older ledgernet (a member key, not among the hosts) keeps the network; once it runs this one it is added, and retires it when it leaves', async () => {
    await join(h1, 'mixed', '10.242.7.0/24');
    h1.settle('mixed');
    await bucket.put('members.mixed.h3', JSON.stringify({ host: 'h3', vtep: '192.0.2.3' }));
    await settle();
    assert.deepEqual(await leave(h1), [], "h3's member key keeps it");
    assert.deepEqual(await hostsOf('mixed'), []);
    assert.ok((await keysOf('mixed')).includes('networks.mixed'));
    await h3.syncOwn(() => ({ members: ['mixed'], endpoints: [] }));
    assert.deepEqual(await hostsOf('mixed'), ['h3']);
    await settle();
    assert.deepEqual(await leave(h3), ['mixed']);
    assert.deepEqual(await keysOf('mixed'), []);
  });

  it('…and it was expired before the last listed host left: its block keeps the network, its subnet and VNI; `cluster forget` of it then retires them', async () => {
    const ash = await join(h1, 'ash', '10.242.14.0/24');
    h1.settle('ash');
    await h1.claimBlock(ash, []);
    // h0 runs a ledgernet before `hosts`: a record without instance, a member key, a block of its own, not in the record's hosts.
    const rec = await bucket.put('hosts.h0', JSON.stringify({ host: 'h0', vtep: '192.0.2.10', at: new Date().toISOString() }));
    await bucket.put('members.ash.h0', JSON.stringify({ host: 'h0', vtep: '192.0.2.10' }));
    await bucket.create('blocks.ash.3', 'h0');
    await settle();
    // Expired by the cluster (what h1's heartbeat does after the timeout): its record and member key go, its block stays.
    assert.equal(await h1.reap('h0', rec), 1);
    assert.equal((await bucket.get('blocks.ash.3'))?.string(), 'h0');
    await settle();
    assert.deepEqual(await leave(h1), [], "h0's block keeps it");
    assert.deepEqual(await hostsOf('ash'), []);
    assert.deepEqual(await keysOf('ash'), ['blocks.ash.3', 'networks.ash', 'subnets.10_242_14_0_24', `vnis.${ash.vni}`], "h1's block is given back; h0's, the subnet and the VNI stay");
    assert.deepEqual(await leave(h2), [], 'nor does a host that never had it retire it');
    await settle();
    assert.deepEqual(await h1.forgetHost('h0', { dryRun: true }), { networks: [], retired: ['ash'], blocks: 1 }, 'the preview');
    assert.deepEqual(await h1.forgetHost('h0'), { networks: [], retired: ['ash'], blocks: 1 });
    assert.deepEqual(await keysOf('ash'), [], 'forgetting h0 gave its block back and retired the network');
    await bucket.delete('forgotten.h0');
    await settle();
  });

  it('a host joining a network again while its leave runs stays in it', async () => {
    await join(h1, 'again', '10.242.5.0/24');
    h1.settle('again');
    await settle();
    // The log no longer has it (NOTHING), but a RequestPool of it has begun: joining counts.
    const [retired] = await Promise.all([leave(h1), join(h1, 'again', '10.242.5.0/24')]);
    assert.deepEqual(retired, []);
    assert.deepEqual(await hostsOf('again'), ['h1']);
    h1.settle('again');
    await settle();
    assert.deepEqual(await leave(h1), ['again']);
    assert.deepEqual(await keysOf('again'), []);
  });

  it('cluster forget: a host the cluster expired is taken out of its networks (the last one out removes them) and its blocks are given back; a live host, this host and an unknown one are refused', async () => {
    const plum = await join(h1, 'plum', '10.242.8.0/24');
    await join(h3, 'plum', '10.242.8.0/24');
    await join(h3, 'pear', '10.242.9.0/24');
    for (const [kv, n] of [[h1, 'plum'], [h3, 'plum'], [h3, 'pear']] as const) kv.settle(n);
    const b3 = await h3.claimBlock(plum, []);
    await settle();
    await assert.rejects(h1.forgetHost('h3'), (e: unknown) => e instanceof DriverError && e.code === 'LN_ERR_CONFLICT' && /host h3 is still in the cluster .*stop its ledgernet for good and wait for --cluster-host-timeout/.test(e.message));
    await assert.rejects(h1.forgetHost('h1'), /h1 is this host/);
    await assert.rejects(h1.forgetHost('h9'), /host h9 is not in the cluster: no network lists it and it holds no address block/);
    assert.deepEqual(await hostsOf('plum'), ['h1', 'h3'], 'nothing changed by a refusal');
    // h3 expired by the cluster: its record gone (its member keys would go with it; here they stay, and forget takes them).
    await bucket.delete('hosts.h3');
    await settle();
    await assert.rejects(h1.forgetHost('h2', { dryRun: true }), /host h2 is still in the cluster/, 'a preview is refused alike');
    const [plumKeys, pearKeys] = [await keysOf('plum'), await keysOf('pear')];
    assert.deepEqual(await h1.forgetHost('h3', { dryRun: true }), { networks: ['pear', 'plum'], retired: ['pear'], blocks: 1 }, 'the preview says what it would do');
    assert.deepEqual([await keysOf('plum'), await keysOf('pear'), await hostsOf('plum')], [plumKeys, pearKeys, ['h1', 'h3']], 'and did nothing');
    assert.notEqual((await bucket.get('forgotten.h3'))?.operation, 'PUT');
    assert.deepEqual(await h1.forgetHost('h3'), { networks: ['pear', 'plum'], retired: ['pear'], blocks: 1 });
    assert.deepEqual(await hostsOf('plum'), ['h1']);
    assert.deepEqual(await keysOf('pear'), []);
    assert.deepEqual(await keysOf('plum'), ['members.plum.h1', 'networks.plum', 'subnets.10_242_8_0_24', `vnis.${plum.vni}`], `h3's block ${b3} and member key are gone`);
    await settle();
    assert.deepEqual(await leave(h1), ['plum']);
    assert.deepEqual(await keysOf('plum'), []);
    assert.equal((await bucket.get('forgotten.h3'))?.json<{ by: string }>().by, 'h1', 'that h3 was forgotten stays in the bucket');
    // h3 was alive all along (behind a partition): its next heartbeat takes the forget back.
    assert.equal(await h3.heartbeat(), 'forgotten', 'h3, still running, writes its record again');
    assert.notEqual((await bucket.get('forgotten.h3'))?.operation, 'PUT', 'it is here again: no longer forgotten');
  });

  it("cluster forget from a host whose watch knows the bucket's keys at other revisions: the forgotten host's member key and its block of an unlisted network go all the same", async () => {
    const c = await connect({ servers: nats.url });
    conns.push(c);
    const h5 = await ClusterKv.open(c, { host: 'h5', vtep: '192.0.2.5', replicas: 1, members: () => [] });
    const fig = await join(h1, 'fig', '10.242.12.0/24');
    await join(h5, 'fig', '10.242.12.0/24');
    for (const kv of [h1, h5]) kv.settle('fig');
    await h5.claimBlock(fig, []);
    // A block of a network whose record does not list h5 (an older ledgernet's network).
    await bucket.create('networks.olive', JSON.stringify({ name: 'olive', subnet: '10.242.13.0/24', vni: 4343, blockLen: 26, createdBy: 'h0' }));
    await bucket.create('blocks.olive.2', 'h5');
    await bucket.delete('hosts.h5'); // expired by the cluster
    const mirror = await offWatch();
    assert.ok([...mirror.keysOf('h5').keys()].includes('members.fig.h5'), 'the watch knows its member key');
    assert.deepEqual(await forgetNetworks({ kv: bucket, mirror, host: 'h1' }, 'h5'), { networks: ['fig'], retired: [], blocks: 2 });
    assert.deepEqual(await keysOf('fig'), ['members.fig.h1', 'networks.fig', 'subnets.10_242_12_0_24', `vnis.${fig.vni}`], "h5's member key and block are gone");
    assert.deepEqual(await keysOf('olive'), ['networks.olive'], "h5's block of the unlisted network is given back");
    await bucket.delete('networks.olive');
    await settle();
    assert.deepEqual(await leave(h1), ['fig']);
    assert.deepEqual(await keysOf('fig'), []);
  });

  it('a forgotten host that starts with its old cluster networks in its log is refused, naming who forgot it and why, and writes nothing; started afresh it joins', async () => {
    const c = await connect({ servers: nats.url });
    conns.push(c);
    const h4 = await ClusterKv.open(c, { host: 'h4.example', vtep: '192.0.2.4', replicas: 1, members: () => [] });
    await join(h4, 'quince', '10.242.11.0/24');
    h4.settle('quince');
    await bucket.delete('hosts.h4=2eexample'); // expired by the cluster
    await settle();
    assert.deepEqual(await h1.forgetHost('h4.example', { reason: 'disk died' }), { networks: ['quince'], retired: ['quince'], blocks: 0 });
    assert.deepEqual((await h1.forgotten()).map((f) => [f.host, f.by, f.reason]), [['h4.example', 'h1', 'disk died']], "status's list of forgotten hosts");
    const before = await keysOf('quince');
    const refused = (e: unknown) =>
      e instanceof DriverError &&
      e.code === 'LN_ERR_CLUSTER_FORGOTTEN' &&
      /this host \(h4\.example\) was forgotten by the cluster \(ledgernet cluster forget on host h1 at \S+ \(reason: disk died\)\); its log still has cluster network\(s\) quince,.*start ledgernet with a new --state-dir/.test(e.message);
    await assert.rejects(ClusterKv.open(c, { host: 'h4.example', vtep: '192.0.2.4', replicas: 1, members: () => ['quince'] }), refused);
    assert.notEqual((await bucket.get('hosts.h4=2eexample'))?.operation, 'PUT', 'a refused host writes no record');
    assert.deepEqual(await keysOf('quince'), before);
    // Its cluster networks removed here (or a new --state-dir): let in, and no longer forgotten.
    await ClusterKv.open(c, { host: 'h4.example', vtep: '192.0.2.4', replicas: 1, members: () => [] });
    assert.equal((await bucket.get('hosts.h4=2eexample'))?.operation, 'PUT');
    assert.notEqual((await bucket.get('forgotten.h4=2eexample'))?.operation, 'PUT');
    await settle(); // h4 took it back: h1 hears of it through its watch
    assert.deepEqual(await h1.forgotten(), []);
    await ClusterKv.open(c, { host: 'h4.example', vtep: '192.0.2.4', replicas: 1, members: () => ['quince'] });
    await bucket.delete('hosts.h4=2eexample');
  });
});

describe("the bucket rebuilt from the hosts' logs", () => {
  it('a bucket that lost a network (a JetStream store wiped) gets it back from the logs of the hosts that have it: the same subnet, VNI and blocks; a block the bucket gives to another host is a conflict, named', async () => {
    const sage = await join(h1, 'sage', '10.242.10.0/24');
    await join(h2, 'sage', '10.242.10.0/24');
    h1.settle('sage');
    h2.settle('sage');
    const [b1, b2] = [await h1.claimBlock(sage, []), await h2.claimBlock(sage, [])];
    const ownOf = (blocks: string[]): OwnKeys => ({ members: ['sage'], networks: [{ name: 'sage', subnet: sage.subnet, vni: sage.vni, blockLen: sage.blockLen, blocks }], endpoints: [] });
    await settle();
    assert.deepEqual(await h1.syncOwn(() => ownOf([b1])), { retired: [], restored: [], conflicts: [] }, 'nothing lost: nothing written');
    const before = await keysOf('sage');
    // Lost as a delete, not a purge: nats-server 2.9's watch (an ordered push consumer) now and then
    // skips a purge marker that rolls up a message it had delivered (seen about once in 1,000
    // purges under load: the watch delivered the purges after it and never that one), so a host's
    // watch went on showing a block that was gone and its restore skipped it. Ledgernet itself
    // never purges; a wiped store looks alike to it (no such key).
    for (const k of before) await bucket.delete(k);
    assert.deepEqual(await keysOf('sage'), []);
    // A host restores what its watch shows missing: wait until it shows the record gone (deleted
    // last but for the VNI and subnet keys, which a restore reads from the bucket itself), and
    // until h2's shows the record h1 wrote back, which h2 then joins. A fixed sleep was not
    // always enough under load.
    const watchSeesRecord = (h: ClusterKv, blocks: string[], present: boolean) =>
      waitFor(
        () => {
          const d = h.drift(() => ownOf(blocks));
          return d !== null && d.missing.includes('networks.sage') !== present;
        },
        { timeoutMs: 5_000, what: `a watch to see the record of sage ${present ? 'back' : 'gone'}` },
      );
    await Promise.all([watchSeesRecord(h1, [b1], false), watchSeesRecord(h2, [b2], false)]);
    assert.deepEqual(await h1.syncOwn(() => ownOf([b1])), { retired: [], restored: ['sage'], conflicts: [] });
    await watchSeesRecord(h2, [b2], true);
    assert.deepEqual(await h2.syncOwn(() => ownOf([b2])), { retired: [], restored: ['sage'], conflicts: [] });
    assert.deepEqual(await keysOf('sage'), before, 'every key of sage is back');
    assert.deepEqual(await hostsOf('sage'), ['h1', 'h2']);
    // A host new to sage gets the same network and none of their blocks.
    const again = await join(h3, 'sage');
    assert.deepEqual([again.subnet, again.vni], [sage.subnet, sage.vni]);
    const b3 = await h3.claimBlock(again, []);
    assert.ok(![b1, b2].includes(b3), b3);
    h3.settle('sage');
    // A log that says a block is its host's while the bucket gives it to another: named, left alone.
    await settle();
    const clash = await h3.syncOwn(() => ownOf([b3, b1]));
    assert.deepEqual(clash.conflicts, [`cluster network sage: block ${b1} is this host's (its log) but host h1's in the KV bucket: addresses of it may be on both`]);
    // (Blocks of a /24 are /26s: block i starts at address 64 × i.)
    assert.equal((await bucket.get(`blocks.sage.${Number(b1.split('.')[3]?.split('/')[0]) / 64}`))?.string(), 'h1', 'still h1\'s');
    // A log with another subnet for sage: named, and none of its blocks written.
    const keysBefore = await keysOf('sage');
    const other = await h3.syncOwn(() => ({ members: ['sage'], networks: [{ name: 'sage', subnet: '10.242.99.0/24', vni: sage.vni, blockLen: 26, blocks: ['10.242.99.64/26'] }], endpoints: [] }));
    assert.deepEqual(other.conflicts, [`cluster network sage: this host has subnet 10.242.99.0/24 and VNI ${sage.vni}, the KV bucket 10.242.10.0/24 and VNI ${sage.vni} (created by h1)`]);
    assert.deepEqual(await keysOf('sage'), keysBefore);
    for (const h of [h1, h2, h3]) await leave(h);
    assert.deepEqual(await keysOf('sage'), []);
  });

  it('a host whose log has another subnet for a network is not added to its hosts: a conflict, named', async () => {
    const fern = await join(h1, 'fern', '10.242.12.0/24');
    h1.settle('fern');
    await settle();
    const r = await h2.syncOwn(() => ({ members: ['fern'], networks: [{ name: 'fern', subnet: '10.242.13.0/24', vni: fern.vni, blockLen: 26, blocks: [] }], endpoints: [] }));
    assert.deepEqual(r.conflicts, [`cluster network fern: this host has subnet 10.242.13.0/24 and VNI ${fern.vni}, the KV bucket 10.242.12.0/24 and VNI ${fern.vni} (created by h1)`]);
    assert.deepEqual(await hostsOf('fern'), ['h1']);
    await settle();
    assert.deepEqual(await leave(h2), []);
    await settle();
    assert.deepEqual(await leave(h1), ['fern']);
    assert.deepEqual(await keysOf('fern'), []);
  });

  it("keys of a host's log deleted from the bucket (or changed there) by hand are found from the watch alone (drift), written back by the full publish; a block given to another host is a conflict until it is the host's again", async () => {
    const lime = await join(h2, 'lime', '10.242.14.0/24');
    h2.settle('lime');
    const b = await h2.claimBlock(lime, []);
    await h2.publishEndpoint('lime', { endpointId: 'e1', address: '10.242.14.2', mac: '02:42:0a:f2:0e:02' });
    const own: OwnKeys = {
      members: ['lime'],
      networks: [{ name: 'lime', subnet: lime.subnet, vni: lime.vni, blockLen: lime.blockLen, blocks: [b] }],
      endpoints: [{ cluster: 'lime', endpointId: 'e1', address: '10.242.14.2', mac: '02:42:0a:f2:0e:02' }],
    };
    await settle();
    assert.deepEqual(h2.drift(() => own), { missing: [], changed: [], conflicts: [] });
    for (const k of ['members.lime.h2', 'endpoints.lime.h2.e1', 'blocks.lime.0']) await bucket.delete(k);
    await settle();
    assert.deepEqual(h2.drift(() => own), { missing: ['blocks.lime.0', 'endpoints.lime.h2.e1', 'members.lime.h2'], changed: [], conflicts: [] });
    assert.deepEqual(await h2.syncOwn(() => own), { retired: [], restored: ['lime'], conflicts: [] });
    await settle();
    assert.deepEqual(h2.drift(() => own), { missing: [], changed: [], conflicts: [] }, 'all written back');
    // An endpoint key pointed at another address and a member key at another VTEP, by hand.
    await bucket.put('endpoints.lime.h2.e1', JSON.stringify({ host: 'h2', vtep: '192.0.2.9', endpointId: 'e1', address: '10.242.14.99', mac: '02:42:0a:f2:0e:02' }));
    await bucket.put('members.lime.h2', JSON.stringify({ host: 'h2', vtep: '192.0.2.9' }));
    await settle();
    assert.deepEqual(h2.drift(() => own), { missing: [], changed: ['endpoints.lime.h2.e1', 'members.lime.h2'], conflicts: [] });
    await h2.syncOwn(() => own);
    await settle();
    assert.deepEqual(h2.drift(() => own), { missing: [], changed: [], conflicts: [] }, 'the values written back');
    assert.equal(JSON.parse((await bucket.get('endpoints.lime.h2.e1'))?.string() ?? '{}').address, '10.242.14.2');
    await bucket.put('blocks.lime.0', 'h3');
    await settle();
    assert.deepEqual(h2.drift(() => own)?.conflicts, [`cluster network lime: block ${b} is this host's (its log) but host h3's in the KV bucket: addresses of it may be on both`]);
    await bucket.put('blocks.lime.0', 'h2');
    await settle();
    assert.deepEqual(h2.drift(() => own), { missing: [], changed: [], conflicts: [] });
    assert.deepEqual(await leave(h2), ['lime']);
    assert.deepEqual(await keysOf('lime'), []);
  });

  it('a bucket deleted whole: the next heartbeat makes it again and finds its record gone; the full publish that follows rebuilds the network', async () => {
    const moss = await join(h1, 'moss', '10.242.11.0/24');
    h1.settle('moss');
    const b = await h1.claimBlock(moss, []);
    await settle();
    await (await jetstreamManager(nc)).streams.delete('KV_ledgernet-cluster');
    await assert.rejects(h1.heartbeat(), 'the beat that finds the bucket gone fails (and makes it again)');
    assert.equal(await h1.heartbeat(), 'expired');
    assert.equal(h1.watching, false, 'what the old watch saw is dropped: no publish from it');
    // The heartbeat loop watches the new bucket at once (an expiry without a watch); here by hand.
    // The other hosts' watches were of the deleted bucket: settle waits on h1's new one alone.
    seenBy = [];
    watches.push(await watchSeen(h1));
    await h1.heartbeat();
    await waitFor(() => h1.watching, { timeoutMs: 5_000, what: "h1's new watch to catch up" });
    const own: OwnKeys = { members: ['moss'], networks: [{ name: 'moss', subnet: moss.subnet, vni: moss.vni, blockLen: moss.blockLen, blocks: [b] }], endpoints: [] };
    assert.deepEqual(await h1.syncOwn(() => own), { retired: [], restored: ['moss'], conflicts: [] });
    assert.deepEqual(await keysOf('moss'), ['blocks.moss.0', 'members.moss.h1', 'networks.moss', 'subnets.10_242_11_0_24', `vnis.${moss.vni}`]);
    await settle();
    assert.deepEqual(await leave(h1), ['moss']);
  });
});

