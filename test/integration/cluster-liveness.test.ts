// Heartbeats and host expiry on a real nats-server (JetStream KV): two hosts removing one expired
// host at once (one wins, the other's compare-and-set fails harmlessly), a host that beat since
// the remover looked is left alone, and an expired host finds out on its next heartbeat and
// publishes its keys again.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { ClusterKv } from '../../src/events/cluster/kv.ts';
import { KeyMirror, reapHost, syncOwnKeys, type OwnKeys } from '../../src/events/cluster/host-keys.ts';
import { driftOf } from '../../src/events/cluster/networks.ts';
import { waitFor } from '../helpers/docker.ts';
import { createNatsServer, type NatsServer } from '../helpers/nats.ts';

let nats: NatsServer;
let nc: NatsConnection;
const conns: NatsConnection[] = [];
const hosts: Record<string, ClusterKv> = {};
const watches: { stop(): void }[] = [];
/** The highest host-record revision each host's watch delivered (what `settle` waits on). */
const seenBy: { rev: number }[] = [];
const own = (h: string): OwnKeys => ({ members: ['blue'], endpoints: [{ cluster: 'blue', endpointId: `e-${h}`, address: '10.240.0.9', mac: '02:42:0a:f0:00:09' }] });

before(async () => {
  nats = await createNatsServer();
  nc = await connect({ servers: nats.url });
  for (const h of ['h1', 'h2', 'h3']) {
    const c = await connect({ servers: nats.url });
    conns.push(c);
    hosts[h] = await ClusterKv.open(c, { host: h, vtep: `192.0.2.${h.slice(1)}`, replicas: 1 });
    // What a host knows of the bucket's keys comes from its watch, live after its first heartbeat.
    const seen = { rev: 0 };
    seenBy.push(seen);
    watches.push(await hosts[h].watchPeers(() => undefined, (r) => (seen.rev = Math.max(seen.rev, r.rev ?? 0))));
  }
  for (const kv of Object.values(hosts)) await kv.heartbeat();
  await waitFor(() => Object.values(hosts).every((kv) => kv.watching), { timeoutMs: 5_000, what: 'the watches to catch up' });
  for (const [h, kv] of Object.entries(hosts)) await kv.syncOwn(() => own(h));
});
after(async () => {
  for (const w of watches) w.stop();
  for (const c of [...conns, nc]) await c?.close();
  await nats?.stop();
});

async function bucket() {
  return new Kvm(nc).open('ledgernet-cluster');
}

async function keysOf(host: string): Promise<string[]> {
  const kv = await bucket();
  const out: string[] = [];
  for await (const k of await kv.keys()) if (k.split('.').includes(host)) out.push(k);
  return out.sort();
}

async function recordRev(host: string): Promise<number> {
  const e = await (await bucket()).get(`hosts.${host}`);
  assert.ok(e && e.operation === 'PUT', `hosts.${host} exists`);
  return e.revision;
}

/**
 * Lets the watches deliver what was just written (the keys a host removes are those its watch
 * saw): writes a marker host record and waits until every watch delivered it; a watch delivers in
 * the bucket's order, so it has then seen every earlier write too.
 */
async function settle(): Promise<void> {
  const rev = await (await bucket()).put('hosts.settle', '{}');
  await waitFor(() => seenBy.every((s) => s.rev >= rev), { timeoutMs: 5_000, what: 'every watch to deliver what was written' });
}

describe('host expiry in the KV bucket', () => {
  it('h1 and h2 remove h3 at once: one removes its record and keys, the other finds it done', async () => {
    await settle();
    assert.deepEqual(await keysOf('h3'), ['endpoints.blue.h3.e-h3', 'hosts.h3', 'members.blue.h3']);
    const rev = await recordRev('h3');
    const results = await Promise.all([hosts['h1']!.reap('h3', rev), hosts['h2']!.reap('h3', rev)]);
    assert.deepEqual(results.filter((r) => r !== null), [2], JSON.stringify(results));
    assert.deepEqual(await keysOf('h3'), []);
    assert.deepEqual(await keysOf('h1'), ['endpoints.blue.h1.e-h1', 'hosts.h1', 'members.blue.h1'], 'the removers keep their own keys');
  });

  it('the expired host learns it on its next heartbeat and publishes its keys again', async () => {
    await settle();
    assert.equal(await hosts['h3']!.heartbeat(), 'expired');
    await hosts['h3']!.syncOwn(() => own('h3'));
    assert.deepEqual(await keysOf('h3'), ['endpoints.blue.h3.e-h3', 'hosts.h3', 'members.blue.h3']);
    assert.equal(await hosts['h3']!.heartbeat(), 'ok');
  });

  it('a host that beat after the remover last saw it is left alone; with no record seen, a host with a record is too', async () => {
    const stale = await recordRev('h2');
    assert.equal(await hosts['h2']!.heartbeat(), 'ok');
    assert.equal(await hosts['h1']!.reap('h2', stale), null);
    assert.equal(await hosts['h1']!.reap('h2', null), null);
    assert.deepEqual(await keysOf('h2'), ['endpoints.blue.h2.e-h2', 'hosts.h2', 'members.blue.h2']);
  });

  it("a key the remover's watch knows at an older revision (written again, not delivered yet) is removed all the same; one written after the record's deletion stays", async () => {
    const kv = await bucket();
    const rec = await kv.put('hosts.h9', '{"host":"h9","vtep":"192.0.2.9"}');
    const m1 = await kv.put('members.blue.h9', '{"host":"h9"}');
    const e1 = await kv.put('endpoints.blue.h9.e-h9', '{"host":"h9"}');
    await kv.put('members.blue.h9', '{"host":"h9"}'); // written again; the mirror below has not seen it
    const mirror = new KeyMirror();
    mirror.seen('hosts.h9', rec, false);
    mirror.seen('members.blue.h9', m1, false);
    mirror.seen('endpoints.blue.h9.e-h9', e1, true);
    assert.equal(await reapHost(kv, mirror, 'h9', rec), 2, 'both keys, the stale one at its current revision');
    assert.deepEqual(await keysOf('h9'), []);
    // The record already gone (another remover), and the host's member key written after that:
    // the host is back, what it wrote stays.
    const rec2 = await kv.put('hosts.h9', '{"host":"h9","vtep":"192.0.2.9"}');
    const m2 = await kv.put('members.blue.h9', '{"host":"h9"}');
    await kv.delete('hosts.h9', { previousSeq: rec2 });
    await kv.put('members.blue.h9', '{"host":"h9"}');
    const later = new KeyMirror();
    later.seen('members.blue.h9', m2, true);
    assert.equal(await reapHost(kv, later, 'h9', null), 0);
    assert.deepEqual(await keysOf('h9'), ['members.blue.h9']);
    await kv.delete('members.blue.h9');
  });

  it("a member key joinNetwork just wrote stays through a sync that runs before the pool is in the log; once the RequestPool settles without it, it goes", async () => {
    const h1 = hosts['h1']!;
    await h1.joinNetwork({ name: 'amber', subnet: '10.250.0.0/24', propose: () => 'unused' });
    await settle(); // the watch has seen the member key: a sync now takes it for a network the log left
    await h1.syncOwn(() => own('h1'));
    assert.deepEqual(await keysOf('h1'), ['endpoints.blue.h1.e-h1', 'hosts.h1', 'members.amber.h1', 'members.blue.h1']);
    h1.settle('amber');
    await h1.syncOwn(() => own('h1'));
    assert.deepEqual(await keysOf('h1'), ['endpoints.blue.h1.e-h1', 'hosts.h1', 'members.blue.h1'], 'refused after joining: no pool holds it');
  });

  it("syncOwn removes a key the log no longer has though the watch knows it at another revision than the bucket (a replica that restarted after a power cut); the drift check finds such a key", async () => {
    const kv = await bucket();
    const at = await kv.put('endpoints.blue.h7.e-gone', '{"host":"h7"}');
    await kv.put('members.blue.h7', '{"host":"h7","vtep":"192.0.2.7"}');
    for (const rev of [at + 4, at - 1]) {
      // The watch says another revision than the bucket (both ways): the compare-and-set at the watch's is refused.
      const mirror = new KeyMirror();
      mirror.seen('endpoints.blue.h7.e-gone', rev, true);
      const ownNow = (): OwnKeys => ({ members: ['blue'], endpoints: [] });
      const d = driftOf(mirror, 'h7', '192.0.2.7', ownNow());
      assert.deepEqual(d.changed, ['endpoints.blue.h7.e-gone'], 'a key of this host its log no longer has is drift');
      await syncOwnKeys(kv, mirror, 'h7', '192.0.2.7', ownNow);
      assert.deepEqual(await keysOf('h7'), ['members.blue.h7'], `removed (watch at ${rev}, bucket at ${at})`);
      await kv.put('endpoints.blue.h7.e-gone', '{"host":"h7"}');
    }
    // Written again by this host meanwhile (wanted now): it stays.
    const mirror = new KeyMirror();
    mirror.seen('endpoints.blue.h7.e-gone', at, true);
    await syncOwnKeys(kv, mirror, 'h7', '192.0.2.7', () => ({ members: ['blue'], endpoints: [{ cluster: 'blue', endpointId: 'e-gone', address: '10.240.0.7', mac: '02:42:0a:f0:00:07' }] }));
    assert.deepEqual(await keysOf('h7'), ['endpoints.blue.h7.e-gone', 'members.blue.h7']);
    for (const k of await keysOf('h7')) await kv.delete(k);
  });

  it('syncOwn removes what the log no longer has (an endpoint gone, a network left)', async () => {
    await settle();
    await hosts['h2']!.syncOwn(() => ({ members: [], endpoints: [] }));
    assert.deepEqual(await keysOf('h2'), ['hosts.h2']);
  });
});
