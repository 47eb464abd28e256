// The heartbeat loop on a real nats-server when a beat finds the bucket "gone" while it is there
// all along: JetStream answering `no responders` (nats.js: JetStreamNotEnabled) for a moment after
// a restart, then ready again when the bucket is bound anew. The record is still in place, so this
// host's own heartbeats keep coming back through its old watch, but that watch fills a mirror
// nothing reads any more: before the fix nothing was published again, and an endpoint started
// during the outage never reached the other hosts (seen once in CI, multihost-liveness). The
// transient error is made by wrapping the bucket handle for one `update`; the server, the bucket,
// the watch and the heartbeat loop are real.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { Kvm } from '@nats-io/kv';
import { ClusterKv } from '../../src/events/cluster/kv.ts';
import { startHeartbeat, type Heartbeat } from '../../src/events/cluster/heartbeat.ts';
import type { OwnKeys } from '../../src/events/cluster/host-keys.ts';
import { waitFor } from '../helpers/docker.ts';
import { createNatsServer, type NatsServer } from '../helpers/nats.ts';

let nats: NatsServer;
let nc: NatsConnection;
let peer: NatsConnection;
let kv: ClusterKv;
let hb: Heartbeat | null = null;
let watch: { stop(): void } | null = null;

before(async () => {
  nats = await createNatsServer();
  nc = await connect({ servers: nats.url });
  peer = await connect({ servers: nats.url });
});
after(async () => {
  hb?.stop();
  watch?.stop();
  await nc?.close();
  await peer?.close();
  await nats?.stop();
});

const endpoint = (id: string, last: number) => ({ cluster: 'blue', endpointId: id, address: `10.240.0.${last}`, mac: `02:42:0a:f0:00:0${last}` });

async function bucketHas(key: string): Promise<boolean> {
  const e = await (await new Kvm(peer).open('ledgernet-cluster')).get(key);
  return e?.operation === 'PUT';
}

describe('the bucket bound again after a transient error', () => {
  it('its own heartbeats still come back, yet the host watches again and writes what it missed', { timeout: 30_000 }, async () => {
    kv = await ClusterKv.open(nc, { host: 'h1', vtep: '192.0.2.1', replicas: 1 });
    let own: OwnKeys = { members: ['blue'], endpoints: [endpoint('e-before', 2)] };
    const infos: string[] = [];
    const startWatch = async () => {
      watch?.stop();
      watch = await kv.watchPeers(() => undefined, (s) => hb?.seen(s));
    };
    hb = startHeartbeat({
      kv,
      self: 'h1',
      timeoutMs: 1_200, // a beat every 200 ms
      own: () => own,
      rewatch: () => void startWatch(),
      log: { info: (_o, m) => void infos.push(m), warn: () => undefined, error: () => undefined },
    });
    await startWatch();
    await waitFor(() => bucketHas('endpoints.blue.h1.e-before'), { timeoutMs: 5_000, what: 'the first full publish' });

    // One heartbeat meets `no responders` on JetStream's API: the bucket is bound again (it is the same one).
    const inner = (kv as unknown as { b: { kv: { update: (...a: unknown[]) => Promise<number> } } }).b;
    const real = inner.kv;
    let failed = false;
    inner.kv = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop === 'update' && !failed) {
          return async () => {
            failed = true;
            throw Object.assign(new Error('jetstream is not enabled'), { name: 'JetStreamNotEnabled' });
          };
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    await waitFor(() => failed && kv.watchDetached, { timeoutMs: 5_000, what: 'the bucket to be bound again' });
    // An endpoint made meanwhile, whose own publish failed (as during an outage): only the full publish writes it.
    own = { members: ['blue'], endpoints: [endpoint('e-before', 2), endpoint('e-during', 3)] };
    hb.dirty();
    await waitFor(() => bucketHas('endpoints.blue.h1.e-during'), { timeoutMs: 10_000, intervalMs: 100, what: 'the endpoint made during the error to be written to the bucket' });
    assert.equal(kv.watchDetached, false, 'a new watch feeds the mirror');
    assert.ok(kv.watching);
    assert.ok(infos.includes('cluster: the KV bucket was bound again after an error; watching it again'), infos.join('\n'));
  });
});
