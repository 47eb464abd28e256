// Hosts with different --cluster-host-timeout on a real nats-server: each host's record says how
// often it beats, and a host is expired only after max(the judge's timeout, 3 × its interval).
// Before, a host with 3 s (beating every 500 ms) expired one with the default 30 s (every 5 s)
// whenever 3 s passed between two of its beats: every 5 s, its entries removed and published again.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ClusterKv } from '../../src/events/cluster/kv.ts';
import { startHeartbeat, type Heartbeat } from '../../src/events/cluster/heartbeat.ts';
import { createNatsServer, type NatsServer } from '../helpers/nats.ts';

let nats: NatsServer;
const conns: NatsConnection[] = [];
const stops: (() => void)[] = [];
/** What the hosts logged as warnings, each prefixed with its name. */
const warnings: string[] = [];

before(async () => {
  nats = await createNatsServer();
});
after(async () => {
  for (const stop of stops) stop();
  for (const nc of conns) await nc.close();
  await nats?.stop();
});

/** A host with its heartbeat and watch running, as serve runs them. */
async function host(name: string, vtep: string, timeoutMs: number): Promise<Heartbeat> {
  const nc = await connect({ servers: nats.url });
  conns.push(nc);
  const kv = await ClusterKv.open(nc, { host: name, vtep, replicas: 1, timeoutMs });
  const own = () => ({ members: ['blue'], endpoints: [{ cluster: 'blue', endpointId: `e-${name}`, address: `10.240.0.${vtep.split('.')[3]}`, mac: '02:42:0a:f0:00:09' }] });
  const log = { info: () => undefined, warn: (_: object, m: string) => void warnings.push(`${name}: ${m}`), error: (_: object, m: string) => void warnings.push(`${name}: ${m}`) };
  let beat: Heartbeat | null = null;
  const watch = await kv.watchPeers(() => undefined, (s) => beat?.seen(s), () => beat?.lostTouch());
  beat = startHeartbeat({ kv, self: name, timeoutMs, own, rewatch: () => undefined, log });
  const b = beat;
  stops.push(() => b.stop(), () => watch.stop());
  return b;
}

describe('hosts with different --cluster-host-timeout', () => {
  it('a host with 3 s does not expire one with 30 s (beating every 5 s) within 12 s', async () => {
    const a = await host('a', '192.0.2.1', 3_000);
    const b = await host('b', '192.0.2.2', 30_000);
    await new Promise((r) => setTimeout(r, 12_000));
    const stats = a.stats();
    assert.equal(stats.inTouch, true, 'a judged the others all along');
    assert.equal(stats.hostsHeard, 1, 'a heard b within b\'s own limit (3 × 5 s)');
    assert.equal(stats.expired, 0, warnings.join('\n'));
    assert.deepEqual(warnings, []);
    assert.equal(b.stats().expired, 0);
  });
});
