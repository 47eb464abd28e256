// Two machines under one --host (it defaults to the hostname, which cloned VMs share), on a real
// nats-server: the second to join the cluster while the first's record is fresh is refused,
// naming the name, the other's VTEP and what to do; the same instance (its state directory's id)
// opening again, a restart, is let in and takes back the block it claimed before; once the other
// instance's record timed out, the newcomer is let in but does not take that one's blocks.
// Before, both opened under the name and claimBlock handed the second the first's block.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { DriverError } from '../../src/errors.ts';
import { ClusterKv } from '../../src/events/cluster/kv.ts';
import { createNatsServer, type NatsServer } from '../helpers/nats.ts';

let nats: NatsServer;
const conns: NatsConnection[] = [];

before(async () => {
  nats = await createNatsServer();
});
after(async () => {
  for (const nc of conns) await nc.close();
  await nats?.stop();
});

/** A machine joining the cluster under `host` with the state directory id `instance`. */
async function open(host: string, vtep: string, instance: string, timeoutMs?: number): Promise<ClusterKv> {
  const nc = await connect({ servers: nats.url });
  conns.push(nc);
  return ClusterKv.open(nc, { host, vtep, replicas: 1, instance, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
}

const NETWORKS = ['blue', 'green', 'teal'];

/** Joins `name` and claims a block with nothing in the log (`owned` empty: a claim cut off before it was recorded). */
async function claim(kv: ClusterKv, name: string): Promise<string> {
  const subnet = `10.${NETWORKS.indexOf(name) + 240}.0.0/16`;
  const net = await kv.joinNetwork({ name, subnet, propose: () => subnet });
  kv.settle(name);
  return kv.claimBlock(net, []);
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('two machines under one host name', () => {
  it('the second is refused while the first\'s record is fresh, naming the name, its VTEP and what to do; the first restarting is let in', async () => {
    const a = await open('ubuntu', '192.0.2.1', 'machine-a');
    const block = await claim(a, 'blue');
    await assert.rejects(open('ubuntu', '192.0.2.2', 'machine-b'), (e: unknown) => {
      assert.ok(e instanceof DriverError, String(e));
      assert.equal(e.code, 'LN_ERR_CLUSTER_HOST_TAKEN');
      assert.match(e.message, /under this host's name ubuntu/);
      assert.match(e.message, /VTEP 192\.0\.2\.1/);
      assert.match(e.message, /its own --host/);
      assert.match(e.message, /wait 30 s for its record to time out/);
      return true;
    });
    const record = await (await new Kvm(conns[0]!).open('ledgernet-cluster')).get('hosts.ubuntu');
    assert.match(record?.string() ?? '', /"vtep":"192\.0\.2\.1".*"instance":"machine-a"/, 'the refused machine wrote nothing');
    // The same state directory again (a restart): let in, and the block it claimed before its crash is its own.
    const again = await open('ubuntu', '192.0.2.1', 'machine-a');
    assert.equal(await claim(again, 'blue'), block);
  });

  it('once the other\'s record timed out the newcomer is let in, and its block is not the other\'s', async () => {
    // Short timeouts: a record is stale after max(3 s, 3 × its 500 ms interval). (1 s once left too
    // little room for the claim before the refusal on a slow machine.)
    const a = await open('clone', '192.0.2.3', 'machine-c', 3_000);
    const held = await claim(a, 'green');
    await assert.rejects(open('clone', '192.0.2.4', 'machine-d', 3_000), /LN_ERR_CLUSTER_HOST_TAKEN|under this host's name clone/);
    await pause(3_200);
    const b = await open('clone', '192.0.2.4', 'machine-d', 3_000);
    const mine = await claim(b, 'green');
    assert.notEqual(mine, held, `machine d was handed machine c's block ${held}`);
  });

  it('a record of an older ledgernet (no instance) is let in and its blocks taken back, as before', async () => {
    const kv = await new Kvm(conns[0]!).open('ledgernet-cluster');
    const a = await open('old', '192.0.2.5', 'machine-e');
    const held = await claim(a, 'teal');
    await kv.put('hosts.old', JSON.stringify({ host: 'old', vtep: '192.0.2.5', at: new Date().toISOString() }));
    const b = await open('old', '192.0.2.5', 'machine-f');
    assert.equal(await claim(b, 'teal'), held);
  });
});
