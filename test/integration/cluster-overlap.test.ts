// Cluster networks with overlapping (not equal) subnets on a real nats-server (JetStream): a
// --subnet inside another cluster network's subnet, or around it, is refused naming that network
// and its subnet, and nothing of it stays in the bucket; two hosts creating overlapping networks at
// the same moment end up with one of them; a proposal (no --subnet) that overlaps a subnet claimed
// meanwhile is proposed again. Before, a subnet claim was keyed by its exact CIDR only, so
// 10.240.0.0/16 and 10.240.1.0/24 both got in.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Kvm, type KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { listKeys } from '../../src/events/cluster/cas.ts';
import { ClusterKv } from '../../src/events/cluster/kv.ts';
import { DriverError } from '../../src/errors.ts';
import { createNatsServer, type NatsServer } from '../helpers/nats.ts';

let nats: NatsServer;
const conns: NatsConnection[] = [];
let hosts: ClusterKv[];
let kv: KV;
before(async () => {
  nats = await createNatsServer();
  hosts = [];
  for (const h of ['h1', 'h2']) {
    const nc = await connect({ servers: nats.url });
    conns.push(nc);
    hosts.push(await ClusterKv.open(nc, { host: h, vtep: `192.0.2.${hosts.length + 1}`, replicas: 1 }));
  }
  kv = await new Kvm(conns[0]!).open('ledgernet-cluster');
});
after(async () => {
  for (const nc of conns) await nc.close();
  await nats?.stop();
});

const unused = () => 'unused';
const refusedOverlap = (subnet: string, other: string, name: string) => (e: unknown) =>
  e instanceof DriverError &&
  e.code === 'LN_ERR_IPAM_OVERLAP' &&
  e.message.includes(`subnet ${subnet} overlaps subnet `) &&
  e.message.includes(`of cluster network ${other}; choose another --subnet for ${name}`);
/** What the bucket holds of `name`: its record's subnet, and the subnets claimed for it. */
async function heldBy(name: string): Promise<{ record: string | null; claims: string[] }> {
  const e = await kv.get(`networks.${name}`);
  const claims: string[] = [];
  for (const k of await listKeys(kv, 'subnets.*')) if ((await kv.get(k))?.string() === name) claims.push(k);
  return { record: e?.operation === 'PUT' ? e.json<{ subnet: string }>().subnet : null, claims };
}

describe('cluster networks with overlapping subnets', () => {
  it('a --subnet inside or around another cluster network\'s is refused, naming it; nothing of it stays', async () => {
    const a = await hosts[0]!.joinNetwork({ name: 'a', subnet: '10.240.0.0/16', propose: unused });
    hosts[0]!.settle('a');
    assert.equal(a.subnet, '10.240.0.0/16');
    await assert.rejects(hosts[1]!.joinNetwork({ name: 'b', subnet: '10.240.1.0/24', propose: unused }), (e: unknown) => {
      assert.equal((e as Error).message, 'subnet 10.240.1.0/24 overlaps subnet 10.240.0.0/16 of cluster network a; choose another --subnet for b');
      return refusedOverlap('10.240.1.0/24', 'a', 'b')(e);
    });
    await assert.rejects(hosts[1]!.joinNetwork({ name: 'c', subnet: '10.0.0.0/8', propose: unused }), refusedOverlap('10.0.0.0/8', 'a', 'c'));
    for (const name of ['b', 'c']) assert.deepEqual(await heldBy(name), { record: null, claims: [] }, name);
    // The same subnet is still refused as before; one beside it is fine.
    await assert.rejects(hosts[1]!.joinNetwork({ name: 'd', subnet: '10.240.0.0/16', propose: unused }), /is cluster network a's; choose another --subnet for d/);
    const e = await hosts[1]!.joinNetwork({ name: 'e', subnet: '10.241.0.0/16', propose: unused });
    hosts[1]!.settle('e');
    assert.equal(e.subnet, '10.241.0.0/16');
  });

  it('two hosts creating overlapping networks at the same moment: one gets in, the other is refused and backs out its claim', async () => {
    for (let round = 0; round < 6; round++) {
      const [wide, narrow] = [`10.${100 + round}.0.0/16`, `10.${100 + round}.7.0/24`];
      const asks = [
        { host: hosts[round % 2]!, name: `w${round}`, subnet: wide },
        { host: hosts[(round + 1) % 2]!, name: `n${round}`, subnet: narrow },
      ];
      const got = await Promise.allSettled(asks.map((q) => q.host.joinNetwork({ name: q.name, subnet: q.subnet, propose: unused })));
      asks.forEach((q) => q.host.settle(q.name));
      const won = asks.filter((_, i) => got[i]!.status === 'fulfilled');
      assert.equal(won.length, 1, `round ${round}: ${JSON.stringify(got.map((g) => (g.status === 'fulfilled' ? g.value : String(g.reason))))}`);
      const lost = asks.find((q) => q !== won[0])!;
      const reason = (got[asks.indexOf(lost)] as PromiseRejectedResult).reason;
      assert.ok(refusedOverlap(lost.subnet, won[0]!.name, lost.name)(reason), `round ${round}: ${String(reason)}`);
      assert.deepEqual(await heldBy(lost.name), { record: null, claims: [] }, `round ${round}: ${lost.name}`);
      assert.equal((await heldBy(won[0]!.name)).record, won[0]!.subnet);
    }
  });

  it('without --subnet, a proposal overlapping a network or a claim made meanwhile is proposed again', async () => {
    // A host whose listing did not show them yet proposes a subnet inside a's: it takes its claim back and proposes again.
    const seen: (readonly string[])[] = [];
    const late = (taken: readonly string[]) => (seen.push(taken), seen.length === 1 ? '10.240.9.0/24' : '10.243.0.0/24');
    const f = await hosts[1]!.joinNetwork({ name: 'f', subnet: null, propose: late });
    hosts[1]!.settle('f');
    assert.equal(f.subnet, '10.243.0.0/24');
    assert.equal(seen.length, 2);
    assert.deepEqual((await heldBy('f')).claims, ['subnets.10_243_0_0_24']);
    // Another host's claim, its network not yet recorded (it is between its claim and its record).
    await kv.create('subnets.10_244_0_0_16', 'g');
    const tries: string[] = [];
    const h = await hosts[0]!.joinNetwork({ name: 'h', subnet: null, propose: () => (tries.push(''), tries.length === 1 ? '10.244.3.0/24' : '10.245.0.0/24') });
    hosts[0]!.settle('h');
    assert.equal(h.subnet, '10.245.0.0/24');
    assert.deepEqual((await heldBy('h')).claims, ['subnets.10_245_0_0_24']);
  });
});
