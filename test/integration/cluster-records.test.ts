// Network records of another format in the cluster's KV bucket, on a real nats-server: a record
// this ledgernet cannot read (a newer ledgernet's format, or one edited by hand: not JSON, or
// without a subnet) broke every cluster-network create on every host with "internal error" (a
// TypeError in the subnet proposal and the overlap check). Now the other networks are created,
// joined and left as before, the unreadable record's subnet stays taken, it is said once per key,
// and joining that network is refused naming the key (LN_ERR_CLUSTER_RECORD).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Kvm, type KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ClusterKv } from '../../src/events/cluster/kv.ts';
import { DriverError } from '../../src/errors.ts';
import { waitFor } from '../helpers/docker.ts';
import { createNatsServer, type NatsServer } from '../helpers/nats.ts';

let nats: NatsServer;
const conns: NatsConnection[] = [];
const watches: { stop(): void }[] = [];
/** The newest host-record revision each watch delivered (what `settle` waits on). */
const seenBy: { rev: number }[] = [];
let h1: ClusterKv;
let h2: ClusterKv;
let kv: KV;
/** What h1 logged at warn. */
const warned: { key?: string; msg: string }[] = [];

const RECORDS = {
  // A newer format: its subnets in a list, a format field above this ledgernet's.
  future: '{"name":"future","format":2,"v":2,"subnets":["10.231.5.0/24"],"vni":123,"blockLen":26,"createdBy":"h9","hosts":["h9"]}',
  // Not JSON at all.
  garbled: 'v2:garbled;10.231.6.0/24',
  // Edited by hand: its subnet gone.
  bare: '{"name":"bare","vni":4444,"blockLen":26,"createdBy":"h9","hosts":["h9"]}',
};

before(async () => {
  nats = await createNatsServer();
  const hosts: ClusterKv[] = [];
  for (const h of ['h1', 'h2']) {
    const nc = await connect({ servers: nats.url });
    conns.push(nc);
    const log = { info: () => undefined, warn: (o: object, msg: string) => h === 'h1' && warned.push({ ...(o as { key?: string }), msg }) };
    const c = await ClusterKv.open(nc, { host: h, vtep: `192.0.2.${hosts.length + 1}`, replicas: 1, log });
    const seen = { rev: 0 };
    seenBy.push(seen);
    watches.push(await c.watchPeers(() => undefined, (s) => void (s.record && s.rev !== null && (seen.rev = Math.max(seen.rev, s.rev)))));
    await c.heartbeat();
    hosts.push(c);
  }
  [h1, h2] = hosts as [ClusterKv, ClusterKv];
  kv = await new Kvm(conns[0]!).open('ledgernet-cluster');
  for (const [name, value] of Object.entries(RECORDS)) await kv.create(`networks.${name}`, value);
  await waitFor(() => h1.watching && h2.watching, { timeoutMs: 5_000, what: 'the watches to catch up' });
});
after(async () => {
  for (const w of watches) w.stop();
  for (const nc of conns) await nc.close();
  await nats?.stop();
});

/** Lets both watches deliver what was written so far (a host leaves what its watch has seen). */
async function settle(): Promise<void> {
  const rev = await kv.put('hosts.settle', '{}');
  await waitFor(() => seenBy.every((s) => s.rev >= rev), { timeoutMs: 5_000, what: 'every watch to deliver what was written' });
}

const unreadable = (key: string, why: RegExp) => (e: unknown) =>
  e instanceof DriverError &&
  e.code === 'LN_ERR_CLUSTER_RECORD' &&
  e.message.startsWith(`${key} in the cluster's KV bucket is in a format this ledgernet does not read (`) &&
  why.test(e.message) &&
  /upgrade ledgernet/.test(e.message);

describe('network records this ledgernet cannot read', () => {
  it('other networks are created with and without --subnet on both hosts; the unreadable subnets stay taken; joining those networks is refused by name', async () => {
    const seen: (readonly string[])[] = [];
    const green = await h1.joinNetwork({ name: 'green', subnet: null, propose: (taken) => (seen.push(taken), '10.231.7.0/24') });
    h1.settle('green');
    assert.equal(green.subnet, '10.231.7.0/24');
    assert.ok(seen[0]!.includes('10.231.5.0/24') && seen[0]!.includes('10.231.6.0/24'), `the subnets written in the unreadable records are taken: ${seen[0]!.join(' ')}`);
    assert.equal((await h1.joinNetwork({ name: 'red', subnet: '10.232.0.0/24', propose: () => 'unused' })).subnet, '10.232.0.0/24');
    h1.settle('red');
    assert.equal((await h2.joinNetwork({ name: 'blue', subnet: '10.233.0.0/24', propose: () => 'unused' })).subnet, '10.233.0.0/24');
    h2.settle('blue');
    assert.deepEqual(await h2.joinNetwork({ name: 'green', subnet: null, propose: () => 'unused' }), green, 'the other host joins it');
    h2.settle('green');
    // A --subnet inside an unreadable record's subnet is refused like any overlap.
    await assert.rejects(
      h2.joinNetwork({ name: 'inside', subnet: '10.231.5.128/25', propose: () => 'unused' }),
      (e: unknown) => e instanceof DriverError && e.code === 'LN_ERR_IPAM_OVERLAP' && /overlaps subnet 10\.231\.5\.0\/24 of cluster network future/.test(e.message),
    );
    await assert.rejects(h1.joinNetwork({ name: 'future', subnet: null, propose: () => 'unused' }), unreadable('networks.future', /\(format 2; this ledgernet reads format 1\)/));
    await assert.rejects(h2.joinNetwork({ name: 'garbled', subnet: '10.231.6.0/24', propose: () => 'unused' }), unreadable('networks.garbled', /\(not JSON\)/));
    await assert.rejects(h2.joinNetwork({ name: 'bare', subnet: null, propose: () => 'unused' }), unreadable('networks.bare', /\("subnet" is missing, not an IPv4 subnet\)/));
    for (const [name, value] of Object.entries(RECORDS)) assert.equal((await kv.get(`networks.${name}`))?.string(), value, `${name} is left as it was`);
  });

  it('a record is said once per key at warn, naming it; records written now carry the format; an older record (no format) is joined and keeps its fields', async () => {
    const about = (key: string) => warned.filter((w) => w.key === key);
    for (const key of ['networks.future', 'networks.garbled']) {
      assert.equal(about(key).length, 1, `${key}: ${JSON.stringify(warned)}`);
      assert.match(about(key)[0]!.msg, new RegExp(`^cluster: ${key.replace('.', '\\.')} in the cluster's KV bucket is in a format this ledgernet does not read .*; skipped \\(its subnet\\(s\\) 10\\.231\\.\\d\\.0/24 stay taken\\)$`));
    }
    assert.equal((await kv.get('networks.green'))?.json<{ v?: number }>().v, 1);
    await kv.create('networks.older', JSON.stringify({ name: 'older', subnet: '10.234.0.0/24', vni: 4545, blockLen: 26, createdBy: 'h0', hosts: ['h0'], extra: 'kept' }));
    assert.equal((await h1.joinNetwork({ name: 'older', subnet: null, propose: () => 'unused' })).vni, 4545);
    h1.settle('older');
    const rec = (await kv.get('networks.older'))?.json<Record<string, unknown>>();
    assert.deepEqual([rec?.['v'], rec?.['extra'], rec?.['hosts']], [1, 'kept', ['h0', 'h1']]);
    await kv.delete('networks.older');
  });

  it('leaving and the drift check go on past the unreadable records, and leave them alone', async () => {
    const none = { members: [], endpoints: [] };
    await settle();
    assert.deepEqual((await h1.syncOwn(() => none)).retired, ['red']);
    await settle();
    assert.deepEqual([...(await h2.syncOwn(() => none)).retired].sort(), ['blue', 'green']);
    const mine = { members: ['future'], networks: [{ name: 'future', subnet: '10.231.5.0/24', vni: 123, blockLen: 26, blocks: [] }], endpoints: [] };
    await waitFor(() => (h1.drift(() => mine)?.conflicts.length ?? 0) > 0, { timeoutMs: 5_000, what: 'the drift check to name the record' });
    assert.match(h1.drift(() => mine)!.conflicts[0]!, /^networks\.future in the cluster's KV bucket is in a format this ledgernet does not read \(format 2;/);
    for (const [name, value] of Object.entries(RECORDS)) assert.equal((await kv.get(`networks.${name}`))?.string(), value, `${name} is left as it was`);
  });
});
