// A state dir written by a newer ledgernet, read by this one (a downgrade): an event type or
// version, or a snapshot format, this version does not know is never called damage (an operator
// told to restore a backup would lose real events): the start, loadState and `events verify`
// refuse it as LN_ERR_LOG_NEWER, naming what and where (the offset in the file, also when the
// start reads from a snapshot), and change nothing.
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DriverError } from '../../../src/errors.ts';
import { frame, unframe } from '../../../src/events/log/framing.ts';
import { canonicalJson, sealEvent } from '../../../src/events/log/hash.ts';
import { loadState, openStore } from '../../../src/events/log/open.ts';
import { LOG_FILE, readLog } from '../../../src/events/log/read.ts';
import { SNAPSHOT_FILE } from '../../../src/events/log/snapshot.ts';
import { byLedgernet } from '../../../src/events/domain/cause.ts';
import type { StoredEvent } from '../../../src/events/domain/types.ts';
import { checkNetworkOptions, EVER_ACCEPTED_OPTIONS } from '../../../src/events/domain/options.ts';
import { EventLog } from '../../../src/events/log/log.ts';
import { runCli } from '../../helpers/cli.ts';
import { networkSpec } from '../../helpers/events.ts';

let root: string;
let runDir: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ln-upgrades-'));
  runDir = await mkdtemp(join(tmpdir(), 'ln-upgrades-run-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(runDir, { recursive: true, force: true });
});

let n = 0;
const net = (i: number) => `${i}`.padStart(2, '0').padEnd(64, 'c');

/** A state dir with `count` networks and a snapshot (written at close). */
async function stateDir(count: number): Promise<string> {
  const dir = join(root, `s${n++}`);
  const { store } = await openStore(dir, { host: 'h' });
  for (let i = 0; i < count; i++) await store.execute({ type: 'CreateNetwork', spec: networkSpec(net(i), `10.66.${i}.0/24`, `10.66.${i}.1/24`) }, byLedgernet('test'));
  await store.close();
  return dir;
}

async function records(dir: string): Promise<{ events: StoredEvent[]; offsets: number[]; size: number }> {
  const buf = await readFile(join(dir, LOG_FILE));
  const { frames } = unframe(buf);
  return { events: frames.map((f) => JSON.parse(f.payload) as StoredEvent), offsets: frames.map((f) => f.offset), size: buf.length };
}

/** Appends an intact, chained record as a newer ledgernet would write it; returns its offset. */
async function appendFuture(dir: string, type: string, v: number, data: unknown = { something: 'new' }): Promise<number> {
  const { events, size } = await records(dir);
  const last = events.at(-1)!;
  const base = { type, v, seq: last.seq + 1, id: `h:${last.seq + 1}`, host: 'h', at: new Date().toISOString(), prevhash: last.hash, cause: { by: 'ledgernet', what: 'future' }, data };
  await appendFile(join(dir, LOG_FILE), frame(sealEvent(base as unknown as Omit<StoredEvent, 'hash'>).payload));
  return size;
}

const newer = (what: RegExp, offset: number) => (e: DriverError) =>
  e.code === 'LN_ERR_LOG_NEWER' &&
  /written by a newer ledgernet/.test(e.message) &&
  what.test(e.message) &&
  e.message.includes(`at byte offset ${offset})`) &&
  /run that version or a newer one; nothing was changed$/.test(e.message) &&
  !/backup|damaged/.test(e.message);

describe('a log written by a newer ledgernet', () => {
  for (const [name, type, v, what] of [
    ['an event type this version does not know', 'network.rebalanced', 1, /event type network\.rebalanced version 1, a type this ledgernet does not know/],
    ['a known type at a version above the one this version reads', 'network.created', 2, /event type network\.created version 2; this ledgernet reads it up to version 1/],
  ] as const) {
    it(`${name}: start, loadState and events verify refuse it as newer, at its offset in the file, and change nothing`, async () => {
      const dir = await stateDir(3);
      const offset = await appendFuture(dir, type, v);
      const log = await readFile(join(dir, LOG_FILE));
      const snap = await readFile(join(dir, SNAPSHOT_FILE));
      // The start reads from the snapshot (the record of event 3 on): the offset is still the file's.
      await assert.rejects(openStore(dir, { host: 'h' }), newer(what, offset));
      await assert.rejects(loadState(dir), newer(what, offset));
      await assert.rejects(readLog(dir), newer(what, offset));
      const verify = await runCli(['events', 'verify', '--state-dir', dir], { isolated: true, env: { LEDGERNET_RUN_DIR: runDir } });
      assert.equal(verify.exitCode, 1);
      assert.match(verify.stderr, /written by a newer ledgernet .*run that version or a newer one; nothing was changed \(LN_ERR_LOG_NEWER\)/);
      assert.doesNotMatch(verify.stderr, /backup|damaged/);
      assert.ok(verify.stderr.includes(`at byte offset ${offset})`), verify.stderr);
      assert.deepEqual(await readFile(join(dir, LOG_FILE)), log);
      assert.deepEqual(await readFile(join(dir, SNAPSHOT_FILE)), snap);
    });
  }

  it('the same record with a changed byte (its hash no longer matches) is damage, as before', async () => {
    const dir = await stateDir(2);
    const { events, size } = await records(dir);
    const last = events.at(-1)!;
    const base = { type: 'network.rebalanced', v: 1, seq: last.seq + 1, id: `h:${last.seq + 1}`, host: 'h', at: new Date().toISOString(), prevhash: last.hash, data: {} };
    const { payload } = sealEvent(base as unknown as Omit<StoredEvent, 'hash'>);
    await appendFile(join(dir, LOG_FILE), frame(payload.replace('"data":{}', '"data":{"x":1}')));
    await assert.rejects(openStore(dir, { host: 'h' }), (e: DriverError) => e.code === 'LN_ERR_LOG_CORRUPT' && e.message.includes(`damaged at byte offset ${size} `));
  });

  it('a damage message from a start that reads from a snapshot names the offset in the file', async () => {
    const dir = await stateDir(3);
    // Event 4 claims a type no version knows and a version below 1: damage, not a newer ledgernet.
    const { events, size } = await records(dir);
    const last = events.at(-1)!;
    const base = { type: 'network.created', v: 0, seq: last.seq + 1, id: `h:${last.seq + 1}`, host: 'h', at: new Date().toISOString(), prevhash: last.hash, data: {} };
    await appendFile(join(dir, LOG_FILE), frame(sealEvent(base as unknown as Omit<StoredEvent, 'hash'>).payload));
    await assert.rejects(openStore(dir, { host: 'h' }), (e: DriverError) => e.code === 'LN_ERR_LOG_CORRUPT' && e.message.includes(`record at offset ${size} (network.created) has version 0`));
  });

  it('a snapshot of a newer format: start and loadState refuse as newer, events verify says the same, nothing is changed', async () => {
    const dir = await stateDir(2);
    const path = join(dir, SNAPSHOT_FILE);
    const text = await readFile(path, 'utf8');
    const json = text.slice(0, text.indexOf('\nsha256:'));
    const { hash } = await import('node:crypto');
    const future = json.replace('"format":1,', '"format":2,');
    assert.notEqual(future, json);
    await writeFile(path, `${future}\nsha256:${hash('sha256', future)}\n`);
    const before = await readFile(path);
    const what = (e: DriverError) => e.code === 'LN_ERR_LOG_NEWER' && e.message.includes(`${path} was written by a newer ledgernet (snapshot format 2; this ledgernet reads format 1)`) && !/backup/.test(e.message);
    await assert.rejects(openStore(dir, { host: 'h' }), what);
    await assert.rejects(loadState(dir), what);
    const verify = await runCli(['events', 'verify', '--state-dir', dir], { isolated: true, env: { LEDGERNET_RUN_DIR: runDir } });
    assert.equal(verify.exitCode, 1);
    assert.match(verify.stderr, /snapshot\.json was written by a newer ledgernet \(snapshot format 2.*nothing was changed \(LN_ERR_LOG_NEWER\)/);
    assert.doesNotMatch(verify.stderr, /backup|damaged/);
    assert.deepEqual(await readFile(path), before);
  });
});

/**
 * Every option key a network may have been recorded with by any version: the ledgernet.* keys
 * of every version (the option table over git history), Docker's names ledgernet honours, Docker's
 * own flags, com.docker.network.* names versions before 2026-11-30 recorded without a check, and
 * labels and other names CreateNetwork ignores.
 */
const EVERY_KEY_EVER: Readonly<Record<string, string>> = {
  'ledgernet.mtu': '1400',
  'ledgernet.bridge': 'lnupgrade0',
  'ledgernet.icc': 'false',
  'ledgernet.masquerade': 'true',
  'ledgernet.allow': 'tcp/80,udp/53,icmp',
  'ledgernet.egress_rate': '10mbit',
  'ledgernet.ingress_rate': '20mbit',
  'ledgernet.egress_deny': '192.0.2.0/24',
  'ledgernet.egress_allow': '198.51.100.0/24:tcp/443',
  'ledgernet.cluster': 'blue',
  'com.docker.network.driver.mtu': '1400',
  'com.docker.network.bridge.name': 'lnupgrade0',
  'com.docker.network.bridge.enable_icc': 'false',
  'com.docker.network.bridge.enable_ip_masquerade': 'true',
  'com.docker.network.bridge.host_binding_ipv4': '127.0.0.1',
  'com.docker.network.host_ipv4': '10.66.9.1',
  'com.docker.network.host_ipv6': 'fd00:66::1',
  'com.docker.network.container_iface_prefix': 'ln',
  'com.docker.network.bridge.gateway_mode_ipv4': 'routed',
  'com.docker.network.bridge.gateway_mode_ipv6': 'nat',
  'com.docker.network.bridge.inhibit_ipv4': 'false',
  'com.docker.network.bridge.trusted_host_interfaces': 'eth1:wg0',
  'com.docker.network.enable_ipv4': 'true',
  'com.docker.network.enable_ipv6': 'false',
  'com.docker.network.internal': 'false',
  'com.docker.network.bridge.default_bridge': 'false',
  'com.docker.network.driver.private.something': 'x',
  'com.example.team': 'payments',
  'ledgernetish': 'label',
  'Ledgernet.Future': 'label',
};

/** The keys the live CreateNetwork knows today, as its refusal of an unknown one lists them. */
function liveKeys(): string[] {
  const listed = (unknown: string) => {
    try {
      checkNetworkOptions({ [unknown]: '1' });
    } catch (e) {
      return [...(e as Error).message.matchAll(/(ledgernet\.[a-z_]+|com\.docker\.network\.[a-z0-9_.]+)/g)].map((m) => m[1]!).filter((k) => k !== unknown);
    }
    throw new Error(`${unknown} was accepted`);
  };
  // The first lists the ledgernet.* keys and Docker's own ones, the second Docker's names of both.
  return [...new Set([...listed('ledgernet.zz_unknown'), ...listed('com.docker.network.zz_unknown')])];
}

async function logWithNetwork(options: Readonly<Record<string, string>>): Promise<{ dir: string; id: string; offset: number }> {
  const dir = join(root, `o${n++}`);
  const id = 'f'.repeat(64);
  const { log } = await EventLog.open(dir, { host: 'h' });
  await log.append([{ type: 'network.created', data: networkSpec(net(0), '10.66.0.0/24', '10.66.0.1/24') }]).durable;
  const offset = log.sizeBytes;
  await log.append([{ type: 'network.created', data: { ...networkSpec(id, '10.66.1.0/24', '10.66.1.1/24'), options } }]).durable;
  await log.append([{ type: 'network.deleted', data: { networkId: net(0) } }]).durable;
  await log.close();
  return { dir, id, offset };
}

describe('network options on replay', () => {
  it('the test holds every key any version accepted, and every key the live CreateNetwork knows today', () => {
    for (const k of [...EVER_ACCEPTED_OPTIONS, ...liveKeys()]) assert.ok(Object.hasOwn(EVERY_KEY_EVER, k), k);
    assert.ok(liveKeys().length >= 22, liveKeys().join(' '));
  });

  it('a log and a snapshot holding every option key ever accepted (old and new, Docker names, labels) load', async () => {
    const { dir, id } = await logWithNetwork(EVERY_KEY_EVER);
    const opened = await openStore(dir, { host: 'h' });
    assert.deepEqual(opened.state.networks[id]?.options, EVERY_KEY_EVER);
    await opened.store.execute({ type: 'CreateNetwork', spec: networkSpec(net(2), '10.66.2.0/24', '10.66.2.1/24') }, byLedgernet('test'));
    await opened.store.close();
    // From the snapshot written at close, and from the log alone.
    assert.deepEqual((await loadState(dir)).networks[id]?.options, EVERY_KEY_EVER);
    await rm(join(dir, SNAPSHOT_FILE));
    assert.deepEqual((await loadState(dir)).networks[id]?.options, EVERY_KEY_EVER);
    const verify = await runCli(['events', 'verify', '--state-dir', dir], { isolated: true, env: { LEDGERNET_RUN_DIR: runDir } });
    assert.equal(verify.exitCode, 0, verify.stderr);
  });

  it('a network recorded with a ledgernet.* key no version of this line accepted refuses the start by network and key', async () => {
    const { dir, id, offset } = await logWithNetwork({ 'ledgernet.mtu': '1400', 'ledgernet.future_isolation': 'strict', 'com.docker.network.bridge.default_bridge': 'false' });
    const before = await readFile(join(dir, LOG_FILE));
    const what = new RegExp(`network ${id} with option ledgernet\\.future_isolation, a network option this ledgernet does not know`);
    await assert.rejects(openStore(dir, { host: 'h' }), newer(what, offset));
    await assert.rejects(loadState(dir), newer(what, offset));
    const verify = await runCli(['events', 'verify', '--state-dir', dir], { isolated: true, env: { LEDGERNET_RUN_DIR: runDir } });
    assert.equal(verify.exitCode, 1);
    assert.match(verify.stderr, /option ledgernet\.future_isolation.*nothing was changed \(LN_ERR_LOG_NEWER\)/);
    assert.deepEqual(await readFile(join(dir, LOG_FILE)), before);
    // The live call refuses the same key by name.
    assert.throws(() => checkNetworkOptions({ 'ledgernet.future_isolation': 'strict' }), /unknown option ledgernet\.future_isolation/);
  });

  it('a snapshot whose state holds such a network refuses the start by network and key (its event no longer read)', async () => {
    const dir = await stateDir(2);
    const path = join(dir, SNAPSHOT_FILE);
    const text = await readFile(path, 'utf8');
    const json = text.slice(0, text.indexOf('\nsha256:'));
    const future = json.replace('"options":{}', '"options":{"ledgernet.future_isolation":"strict"}');
    assert.notEqual(future, json);
    const { hash } = await import('node:crypto');
    await writeFile(path, `${future}\nsha256:${hash('sha256', future)}\n`);
    const what = (e: DriverError) =>
      e.code === 'LN_ERR_LOG_NEWER' && e.message.includes(`${path} was written by a newer ledgernet (network ${net(0)} with option ledgernet.future_isolation`) && !/backup/.test(e.message);
    await assert.rejects(openStore(dir, { host: 'h' }), what);
    await assert.rejects(loadState(dir), what);
  });
});

/** A state dir with 4 events: a pool 10.77.0.0/24, its gateway, a network, 10.77.0.9 handed out; a snapshot at close. */
async function ipamDir(): Promise<{ dir: string; poolId: string }> {
  const dir = join(root, `i${n++}`);
  const { store } = await openStore(dir, { host: 'h' });
  const [pool] = await store.execute(
    { type: 'RequestPool', request: { pool: '10.77.0.0/24', subPool: null, v6: false, defaults: { range: '10.231.0.0/16', size: 24 }, occupied: [] } },
    byLedgernet('test'),
  );
  const poolId = (pool!.data as { poolId: string }).poolId;
  await store.execute({ type: 'RequestAddress', poolId, address: '10.77.0.1', gateway: true, name: null }, byLedgernet('test'));
  await store.execute({ type: 'CreateNetwork', spec: networkSpec(net(0), '10.77.0.0/24', '10.77.0.1/24') }, byLedgernet('test'));
  await store.execute({ type: 'RequestAddress', poolId, address: '10.77.0.9', gateway: false, name: null }, byLedgernet('test'));
  await store.close();
  return { dir, poolId };
}

/** The snapshot as a version before the checksum wrote it (no checksum line), optionally changed. */
async function oldSnapshot(dir: string, change?: (json: string) => string): Promise<void> {
  const path = join(dir, SNAPSHOT_FILE);
  const text = await readFile(path, 'utf8');
  const json = text.slice(0, text.indexOf('\nsha256:'));
  const changed = change ? change(json) : json;
  assert.equal(changed.length, json.length);
  if (change) assert.notEqual(changed, json);
  await writeFile(path, changed);
}

const verify = (dir: string) => runCli(['events', 'verify', '--state-dir', dir], { isolated: true, env: { LEDGERNET_RUN_DIR: runDir } });
const held = (st: { pools: Record<string, unknown> }, poolId: string) => canonicalJson(st.pools[poolId]);

describe('a snapshot without checksum (written by a version before the checksum)', () => {
  it('one changed byte of its state: ignored (full replay, a warning naming it), events verify fails naming it, the next stop seals the right state', async () => {
    const { dir, poolId } = await ipamDir();
    const truth = await loadState(dir);
    assert.match(held(truth, poolId), /"10\.77\.0\.9"/);
    await oldSnapshot(dir, (json) => json.replace('"10.77.0.9"', '"10.77.0.8"'));
    const path = join(dir, SNAPSHOT_FILE);
    const v = await verify(dir);
    assert.equal(v.exitCode, 1, v.stdout);
    assert.ok(v.stderr.includes(`the snapshot ${path} has no checksum`) && /differs from the one events 1 to 4 give/.test(v.stderr), v.stderr);
    assert.deepEqual(held(await loadState(dir), poolId), held(truth, poolId));
    const opened = await openStore(dir, { host: 'h' });
    assert.ok(opened.warnings.some((w) => w.includes(`the snapshot ${path} has no checksum`) && /differs .* it is ignored and the state is rebuilt from every event/.test(w)), opened.warnings.join('\n'));
    assert.equal(opened.fromSnapshotSeq, 0);
    assert.deepEqual(held(opened.state, poolId), held(truth, poolId));
    // The address the log holds is not handed out again.
    await assert.rejects(opened.store.execute({ type: 'RequestAddress', poolId, address: '10.77.0.9', gateway: false, name: null }, byLedgernet('test')), /10\.77\.0\.9/);
    await opened.store.close();
    assert.match(await readFile(path, 'utf8'), /\nsha256:[0-9a-f]{64}\n$/);
    assert.deepEqual(held(await loadState(dir), poolId), held(truth, poolId));
    const again = await verify(dir);
    assert.equal(again.exitCode, 0, again.stderr);
  });

  it('intact: loads with no warning (compared with its events), events verify says so', async () => {
    const { dir, poolId } = await ipamDir();
    const truth = await loadState(dir);
    await oldSnapshot(dir);
    const v = await verify(dir);
    assert.equal(v.exitCode, 0, v.stderr);
    assert.match(v.stdout, /snapshot at seq 4 matches \(it has no checksum: compared with events 1 to 4\)/);
    const opened = await openStore(dir, { host: 'h' });
    assert.deepEqual(opened.warnings, []);
    assert.deepEqual(held(opened.state, poolId), held(truth, poolId));
    await opened.store.close();
  });

  it('the events it covers archived and removed: loaded, with a warning that it is unchecked (start and events verify)', async () => {
    const { dir, poolId } = await ipamDir();
    const opened = await openStore(dir, { host: 'h' });
    const done = await opened.store.archive(byLedgernet('test'));
    assert.ok(done);
    await opened.store.close();
    for (const f of await readdir(join(dir, 'archive'))) await unlink(join(dir, 'archive', f));
    const truth = await loadState(dir);
    await oldSnapshot(dir);
    const path = join(dir, SNAPSHOT_FILE);
    const again = await openStore(dir, { host: 'h' });
    assert.ok(again.warnings.some((w) => w.includes(`the snapshot ${path} (events up to 5) has no checksum`) && /events 1 to 4 are no longer here .* used UNCHECKED/.test(w)), again.warnings.join('\n'));
    assert.equal(again.fromSnapshotSeq, 5);
    assert.deepEqual(held(again.state, poolId), held(truth, poolId));
    await again.store.close();
    const v = await verify(dir);
    assert.equal(v.exitCode, 0, v.stderr);
    assert.match(v.stdout, /snapshot at seq 5 matches but is UNCHECKED \(it has no checksum and events 1 to 4 are no longer here/);
  });

  it('one whose events the log lost is still refused (the start does not go back in time)', async () => {
    const { dir } = await ipamDir();
    await oldSnapshot(dir);
    const { frames } = unframe(await readFile(join(dir, LOG_FILE)));
    await writeFile(join(dir, LOG_FILE), (await readFile(join(dir, LOG_FILE))).subarray(0, frames[3]!.offset));
    const covers = (e: DriverError) => e.code === 'LN_ERR_LOG_CORRUPT' && /covers events up to seq 4/.test(e.message);
    await assert.rejects(openStore(dir, { host: 'h' }), covers);
    await assert.rejects(loadState(dir), covers);
  });
});
