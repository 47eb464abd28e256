// A failed Docker call's warn line names what the call was about (NetworkID, EndpointID; PoolID,
// Pool, Address for IPAM), read from its body field by field: never the body itself.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { createPlugin, type Plugin } from '../../../src/api/plugin.ts';
import { fold } from '../../../src/events/domain/evolve.ts';
import { emptyState } from '../../../src/events/domain/types.ts';
import { EventLog } from '../../../src/events/log/log.ts';
import { EventStore } from '../../../src/events/log/store.ts';
import { Reconciler } from '../../../src/reconciler/loop.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';

const NET = '404f6704c3ccdc6e4d2ec4a484462b64600d586ecb6b5dda50c4010a8d5973be';
const EP = 'a8bbafba2420888ea04df22510037f17cb4829a8b6632a407ffb32281a344e8d';

let dir: string;
let store: EventStore;
let reconciler: Reconciler;
let plugin: Plugin;
let lines: Record<string, unknown>[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ln-failure-log-'));
  const { log, events } = await EventLog.open(dir, { host: 't' });
  store = new EventStore(log, fold(emptyState, events));
  lines = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const logger = pino({ level: 'warn' }, sink);
  reconciler = new Reconciler({ kernel: new FakeKernel(), getState: () => store.latest, log: pino({ level: 'silent' }), intervalMs: 0, onLost: async () => undefined });
  plugin = createPlugin({ store, reconciler, log: logger, applyTimeoutMs: 5_000 });
});

afterEach(async () => {
  await reconciler.stop();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** The warn line of one failed call. */
async function failed(method: string, body: string): Promise<Record<string, unknown>> {
  const r = await plugin.call(method, body);
  assert.notEqual(r.status, 200, r.body);
  await new Promise((resolve) => setImmediate(resolve));
  const line = lines.at(-1);
  assert.ok(line, `${method}: a line was logged`);
  assert.equal(line['level'], 40, JSON.stringify(line));
  return line;
}

describe('failed calls are logged with the ids they named', () => {
  it('CreateNetwork with a bad option: its NetworkID, and none of the options', async () => {
    const line = await failed(
      'NetworkDriver.CreateNetwork',
      `{"NetworkID":"${NET}","Options":{"com.docker.network.generic":{"ledgernet.mtu":"abc","other":"s3cret"}},"IPv4Data":[{"AddressSpace":"LocalDefault","Gateway":"10.213.0.1/24","Pool":"10.213.0.0/24"}],"IPv6Data":[]}`,
    );
    assert.equal(line['NetworkID'], NET);
    assert.equal(line['url'], '/NetworkDriver.CreateNetwork');
    assert.doesNotMatch(JSON.stringify(line), /s3cret/);
  });

  it('CreateEndpoint with ledgernet.mac=zz: its NetworkID and EndpointID', async () => {
    const line = await failed(
      'NetworkDriver.CreateEndpoint',
      `{"NetworkID":"${NET}","EndpointID":"${EP}","Interface":{"Address":"10.213.0.2/24","AddressIPv6":"","MacAddress":""},"Options":{"ledgernet.mac":"zz"}}`,
    );
    assert.equal(line['code'], 'LN_ERR_INVALID_OPTION');
    assert.equal(line['NetworkID'], NET);
    assert.equal(line['EndpointID'], EP);
  });

  it('an IPAM call: its PoolID and Address; a body that is not JSON: no ids, still logged', async () => {
    const line = await failed('IpamDriver.RequestAddress', '{"PoolID":"LocalDefault/10.99.0.0/24","Address":"10.99.0.7","Options":{}}');
    assert.equal(line['PoolID'], 'LocalDefault/10.99.0.0/24');
    assert.equal(line['Address'], '10.99.0.7');
    const bad = await failed('NetworkDriver.DeleteNetwork', '{"NetworkID": nope');
    assert.equal(bad['NetworkID'], undefined);
    assert.equal(bad['code'], 'LN_ERR_BAD_REQUEST');
  });

  it('a long value is cut, a value that is not a string is left out', async () => {
    const line = await failed('NetworkDriver.DeleteNetwork', `{"NetworkID":"${'f'.repeat(5000)}","EndpointID":{"x":1}}`);
    assert.equal(String(line['NetworkID']).length, 101);
    assert.equal(line['EndpointID'], undefined);
  });
});
