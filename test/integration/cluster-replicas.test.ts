// The KV bucket's replicas on real nats-servers: as many as the NATS cluster has servers (at most
// 3), whatever number of --nats URLs a host was given. Before, a first host given one URL (a DNS
// name in front of three clustered servers) made the bucket with one replica, and once that server
// was lost no host could use the cluster, though two of three servers were up. A bucket made with
// fewer is raised by the next host that opens it (said at info level); a standalone server gets 1.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ClusterKv } from '../../src/events/cluster/kv.ts';
import { waitFor } from '../helpers/docker.ts';
import { createNatsCluster, createNatsServer, type NatsCluster } from '../helpers/nats.ts';

const STREAM = 'KV_ledgernet-cluster';
let nats: NatsCluster;
const conns: NatsConnection[] = [];
/** A client of `servers`, once the server it reached names all three servers of the cluster (routes up). */
async function client(servers: readonly string[], size = servers.length === 1 ? 3 : servers.length): Promise<NatsConnection> {
  const nc = await connect({ servers: [...servers] });
  conns.push(nc);
  await waitFor(() => (nc.info?.connect_urls?.length ?? 0) >= size, { what: 'the server to name its cluster', timeoutMs: 10_000 });
  return nc;
}
before(async () => {
  nats = await createNatsCluster(3);
});
after(async () => {
  for (const nc of conns) await nc.close().catch(() => undefined);
  await nats?.stop();
});

describe("the KV bucket's replicas", () => {
  it('a bucket made with 1 replica (a first host given one URL, before) is raised to 3 by the next host that opens it, said at info level', { timeout: 60_000 }, async () => {
    const nc = await client([nats.urls[0]!]);
    await new Kvm(nc).create('ledgernet-cluster', { replicas: 1, history: 1 });
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(STREAM)).config.num_replicas, 1);
    const said: string[] = [];
    const log = { info: (o: object, msg: string) => said.push(`info ${JSON.stringify(o)} ${msg}`), warn: (o: object, msg: string) => said.push(`warn ${msg}`) };
    await ClusterKv.open(nc, { host: 'h1', vtep: '192.0.2.1', replicas: 1, log });
    assert.equal((await jsm.streams.info(STREAM)).config.num_replicas, 3);
    assert.equal(said.length, 1, said.join('\n'));
    assert.match(said[0]!, /^info .*"from":1,"to":3.* had 1 replica\(s\), raised to 3/);
    await jsm.streams.delete(STREAM);
  });

  it('a first host given one URL of three makes it with 3 replicas: its server lost, a host given the other two joins its network', { timeout: 60_000 }, async () => {
    const nc1 = await client([nats.urls[0]!]);
    const h1 = await ClusterKv.open(nc1, { host: 'h1', vtep: '192.0.2.1', replicas: 1 });
    const blue = await h1.joinNetwork({ name: 'blue', subnet: '10.240.0.0/16', propose: () => 'unused' });
    h1.settle('blue');
    const info = await (await jetstreamManager(nc1)).streams.info(STREAM);
    assert.equal(info.config.num_replicas, 3);
    const leader = info.cluster?.leader;
    assert.ok(leader, JSON.stringify(info.cluster));
    await nats.kill(leader);
    const alive = nats.urls.filter((_, i) => `n${i}` !== leader);
    const h2 = await ClusterKv.open(await client(alive, 1), { host: 'h2', vtep: '192.0.2.2', replicas: 2 });
    const joined = await h2.joinNetwork({ name: 'blue', subnet: null, propose: () => '10.250.0.0/16' });
    h2.settle('blue');
    assert.deepEqual(joined, blue);
  });
});

describe("the KV bucket's replicas on a standalone server", () => {
  it('are 1, though three --nats URLs were given (a standalone server refuses more)', { timeout: 60_000 }, async () => {
    const server = await createNatsServer();
    try {
      const nc = await connect({ servers: server.url });
      try {
        await ClusterKv.open(nc, { host: 'h1', vtep: '192.0.2.1', replicas: 3 });
        assert.equal((await (await jetstreamManager(nc)).streams.info(STREAM)).config.num_replicas, 1);
      } finally {
        await nc.close();
      }
    } finally {
      await server.stop();
    }
  });
});
