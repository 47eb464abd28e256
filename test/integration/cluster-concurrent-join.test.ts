// Two hosts creating the same cluster networks at the same moment, on two real nats-servers routed
// into one JetStream cluster (the multihost bench's bed). Each join lists keys of the bucket (the
// subnets taken) while the other host writes them; the NATS client's listing then sometimes waited
// 30 s for its consumer's heartbeat (3 of 15 joins here, and a `docker network create` refused after
// ledgernet's 12 s in CI). listKeys (src/events/cluster/cas.ts) drops a stalled listing and lists
// again, so every join is in within a few seconds.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ClusterKv } from '../../src/events/cluster/kv.ts';
import { createNatsCluster, type NatsCluster } from '../helpers/nats.ts';

let nats: NatsCluster;
const conns: NatsConnection[] = [];
before(async () => {
  nats = await createNatsCluster(2);
  for (const url of nats.urls) conns.push(await connect({ servers: url }));
});
after(async () => {
  for (const nc of conns) await nc.close();
  await nats?.stop();
});

/** The first /24 of 10.240.0.0/16 not taken: what both hosts propose, so they race for it. */
const firstFree = (taken: readonly string[]) => {
  let k = 1;
  while (taken.includes(`10.240.${k}.0/24`)) k++;
  return `10.240.${k}.0/24`;
};

describe('two hosts creating cluster networks at the same moment', () => {
  it('20 networks, each joined by both within 10 s, with one subnet each and none shared', async () => {
    const hosts = await Promise.all(conns.map((nc, i) => ClusterKv.open(nc, { host: `h${i + 1}`, vtep: `192.0.2.${i + 1}`, replicas: 2 })));
    const subnets = new Set<string>();
    for (let r = 0; r < 20; r++) {
      const t = Date.now();
      const nets = await Promise.all(
        hosts.map(async (h) => {
          const net = await h.joinNetwork({ name: `n${r}`, subnet: null, propose: firstFree });
          return { net, ms: Date.now() - t };
        }),
      );
      assert.ok(nets.every((n) => n.ms < 10_000), `n${r} joined after ${nets.map((n) => n.ms).join(', ')} ms`);
      assert.equal(new Set(nets.map((n) => `${n.net.subnet} ${n.net.vni}`)).size, 1, JSON.stringify(nets));
      subnets.add(nets[0]!.net.subnet);
    }
    assert.equal(subnets.size, 20);
  });
});
