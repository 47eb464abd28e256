// Three hosts joining the cluster at the same moment, on three real nats-servers routed into one
// JetStream cluster that has just elected its meta leader (a cluster starting, as the multihost
// test bed does): the bucket they create together exists before its stream has a leader, and a
// KV request sent before that is never answered. Each host is in within a few seconds (with the
// client's 5 s per request, two of three waited 5 s and more), and they agree on one network.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ClusterKv } from '../../src/events/cluster/kv.ts';
import { createNatsCluster, type NatsCluster } from '../helpers/nats.ts';

let nats: NatsCluster;
const conns: NatsConnection[] = [];
before(async () => {
  nats = await createNatsCluster(3);
  for (const url of nats.urls) conns.push(await connect({ servers: url }));
});
after(async () => {
  for (const nc of conns) await nc.close();
  await nats?.stop();
});

describe('joining a cluster that has just formed', () => {
  it('three hosts at once: each is in within 4 s, and they get one network', async () => {
    const t = Date.now();
    const took: number[] = [];
    const hosts = await Promise.all(
      conns.map(async (nc, i) => {
        const kv = await ClusterKv.open(nc, { host: `h${i + 1}`, vtep: `192.0.2.${i + 1}`, replicas: 3 });
        took[i] = Date.now() - t;
        return kv;
      }),
    );
    assert.ok(took.every((ms) => ms < 4_000), `joined after ${took.join(', ')} ms`);
    const nets = await Promise.all(hosts.map((h, i) => h.joinNetwork({ name: 'blue', subnet: null, propose: () => `10.240.${i + 1}.0/24` })));
    assert.equal(new Set(nets.map((n) => `${n.subnet} ${n.vni}`)).size, 1, JSON.stringify(nets));
    assert.deepEqual((await hosts[0]!.hosts()).map((h) => h.host), ['h1', 'h2', 'h3']);
  });
});
