// A cluster whose JetStream takes requests and does not answer (seen while a NATS cluster forms:
// every KV request timed out, and RequestPool outlived the supervisor's 25 s): RequestPool and
// the claim of an address block are refused within their own deadline, naming the bucket, with
// nothing in the log; a join that succeeds after it was given up on is settled as refused.
// A real nats-server without JetStream, and a subscriber that takes every JetStream API request
// and never answers (a real JetStream would answer; this one is silent like a cluster without quorum).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { createPluginApp } from '../../src/api/plugin-http.ts';
import { DriverError } from '../../src/errors.ts';
import { CLUSTER_ANSWER_MS, ClusterKv, lazyCluster } from '../../src/events/cluster/kv.ts';
import { fold } from '../../src/events/domain/evolve.ts';
import { emptyState } from '../../src/events/domain/types.ts';
import { EventLog } from '../../src/events/log/log.ts';
import { readLog } from '../../src/events/log/read.ts';
import { EventStore } from '../../src/events/log/store.ts';
import { Reconciler } from '../../src/reconciler/loop.ts';
import { FORWARD_DEADLINE_MS } from '../../src/supervisor/forward.ts';
import { FakeKernel } from '../helpers/fake-kernel.ts';
import { createNatsServer, type NatsServer } from '../helpers/nats.ts';

const ANSWER_MS = 2_000;
let nats: NatsServer;
let silent: NatsConnection;
let nc: NatsConnection;
let dir: string;
let app: FastifyInstance;
let logDir: string;
const taken: string[] = [];

before(async () => {
  nats = await createNatsServer({ jetstream: false });
  silent = await connect({ servers: nats.url });
  const sub = silent.subscribe('$JS.API.>');
  void (async () => {
    for await (const m of sub) taken.push(m.subject);
  })();
  await silent.flush();
  nc = await connect({ servers: nats.url });
  dir = await mkdtemp(join(tmpdir(), 'ln-cluster-deadline-'));
  logDir = join(dir, 'log');
  const { log, events } = await EventLog.open(logDir, { host: 'h1' });
  const store = new EventStore(log, fold(emptyState, events));
  const logger = pino({ level: 'silent' });
  const reconciler = new Reconciler({ kernel: new FakeKernel(), getState: () => store.latest, log: logger, intervalMs: 0, onLost: async () => undefined });
  app = createPluginApp({
    store,
    reconciler,
    log: logger,
    applyTimeoutMs: 5_000,
    cluster: lazyCluster(() => ClusterKv.open(nc, { host: 'h1', vtep: '192.0.2.1', replicas: 1 }), { answerMs: ANSWER_MS }),
  });
  await app.ready();
});
after(async () => {
  await app?.close();
  await nc?.close();
  await silent?.close();
  await nats?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a cluster whose JetStream does not answer', () => {
  it('the deadline leaves room inside the supervisor\'s', () => {
    assert.ok(CLUSTER_ANSWER_MS <= FORWARD_DEADLINE_MS / 2, `${CLUSTER_ANSWER_MS} ms is not well inside ${FORWARD_DEADLINE_MS} ms`);
  });

  it('RequestPool of a cluster network is refused within the deadline, naming the bucket; nothing is recorded', async () => {
    const t = Date.now();
    const res = await app.inject({ method: 'POST', url: '/IpamDriver.RequestPool', payload: '{"Pool":"","Options":{"ledgernet.cluster":"blue"},"V6":false}\n' });
    const took = Date.now() - t;
    const err = String((res.json() as Record<string, unknown>)['Err']);
    assert.match(err, /joining cluster network blue: the cluster's KV bucket \(NATS JetStream, ledgernet-cluster\) did not answer within 2 s; nothing was recorded/);
    assert.ok(took >= ANSWER_MS - 50 && took < ANSWER_MS + 1_500, `refused after ${took} ms`);
    assert.ok(taken.length > 0, 'the request reached NATS');
    assert.deepEqual((await readLog(logDir)).events.map((e) => e.type), []);
  });

  it('the next call waits again, no longer than the deadline', async () => {
    const t = Date.now();
    const res = await app.inject({ method: 'POST', url: '/IpamDriver.RequestPool', payload: '{"Pool":"10.240.0.0/24","Options":{"ledgernet.cluster":"blue"},"V6":false}\n' });
    assert.match(String((res.json() as Record<string, unknown>)['Err']), /did not answer within 2 s/);
    assert.ok(Date.now() - t < ANSWER_MS + 1_500, `refused after ${Date.now() - t} ms`);
  });

  it('claiming an address block is refused within the deadline too, naming the network', async () => {
    const port = lazyCluster(() => ClusterKv.open(nc, { host: 'h1', vtep: '192.0.2.1', replicas: 1 }), { answerMs: ANSWER_MS });
    const t = Date.now();
    await assert.rejects(port.claimBlock({ name: 'blue', subnet: '10.240.0.0/24', vni: 5000, blockLen: 26, createdBy: 'h2' }, []), /claiming an address block of cluster network blue: the cluster's KV bucket \(NATS JetStream, ledgernet-cluster\) did not answer within 2 s/);
    assert.ok(Date.now() - t < ANSWER_MS + 1_500, `refused after ${Date.now() - t} ms`);
  });

  it("claiming the block of a static address is refused within the deadline too, naming the block and the address", async () => {
    const port = lazyCluster(() => ClusterKv.open(nc, { host: 'h1', vtep: '192.0.2.1', replicas: 1 }), { answerMs: ANSWER_MS });
    const t = Date.now();
    await assert.rejects(
      port.claimBlockOf({ name: 'blue', subnet: '10.240.0.0/24', vni: 5000, blockLen: 26, createdBy: 'h2' }, '10.240.0.64/26', { address: '10.240.0.70', owned: [] }),
      (e: unknown) => e instanceof DriverError && e.code === 'LN_ERR_CLUSTER_UNAVAILABLE' && /claiming address block 10\.240\.0\.64\/26 of cluster network blue for address 10\.240\.0\.70: the cluster's KV bucket \(NATS JetStream, ledgernet-cluster\) did not answer within 2 s/.test(e.message),
    );
    assert.ok(Date.now() - t < ANSWER_MS + 1_500, `refused after ${Date.now() - t} ms`);
  });
});

describe('a join given up on that succeeds afterwards', () => {
  it('is settled as refused once it is done, and the caller hears of it', async () => {
    let finish: (n: { name: string; subnet: string; vni: number; blockLen: number; createdBy: string }) => void = () => undefined;
    const settled: string[] = [];
    const abandoned: string[] = [];
    const kv = {
      joinNetwork: () => new Promise((r) => (finish = r)),
      settle: (name: string) => settled.push(name),
    } as unknown as ClusterKv;
    const port = lazyCluster(async () => kv, { answerMs: 100, abandoned: (n) => abandoned.push(n) });
    await assert.rejects(port.joinNetwork({ name: 'blue', subnet: null, propose: () => '10.240.0.0/24' }), (e: unknown) => e instanceof DriverError && e.code === 'LN_ERR_CLUSTER_UNAVAILABLE' && /joining cluster network blue/.test(e.message));
    assert.deepEqual([settled, abandoned], [[], []], 'nothing settled while the join still runs');
    finish({ name: 'blue', subnet: '10.240.0.0/24', vni: 5000, blockLen: 26, createdBy: 'h1' });
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual([settled, abandoned], [['blue'], ['blue']]);
  });
});
