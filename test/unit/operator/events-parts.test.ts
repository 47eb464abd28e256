// `ledgernet events` reads the log in parts (readLogParts), twice, instead of holding it whole:
// its output must be what the whole-array reading printed (readLog, then the filter over every
// event), byte for byte, for every query, also from an archived start (the stderr notes, the
// snapshot's facts) and with no match (exit 1, its message); damage is refused with readLog's
// error before anything is printed; a part holds a bounded number of events whatever the log's
// length, and the output waits for its reader (backpressure) instead of piling up.
import assert from 'node:assert/strict';
import { appendFile, cp, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { byLedgernet, EventLog, LOG_START, namesFrom, openStore, readLog, readLogParts, readSnapshot } from '../../../src/events/index.ts';
import { describeQuery, EndpointFacts, eventFilter, fromSince, parseSince, type EventQuery } from '../../../src/events/domain/event-filters.ts';
import { describeUnknown, seedFromState, unknownBefore } from '../../../src/events/domain/archived-facts.ts';
import { ARCHIVE_DIR } from '../../../src/events/log/archive.ts';
import { eventLine, runEvents } from '../../../src/operator/commands.ts';
import type { NewEvent, StoredEvent } from '../../../src/events/domain/types.ts';

const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');
const netId = (i: number) => `ab${hex(i, 62)}`;
const NETS = 12;
const LONG = 4;

/** A busy host's events: containers with a published port coming and going, networks renamed now and then. */
function cycle(c: number): NewEvent[] {
  const i = c % NETS;
  const net = netId(i);
  const ep = `e${hex(c, 63)}`;
  const a = `10.77.${i}.${2 + (c % 250)}`;
  const pool = `LN-${net.slice(0, 12)}`;
  const acts = [`veth.add ln${ep.slice(0, 10)}`, `addr.add ${a}/24`];
  return [
    { type: 'address.requested', data: { poolId: pool, address: `${a}/24`, kind: 'endpoint' } },
    { type: 'endpoint.created', data: { networkId: net, endpointId: ep, veth: `ln${ep.slice(0, 10)}`, peer: `lp${ep.slice(0, 10)}`, address: `${a}/24`, addressV6: null, mac: null } },
    { type: 'endpoint.joined', data: { networkId: net, endpointId: ep, sandboxKey: `/var/run/docker/netns/${hex(c, 12)}` } },
    { type: 'endpoint.named', data: { networkId: net, endpointId: ep, containerId: `c${hex(c, 63)}`, name: `job-${c}` } },
    { type: 'endpoint.external.programmed', data: { networkId: net, endpointId: ep, portmap: [{ proto: 'tcp', port: 80, hostIp: '127.0.0.1', hostPort: 20000 + c }] } },
    { type: 'reconcile.applied', data: { trigger: 'api', actions: acts, failures: [] } },
    { type: 'endpoint.left', data: { networkId: net, endpointId: ep } },
    { type: 'endpoint.deleted', data: { networkId: net, endpointId: ep } },
    { type: 'address.released', data: { poolId: pool, address: a } },
    ...(c % 50 === 49 ? [{ type: 'network.named', data: { networkId: net, name: `net-${i}-r${c}` } } as NewEvent] : []),
  ] as NewEvent[];
}

/** Containers that live through the whole log (their endpoints begin in what gets archived). */
function longLived(end: boolean): NewEvent[] {
  return Array.from({ length: LONG }, (_, k) => {
    const net = netId(k);
    const ep = `f${hex(k, 63)}`;
    return end
      ? [{ type: 'endpoint.deleted', data: { networkId: net, endpointId: ep } }]
      : [
          { type: 'endpoint.created', data: { networkId: net, endpointId: ep, veth: `ln${ep.slice(0, 10)}`, peer: `lp${ep.slice(0, 10)}`, address: `10.77.${k}.254/24`, addressV6: null, mac: null } },
          { type: 'endpoint.named', data: { networkId: net, endpointId: ep, containerId: `d${hex(k, 63)}`, name: `db-${k}` } },
        ];
  }).flat() as NewEvent[];
}

async function append(dir: string, events: NewEvent[]): Promise<void> {
  const { log } = await EventLog.open(dir, { host: 'h' });
  for (let i = 0; i < events.length; i += 2000) await log.append(events.slice(i, i + 2000), byLedgernet('test')).durable;
  await log.close();
}

function networks(): NewEvent[] {
  return Array.from({ length: NETS }, (_, i) => [
    { type: 'network.created', data: { networkId: netId(i), bridge: `ln-${netId(i).slice(0, 12)}`, mtu: 1500, internal: false, ipv6: false, ipv4Data: [{ pool: `10.77.${i}.0/24`, gateway: `10.77.${i}.1/24`, aux: {} }], ipv6Data: [], options: {} } },
    { type: 'network.named', data: { networkId: netId(i), name: `net-${i}` } },
  ]).flat() as NewEvent[];
}

const cycles = (from: number, to: number) => Array.from({ length: to - from }, (_, k) => cycle(from + k)).flat();

class Sink extends Writable {
  text = '';
  maxWrite = 0;
  maxBuffered = 0;
  constructor(slow = false) {
    super({
      highWaterMark: 1024,
      write: (chunk: Buffer, _enc, done) => {
        this.text += chunk.toString();
        if (slow) setImmediate(done);
        else done();
      },
    });
  }
  override write(chunk: unknown, ...rest: never[]): boolean {
    const n = String(chunk).length;
    this.maxWrite = Math.max(this.maxWrite, n);
    this.maxBuffered = Math.max(this.maxBuffered, this.writableLength + n);
    return super.write(chunk, ...rest);
  }
}

type Query = EventQuery & { since?: string; json: boolean };

async function runNew(dir: string, q: Query, partBytes: number, slow = false): Promise<{ stdout: string; stderr: string; code: number; out: Sink }> {
  const out = new Sink(slow);
  const err = new Sink();
  const code = await runEvents({ stateDir: dir, follow: false, verify: false, ...q, stdout: out, stderr: err, partBytes });
  return { stdout: out.text, stderr: err.text, code, out };
}

/** What `events` printed before it read in parts: the whole log in one array, then the filter over it (the code of before, kept here). */
async function runOld(dir: string, read: Awaited<ReturnType<typeof readLog>>, q: Query): Promise<{ stdout: string; stderr: string; code: number }> {
  let stderr = '';
  const asked = (['network', 'container', 'address', 'since'] as const).filter((k) => q[k] !== undefined);
  const since = parseSince(q.since);
  const selected = eventFilter(q);
  const { events, base } = read;
  if (base.seq > 0) stderr += `ledgernet: events 1 to ${base.seq} were archived and are no longer in ${join(dir, ARCHIVE_DIR)}; from event ${base.seq + 1} on:\n`;
  const names = new Map<string, string>();
  const facts = new EndpointFacts();
  if (base.seq > 0) {
    const snap = await readSnapshot(dir);
    const state = snap && snap.seq >= base.seq ? snap.state : null;
    if (state) seedFromState(state, names, facts);
    const unknown = describeUnknown(unknownBefore(events, state), q, state !== null);
    if (unknown) stderr += `ledgernet: ${unknown}\n`;
  }
  namesFrom(events, names);
  facts.add(events);
  const shown = events.filter((e) => fromSince(e, since) && selected(e, names, facts));
  const stdout = shown.map((e) => (q.json ? `${JSON.stringify(e)}\n` : eventLine(e, names))).join('');
  if (asked.length > 0 && shown.length === 0) {
    const from = since === null ? '' : ` from ${'seq' in since ? `seq ${since.seq}` : since.time} on`;
    const query = asked.some((k) => k !== 'since') ? ` concerns ${describeQuery(q)}` : '';
    return { stdout, stderr: `${stderr}ledgernet: no event in ${join(dir, 'events.log')}${from}${query}\n`, code: 1 };
  }
  return { stdout, stderr, code: 0 };
}

let root: string;
let plain: string; // ~30k events, one file
let archived: string; // archived twice, the oldest archive removed; the snapshot tells of what began in it
let bare: string; // the same without the snapshot
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ln-events-parts-'));
  plain = join(root, 'plain');
  await append(plain, [...networks(), ...longLived(false), ...cycles(0, 3400), ...longLived(true)]);
  archived = join(root, 'archived');
  await append(archived, [...networks(), ...longLived(false), ...cycles(0, 300)]);
  for (const more of [cycles(300, 600), [...cycles(600, 900), ...longLived(true)]]) {
    const { store } = await openStore(archived, { host: 'h' });
    await store.archive(byLedgernet('test'));
    await store.close();
    await append(archived, more);
  }
  const oldest = (await readdir(join(archived, ARCHIVE_DIR))).sort()[0] ?? '';
  await unlink(join(archived, ARCHIVE_DIR, oldest));
  bare = join(root, 'bare');
  await cp(archived, bare, { recursive: true });
  await unlink(join(bare, 'snapshot.json'));
});
after(() => rm(root, { recursive: true, force: true }));

/** A time in the middle of `events` (the events' own), for --since TIME. */
const middleTime = (events: readonly StoredEvent[]) => events[Math.floor(events.length / 2)]?.at ?? '';

function queries(events: readonly StoredEvent[]): Query[] {
  const mid = events[Math.floor(events.length / 2)]?.seq ?? 1;
  return [
    { json: false },
    { json: true },
    { json: false, network: 'net-5' },
    { json: true, network: netId(3) },
    { json: false, network: netId(7).slice(0, 12) },
    { json: false, network: 'net-4-r849' }, // a later name labels and selects every line of its network
    { json: false, container: 'job-777' },
    { json: true, container: `c${hex(777, 63)}` },
    { json: false, container: 'db-2' }, // named in what was archived: the snapshot tells
    { json: false, address: '10.77.2.254' },
    { json: true, address: '10.77.5.7/24' },
    { json: false, since: String(mid) },
    { json: true, since: String(mid), network: 'net-1' },
    { json: false, since: middleTime(events) },
    { json: false, since: middleTime(events), container: 'db-1' },
    { json: false, since: '2099-01-01' }, // none: exit 1
    { json: false, network: 'nope' },
    { json: true, container: 'job-5', address: '10.77.9.9' },
  ];
}

describe('events read in parts', () => {
  it('prints what the whole-array reading printed, byte for byte, for every query, in parts of 4 KiB and of 1 MiB', async () => {
    for (const dir of [plain, archived, bare]) {
      const whole = await readLog(dir, LOG_START, { archives: 'present' });
      if (dir === plain) assert.ok(whole.events.length > 30_000, String(whole.events.length));
      if (dir !== plain) assert.ok(whole.base.seq > 0);
      let matched = 0;
      for (const [n, q] of queries(whole.events).entries()) {
        const want = await runOld(dir, whole, q);
        // Every query in small parts; the 1 MiB default for every third (its reading is one or a few parts).
        for (const partBytes of n % 3 === 0 ? [4096, 1024 * 1024] : [4096]) {
          const got = await runNew(dir, q, partBytes);
          const what = `${dir} ${JSON.stringify(q)} parts of ${partBytes}`;
          assert.equal(got.code, want.code, what);
          assert.equal(got.stderr, want.stderr, what);
          assert.ok(got.stdout === want.stdout, `${what}: ${got.stdout.length} bytes where ${want.stdout.length} were printed before`);
        }
        if (want.stdout !== '') matched++;
      }
      assert.ok(matched >= 8, `${dir}: ${matched}`);
    }
    // The notes an archived start prints were among what was compared.
    const note = (await runNew(bare, { json: false, container: 'db-2' }, 4096)).stderr;
    assert.match(note, /^ledgernet: events 1 to \d+ were archived and are no longer in .*; from event \d+ on:\nledgernet: 4 endpoints \(f00000000000, .*\) began in archived events that are no longer here/);
  });

  it('holds one part at a time: at most as many events as a part of bytes can hold, whatever the log holds', async () => {
    const partBytes = 16 * 1024;
    let parts = 0;
    let most = 0;
    let smallest = Infinity;
    let prev = 0;
    const r = await readLogParts(plain, {
      partBytes,
      each: (events) => {
        parts++;
        most = Math.max(most, events.length);
        assert.equal(events[0]?.seq, prev + 1);
        prev = events.at(-1)?.seq ?? prev;
        for (const e of events) smallest = Math.min(smallest, Buffer.byteLength(JSON.stringify(e)) + 8);
      },
    });
    assert.ok(r.count > 30_000 && prev === r.count, String(r.count));
    assert.ok(parts > 400, String(parts));
    assert.ok(most <= Math.floor(partBytes / smallest), `${most} events in one part of ${partBytes} bytes (records of ${smallest}+ bytes)`);
    // The output goes out part by part and waits for a slow reader: never the whole of it at once.
    const got = await runNew(plain, { json: true }, partBytes, true);
    assert.ok(got.stdout.length > 10_000_000, String(got.stdout.length));
    assert.ok(got.out.maxWrite <= 4 * partBytes && got.out.maxBuffered <= 4 * partBytes + 1024, `${got.out.maxWrite} ${got.out.maxBuffered}`);
  });

  it('refuses a damaged log with readLog\'s error and prints nothing; a torn tail is shown as before', async () => {
    const dir = join(root, 'damaged');
    await cp(plain, dir, { recursive: true });
    const path = join(dir, 'events.log');
    const good = await readFile(path);
    for (const at of [200_000, Math.floor(good.length / 2), good.length - 50]) {
      const bad = Buffer.from(good);
      bad.writeUInt8(bad.readUInt8(at) ^ 0x01, at);
      await writeFile(path, bad);
      const want = await readLog(dir, LOG_START, { archives: 'present' }).then(
        () => assert.fail('readLog took it'),
        (e: Error) => e.message,
      );
      for (const partBytes of [4096, 4099, 65_536]) {
        const out = new Sink();
        await assert.rejects(runEvents({ stateDir: dir, json: false, follow: false, verify: false, network: 'net-1', stdout: out, stderr: new Sink(), partBytes }), { message: want }, `byte ${at}, parts of ${partBytes}`);
        assert.equal(out.text, '');
      }
    }
    // Half a record at the end (a crash mid-write: the first 60 bytes of a record): shown up to it, as before.
    await writeFile(path, good);
    await appendFile(path, good.subarray(0, 60));
    const whole = await readLog(dir, LOG_START, { archives: 'present' });
    assert.equal(whole.end.kind, 'torn');
    const q: Query = { json: false, network: 'net-2' };
    assert.deepEqual(await runNew(dir, q, 4096).then((r) => r.stdout), (await runOld(dir, whole, q)).stdout);
  });

  it('events verify in parts: the same counts and verdicts', async () => {
    const out = new Sink();
    const o = { stateDir: archived, json: false, follow: false, verify: true, stdout: out, stderr: new Sink(), partBytes: 4096 };
    assert.equal(await runEvents(o), 0);
    const whole = await readLog(archived, LOG_START, { archives: 'present' });
    assert.match(out.text, new RegExp(`^ok: ${whole.events.length} events, hash chain intact \\(1 archive file in .*; events 1 to ${whole.base.seq} were archived .*, snapshot at seq \\d+ matches\\n$`));
  });
});
