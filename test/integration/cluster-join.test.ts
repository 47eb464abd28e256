// Three hosts joining the cluster at the same moment, on three real nats-servers routed into one
// JetStream cluster that has just elected its meta leader (a cluster starting, as the multihost
// test bed does): the bucket they create together exists before its stream has a leader, and a
// KV request sent before that is never answered. Each host is in soon after the stream has its
// leader (with the client's 5 s per request, two of three waited 5 s and more), and they agree on
// one network. Measured from the leader, not the clock: a loaded host elects it seconds later.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { ClusterKv } from '../../src/events/cluster/kv.ts';
import { createNatsCluster, type NatsCluster } from '../helpers/nats.ts';

let nats: NatsCluster;
const conns: NatsConnection[] = [];
let watcher: NatsConnection;
before(async () => {
  nats = await createNatsCluster(3);
  for (const url of nats.urls) conns.push(await connect({ servers: url }));
  watcher = await connect({ servers: nats.urls[0]! });
});
after(async () => {
  for (const nc of [...conns, watcher]) await nc?.close();
  await nats?.stop();
});

/** When (ms after `t`) the bucket's stream first answers with a leader: short requests, one every 50 ms. */
async function leaderSeen(t: number, done: () => boolean): Promise<number | null> {
  const jsm = await jetstreamManager(watcher, { timeout: 250 });
  while (!done()) {
    const info = await jsm.streams.info('KV_ledgernet-cluster').catch(() => null);
    if (info?.cluster?.leader) return Date.now() - t;
    await new Promise((r) => setTimeout(r, 50));
  }
  return null;
}

describe('joining a cluster that has just formed', () => {
  it('three hosts at once: each is in within 4 s of the stream having a leader, and they get one network', async () => {
    const t = Date.now();
    const took: number[] = [];
    let joined = false;
    const leader = leaderSeen(t, () => joined);
    const hosts = await Promise.all(
      conns.map(async (nc, i) => {
        const kv = await ClusterKv.open(nc, { host: `h${i + 1}`, vtep: `192.0.2.${i + 1}`, replicas: 3 });
        took[i] = Date.now() - t;
        return kv;
      }),
    );
    joined = true;
    // The watcher saw the leader no earlier than it was elected: a host in before that was in anyway.
    const leaderAt = (await leader) ?? Math.max(...took);
    console.log(`bucket stream leader seen after ${leaderAt} ms; hosts joined after ${took.join(', ')} ms`);
    assert.ok(took.every((ms) => ms < leaderAt + 4_000), `joined after ${took.join(', ')} ms, the stream's leader seen after ${leaderAt} ms`);
    const nets = await Promise.all(hosts.map((h, i) => h.joinNetwork({ name: 'blue', subnet: null, propose: () => `10.240.${i + 1}.0/24` })));
    assert.equal(new Set(nets.map((n) => `${n.subnet} ${n.vni}`)).size, 1, JSON.stringify(nets));
    assert.deepEqual((await hosts[0]!.hosts()).map((h) => h.host), ['h1', 'h2', 'h3']);
  });
});
