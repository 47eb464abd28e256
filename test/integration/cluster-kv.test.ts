// The cluster's KV bucket on a real nats-server (JetStream): hosts racing to create one cluster
// network get one subnet and one VNI; a different --subnet (or size) is refused naming the one it has;
// blocks claimed concurrently are distinct, and a host gets back a block it claimed before a crash;
// the block of a static address goes to one host, and is refused to the others naming it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { DriverError } from '../../src/errors.ts';
import { Kvm } from '@nats-io/kv';
import { listKeys, tryCreate } from '../../src/events/cluster/cas.ts';
import { ClusterKv } from '../../src/events/cluster/kv.ts';
import { parseRouteSource } from '../../src/kernel/route-source.ts';
import { natsHostOf } from '../../src/operator/cluster.ts';
import { waitFor } from '../helpers/docker.ts';
import { createNatsServer, type NatsServer } from '../helpers/nats.ts';

let nats: NatsServer;
const conns: NatsConnection[] = [];
let hosts: ClusterKv[];
before(async () => {
  nats = await createNatsServer();
  hosts = [];
  for (const h of ['h1', 'h2', 'h3']) {
    const nc = await connect({ servers: nats.url });
    conns.push(nc);
    hosts.push(await ClusterKv.open(nc, { host: h, vtep: `192.0.2.${hosts.length + 1}`, replicas: 1 }));
  }
});
after(async () => {
  for (const nc of conns) await nc.close();
  await nats?.stop();
});

describe('cluster KV bucket', () => {
  it('three hosts create blue at once, each proposing its own subnet: one subnet, one VNI', async () => {
    const nets = await Promise.all(hosts.map((h, i) => h.joinNetwork({ name: 'blue', subnet: null, propose: () => `10.240.${i + 1}.0/24` })));
    assert.equal(new Set(nets.map((n) => n.subnet)).size, 1, JSON.stringify(nets));
    assert.equal(new Set(nets.map((n) => n.vni)).size, 1, JSON.stringify(nets));
    assert.match(nets[0]!.subnet, /^10\.240\.[123]\.0\/24$/);
    // The losers' claims on their own proposals stay: a new network's proposal avoids them too.
    const free = (taken: readonly string[]) => ['10.240.1.0/24', '10.240.2.0/24', '10.240.3.0/24', '10.240.4.0/24'].find((c) => !taken.includes(c)) ?? 'none';
    const teal = await hosts[0]!.joinNetwork({ name: 'teal', subnet: null, propose: free });
    assert.notEqual(teal.subnet, nets[0]!.subnet);
  });

  it('the hosts\' records: name, VTEP, last seen', async () => {
    const records = await hosts[2]!.hosts();
    assert.deepEqual(records.map((h) => `${h.host} ${h.vtep}`), ['h1 192.0.2.1', 'h2 192.0.2.2', 'h3 192.0.2.3']);
    for (const h of records) assert.ok(Date.now() - Date.parse(h.lastSeen ?? '') < 60_000, `${h.host}: ${h.lastSeen}`);
  });

  it('every host is listed while the records are rewritten (heartbeats), with and without a watch', async () => {
    // A key listing can end early, and empty, while the keys it lists are rewritten: status once
    // showed no cluster host at all. With a watch the mirror is read; without one this host's
    // own record is read whatever the listing says.
    const watch = await hosts[0]!.watchPeers(() => undefined);
    try {
      await waitFor(async () => (await hosts[1]!.heartbeat()) && hosts[0]!.watching, { what: 'the watch to catch up (a live change after its replay)' });
      let beating = true;
      const beats = (async () => {
        while (beating) await Promise.all(hosts.map((h) => h.heartbeat()));
      })();
      const kv = await new Kvm(conns[0]!).open('ledgernet-cluster');
      try {
        for (let i = 0; i < 30; i++) {
          const listed = await listKeys(kv, 'hosts.*');
          assert.equal(new Set(listed).size, listed.length, `round ${i}, a listing: ${listed.join(' ')}`);
          assert.deepEqual((await hosts[0]!.hosts()).map((h) => h.host), ['h1', 'h2', 'h3'], `round ${i}, with the watch`);
          assert.ok((await hosts[2]!.hosts()).some((h) => h.host === 'h3'), `round ${i}, without a watch: this host itself`);
        }
      } finally {
        beating = false;
        await beats;
      }
    } finally {
      watch.stop();
    }
  });

  it('a different --subnet for blue is refused naming the one it has; the same one is fine', async () => {
    const blue = await hosts[0]!.joinNetwork({ name: 'blue', subnet: null, propose: () => 'unused' });
    await assert.rejects(hosts[1]!.joinNetwork({ name: 'blue', subnet: '10.99.0.0/16', propose: () => 'unused' }), (e: unknown) => {
      return e instanceof DriverError && e.code === 'LN_ERR_CLUSTER_SUBNET' && e.message.includes(`already has subnet ${blue.subnet}`);
    });
    assert.deepEqual(await hosts[2]!.joinNetwork({ name: 'blue', subnet: blue.subnet, propose: () => 'unused' }), blue);
  });

  it('a size only (--subnet 0.0.0.0/N) of another length is refused naming the subnet; the same length joins it', async () => {
    const blue = await hosts[0]!.joinNetwork({ name: 'blue', subnet: null, propose: () => 'unused' });
    const len = Number(blue.subnet.split('/')[1]);
    await assert.rejects(hosts[1]!.joinNetwork({ name: 'blue', subnet: null, size: len + 2, propose: () => 'unused' }), (e: unknown) => {
      return e instanceof DriverError && e.code === 'LN_ERR_CLUSTER_SUBNET' && e.message.includes(`already has subnet ${blue.subnet} (allocated by host h`) && e.message.includes(`not a /${len + 2}`);
    });
    assert.deepEqual(await hosts[2]!.joinNetwork({ name: 'blue', subnet: null, size: len, propose: () => 'unused' }), blue);
  });

  it('another network gets another VNI; a subnet another network holds is refused', async () => {
    const blue = await hosts[0]!.joinNetwork({ name: 'blue', subnet: null, propose: () => 'unused' });
    const green = await hosts[1]!.joinNetwork({ name: 'green', subnet: '10.241.0.0/16', propose: () => 'unused' });
    assert.notEqual(green.vni, blue.vni);
    await assert.rejects(hosts[2]!.joinNetwork({ name: 'red', subnet: blue.subnet, propose: () => 'unused' }), /is cluster network blue's/);
  });

  it('without --subnet, a proposal another network claimed meanwhile is proposed again, never refused', async () => {
    const blue = await hosts[0]!.joinNetwork({ name: 'blue', subnet: null, propose: () => 'unused' });
    // A host whose listing did not show blue's subnet yet (it was claimed after the listing)
    // proposes it: it proposes again, blue's subnet now among those taken.
    const seen: (readonly string[])[] = [];
    const late = (taken: readonly string[]) => {
      seen.push(taken);
      return seen.length === 1 ? blue.subnet : ['10.242.1.0/24', '10.242.2.0/24'].find((c) => !taken.includes(c)) ?? 'none';
    };
    const olive = await hosts[1]!.joinNetwork({ name: 'olive', subnet: null, propose: late });
    assert.equal(olive.subnet, '10.242.1.0/24');
    assert.ok(seen[1]?.includes(blue.subnet), 'the second proposal avoids the subnet lost');
    // One that keeps proposing a held subnet gives up, naming it.
    let tries = 0;
    await assert.rejects(hosts[2]!.joinNetwork({ name: 'plum', subnet: null, propose: () => (tries++, blue.subnet) }), /is cluster network blue's; choose another --subnet for plum/);
    assert.equal(tries, 16);
  });

  it('blocks claimed at once by three hosts are distinct; a block claimed before a crash comes back', async () => {
    const green = await hosts[0]!.joinNetwork({ name: 'green', subnet: '10.241.0.0/16', propose: () => 'unused' });
    const claims = await Promise.all([...hosts, ...hosts].map((h) => h.claimBlock(green, [])));
    // A host asked twice with nothing in its log may get its first block again: no block went to two hosts.
    const byHost = hosts.map((_, i) => new Set([claims[i], claims[i + 3]]));
    const all = byHost.flatMap((s) => [...s]);
    assert.equal(new Set(all).size, all.length, JSON.stringify(claims));
    const next = await hosts[0]!.claimBlock(green, [...byHost[0]!].map(String));
    assert.ok(!all.includes(next), 'a host whose log holds its block gets a new one');
    assert.ok(byHost[1]!.has(await hosts[1]!.claimBlock(green, [])), 'a host whose log lost its block (a crash) gets it back');
  });
  it("a static address's block: claimed by one host, refused to another naming the holder, claimed again by the first; at once, one host wins", async () => {
    const coral = await hosts[0]!.joinNetwork({ name: 'coral', subnet: '10.242.0.0/24', propose: () => 'unused' });
    assert.deepEqual(await hosts[1]!.joinNetwork({ name: 'coral', subnet: null, propose: () => 'unused' }), coral);
    await hosts[0]!.claimBlockOf(coral, '10.242.0.64/26', { address: '10.242.0.70', owned: [] });
    await assert.rejects(hosts[1]!.claimBlockOf(coral, '10.242.0.64/26', { address: '10.242.0.71', owned: ['10.242.0.0/26'] }), (e: unknown) => {
      assert.ok(e instanceof DriverError && e.code === 'LN_ERR_IPAM_ADDRESS', String(e));
      assert.match(
        e.message,
        /^address 10\.242\.0\.71 of cluster network coral lies in address block 10\.242\.0\.64\/26, which host h1 holds .*; pick an address of a block this host holds \(10\.242\.0\.0\/26\), or leave out --ip and let IPAM choose$/,
      );
      return true;
    });
    // Its holder claims it again (another static address of it, its log without it after a crash): done, still its own.
    await hosts[0]!.claimBlockOf(coral, '10.242.0.64/26', { address: '10.242.0.72', owned: [] });
    const kv = await new Kvm(conns[0]!).open('ledgernet-cluster');
    assert.equal((await kv.get('blocks.coral.1'))?.string(), 'h1');
    // A dynamic claim skips it.
    assert.notEqual(await hosts[1]!.claimBlock(coral, []), '10.242.0.64/26');
    // Two hosts claiming one free block at once: one gets it, the other is refused naming it.
    const race = await Promise.allSettled([hosts[1]!, hosts[2]!].map((h) => h.claimBlockOf(coral, '10.242.0.192/26', { address: '10.242.0.200', owned: [] })));
    assert.deepEqual(race.map((r) => r.status).sort(), ['fulfilled', 'rejected']);
    const winner = race[0]!.status === 'fulfilled' ? 'h2' : 'h3';
    assert.equal((await kv.get('blocks.coral.3'))?.string(), winner);
    const lost = race.find((r) => r.status === 'rejected');
    assert.match(String((lost as PromiseRejectedResult).reason), new RegExp(`which host ${winner} holds`));
  });

  it('a create that loses a race, read back from a replica that has not seen the winner yet, is retried and not an error', async () => {
    // Clustered NATS serves a KV read from any replica: right after another host's create, a read
    // may still find no key (seen in the multihost scale test as "wrong last sequence"). The real
    // bucket is used; only its reads of this key are made stale for the first two tries.
    const key = 'blocks.race.0';
    const kv = await new Kvm(conns[0]!).open('ledgernet-cluster');
    assert.equal(await tryCreate(kv, key, 'h1'), true);
    let stale = 2;
    const staleKv = new Proxy(kv, {
      get: (target, prop, receiver) => (prop === 'get' ? async (k: string) => (k === key && stale-- > 0 ? null : target.get(k)) : Reflect.get(target, prop, receiver)),
    });
    assert.equal(await tryCreate(staleKv, key, 'h2'), false, "the key is h1's: h2 did not create it");
    assert.ok(stale < 0, 'the stale reads were made');
    assert.equal((await kv.get(key))?.string(), 'h1');
  });
});

describe('host names with dots (an FQDN --host)', () => {
  it('are read back from their keys as themselves: members, endpoints and records', async () => {
    const names = ['node1.example.com', 'node2.example.com'];
    const [a, b] = await Promise.all(names.map(async (host, i) => {
      const nc = await connect({ servers: nats.url });
      conns.push(nc);
      return ClusterKv.open(nc, { host, vtep: `192.0.2.${21 + i}`, replicas: 1 });
    })) as [ClusterKv, ClusterKv];
    const seen: string[] = [];
    const watch = await a.watchPeers((c) => c.cluster === 'dots' && seen.push(`${c.op} ${c.cluster} ${c.host}${c.op === 'endpoint' ? ` ${c.endpointId} ${c.endpoint?.address ?? 'gone'}` : ''}`));
    try {
      await b.joinNetwork({ name: 'dots', subnet: '10.249.0.0/24', propose: () => 'unused' });
      await b.publishEndpoint('dots', { endpointId: 'e1', address: '10.249.0.2', mac: '02:42:0a:f9:00:02' });
      await b.publishEndpoint('dots', { endpointId: 'e1', gone: true });
      await waitFor(() => seen.length >= 3, { timeoutMs: 5_000, what: 'the changes through the watch' });
      assert.deepEqual(seen, ['member dots node2.example.com', 'endpoint dots node2.example.com e1 10.249.0.2', 'endpoint dots node2.example.com e1 gone']);
      const records = (await a.hosts()).map((h) => h.host);
      assert.ok(names.every((n) => records.includes(n)), records.join(' '));
      assert.ok(!records.includes('node1') && !records.includes('node2'), records.join(' '));
    } finally {
      watch.stop();
    }
  });
});

describe('VTEP defaults', () => {
  it('the host of a NATS server; the source of a route', () => {
    assert.equal(natsHostOf('nats://10.231.200.1:4222'), '10.231.200.1');
    assert.equal(natsHostOf('n1.example:4222'), 'n1.example');
    assert.equal(natsHostOf('tls://[fd00::1]:4222'), 'fd00::1');
    assert.equal(parseRouteSource('[{"dst":"10.1.2.3","gateway":"192.0.2.1","dev":"eth0","prefsrc":"192.0.2.2","flags":[],"uid":0,"cache":[]}]'), '192.0.2.2');
    assert.equal(parseRouteSource('[{"dst":"10.1.2.3","dev":"eth0"}]'), null);
  });
});
