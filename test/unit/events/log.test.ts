import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, truncate, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DriverError } from '../../../src/errors.ts';
import { frame, unframe } from '../../../src/events/log/framing.ts';
import { EventLog } from '../../../src/events/log/log.ts';
import { LOG_FILE, LOG_START, readLog, readLogPart } from '../../../src/events/log/read.ts';
import { acquireLock } from '../../../src/events/log/lock.ts';
import { NET_A, networkSpec } from '../../helpers/events.ts';

let root: string;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ln-log-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function freshDir(name: string): Promise<string> {
  return join(root, name);
}

async function writeEvents(dir: string, n: number): Promise<void> {
  const { log } = await EventLog.open(dir, { host: 'h' });
  for (let i = 0; i < n; i++) {
    await log.append([{ type: 'network.deleted', data: { networkId: `${i}`.padStart(64, '0') } }]).durable;
  }
  await log.close();
}

describe('framing', () => {
  it('round-trips records', () => {
    const buf = Buffer.concat([frame('{"a":1}'), frame('{"b":2}')]);
    const r = unframe(buf);
    assert.deepEqual(r.frames.map((f) => f.payload), ['{"a":1}', '{"b":2}']);
    assert.equal(r.end.kind, 'clean');
  });
  it('calls a half-written last record a torn tail', () => {
    const full = Buffer.concat([frame('{"a":1}'), frame('{"b":2}')]);
    const r = unframe(full.subarray(0, full.length - 3));
    assert.equal(r.frames.length, 1);
    assert.equal(r.end.kind, 'torn');
  });
  it('calls a bad record followed by good ones corruption', () => {
    const a = frame('{"a":1}');
    a[10] = 0x58; // flip a payload byte
    const r = unframe(Buffer.concat([a, frame('{"b":2}')]));
    assert.equal(r.end.kind, 'corrupt');
    assert.equal(r.end.kind === 'corrupt' && r.end.offset, 0);
  });
});

describe('reading the log in parts (the audit publisher)', () => {
  it('reads every event once, in order, each part from where the last stopped', async () => {
    const dir = await freshDir('parts');
    await writeEvents(dir, 25);
    const all = (await readLog(dir)).events;
    const seen: number[] = [];
    let pos = LOG_START;
    for (;;) {
      const part = await readLogPart(dir, pos, 10);
      if (part.events.length === 0) break;
      assert.ok(part.events.length <= 10);
      seen.push(...part.events.map((e) => e.seq));
      assert.deepEqual(part.events, all.filter((e) => e.seq > pos.seq && e.seq <= part.next.seq));
      pos = part.next;
    }
    assert.deepEqual(seen, all.map((e) => e.seq));
  });

  it('a position that does not line up with the file (the log was replaced) starts over at seq 1', async () => {
    const dir = await freshDir('parts-moved');
    await writeEvents(dir, 5);
    const part = await readLogPart(dir, { offset: 40, seq: 3, hash: 'f'.repeat(64), recordOffset: 10 }, 10);
    assert.deepEqual(part.events.map((e) => e.seq), [1, 2, 3, 4, 5]);
  });
});

describe('event log', () => {
  it('appends, chains hashes and replays', async () => {
    const dir = await freshDir('replay');
    await writeEvents(dir, 3);
    const { log, events, repaired } = await EventLog.open(dir, { host: 'h' });
    await log.close();
    assert.equal(repaired, null);
    assert.deepEqual(events.map((e) => e.seq), [1, 2, 3]);
    assert.deepEqual(events.map((e) => e.id), ['h:1', 'h:2', 'h:3']);
    assert.equal(events[1]?.prevhash, events[0]?.hash);
    assert.equal(events[2]?.prevhash, events[1]?.hash);
  });

  it('an event over the record limit (16 MiB) is refused before it is stamped; the log goes on and opens again', async () => {
    const dir = await freshDir('huge');
    await writeEvents(dir, 2);
    const { log } = await EventLog.open(dir, { host: 'h' });
    const huge = { type: 'network.deleted', data: { networkId: 'x'.repeat(17 * 1024 * 1024) } } as const;
    assert.throws(() => log.append([huge]), /event network\.deleted would be \d+ bytes, more than the log's 16777216 per record; nothing was recorded/);
    const [next] = log.append([{ type: 'network.deleted', data: { networkId: '9'.repeat(64) } }]).stored;
    assert.equal(next?.seq, 3, 'the refused event took no seq');
    await log.close();
    const again = await EventLog.open(dir, { host: 'h' });
    await again.log.close();
    assert.deepEqual(again.events.map((e) => e.seq), [1, 2, 3]);
    assert.equal(again.events[2]?.prevhash, again.events[1]?.hash);
  });

  it('shares one fsync among concurrent appends and keeps their order', async () => {
    const dir = await freshDir('group');
    let flushes = 0;
    const { log } = await EventLog.open(dir, { host: 'h', onFlush: () => flushes++ });
    const results = Array.from({ length: 50 }, (_, i) =>
      log.append([{ type: 'network.created', data: networkSpec(`${i}`.padStart(64, 'f')) }]),
    );
    await Promise.all(results.map((r) => r.durable));
    await log.close();
    assert.ok(flushes < 50, `expected grouped fsyncs, got ${flushes} for 50 appends`);
    const { events } = await readLog(dir);
    assert.deepEqual(events.map((e) => e.seq), Array.from({ length: 50 }, (_, i) => i + 1));
  });

  it('repairs a torn tail by truncating to the last good record', async () => {
    const dir = await freshDir('torn');
    await writeEvents(dir, 3);
    const path = join(dir, LOG_FILE);
    const good = (await stat(path)).size;
    await appendFile(path, frame(JSON.stringify({ partial: true })).subarray(0, 11));
    const { log, events, repaired } = await EventLog.open(dir, { host: 'h' });
    assert.equal(events.length, 3);
    assert.deepEqual(repaired, { offset: good, bytes: 11, keptAs: join(dir, `${LOG_FILE}.torn-${good}`) });
    assert.equal((await stat(path)).size, good);
    assert.deepEqual(await readFile(repaired.keptAs), frame(JSON.stringify({ partial: true })).subarray(0, 11), 'the cut bytes are kept aside');
    // appends continue the chain after the repair
    const { stored, durable } = log.append([{ type: 'network.deleted', data: { networkId: NET_A } }]);
    await durable;
    await log.close();
    assert.equal(stored[0]?.seq, 4);
    assert.equal((await readLog(dir)).events.length, 4);
  });

  it('refuses to open a log corrupted before its end and names the offset', async () => {
    const dir = await freshDir('corrupt');
    await writeEvents(dir, 3);
    const path = join(dir, LOG_FILE);
    const buf = await readFile(path);
    const firstLen = buf.readUInt32BE(0);
    const at = 8 + Math.floor(firstLen / 2);
    buf[at] = (buf[at] ?? 0) ^ 0xff; // damage record 1 of 3
    await writeFile(path, buf);
    await assert.rejects(
      EventLog.open(dir, { host: 'h' }),
      (e: DriverError) => e.code === 'LN_ERR_LOG_CORRUPT' && /offset 0\b/.test(e.message),
    );
    await assert.rejects(readLog(dir), (e: DriverError) => e.code === 'LN_ERR_LOG_CORRUPT');
    assert.equal((await readFile(path)).length, buf.length, 'a corrupt log must not be truncated');
  });

  it('detects an altered event whose checksum was recomputed (hash chain)', async () => {
    const dir = await freshDir('altered');
    await writeEvents(dir, 2);
    const path = join(dir, LOG_FILE);
    const buf = await readFile(path);
    const len = buf.readUInt32BE(0);
    const first = JSON.parse(buf.subarray(8, 8 + len).toString('utf8')) as { data: { networkId: string } };
    first.data.networkId = 'f'.repeat(64);
    const rest = buf.subarray(8 + len);
    await writeFile(path, Buffer.concat([frame(JSON.stringify(first)), rest]));
    await assert.rejects(readLog(dir), (e: DriverError) => e.code === 'LN_ERR_LOG_CORRUPT' && /altered/.test(e.message));
  });

  it('an empty or missing log replays to nothing', async () => {
    const dir = await freshDir('empty');
    assert.deepEqual((await readLog(dir)).events, []);
    await truncate(join(root, 'x'), 0).catch(() => undefined);
  });
});

describe('state directory lock', () => {
  it('creates a state directory that does not exist yet (a fresh machine)', async () => {
    const dir = join(root, 'fresh', 'nested', 'state');
    const release = await acquireLock(dir);
    assert.equal((JSON.parse(await readFile(join(dir, 'lock'), 'utf8')) as { pid: number }).pid, process.pid);
    await release();
  });

  it('refuses a second holder, names its pid, and is free again once released', async () => {
    const dir = await freshDir('lock');
    const release = await acquireLock(dir);
    await assert.rejects(acquireLock(dir), (e: DriverError) => e.code === 'LN_ERR_LOCKED' && new RegExp(`pid ${process.pid}\\b`).test(e.message));
    await release();
    const again = await acquireLock(dir);
    await again();
  });

  it('a lock file left by a dead process (kill -9) does not block: the lock died with it', async () => {
    const dir = await freshDir('stale');
    await acquireLock(join(dir)).then((r) => r());
    await writeFile(join(dir, 'lock'), '{"pid":999999999}\n');
    const release = await acquireLock(dir);
    assert.equal((JSON.parse(await readFile(join(dir, 'lock'), 'utf8')) as { pid: number }).pid, process.pid);
    await release();
  });

  it('another process holding the lock is refused', async () => {
    const { execa } = await import('execa');
    const dir = await freshDir('other');
    const holder = execa(process.execPath, ['--import', 'tsx', '-e', `import('${join(process.cwd(), 'src/events/log/lock.ts')}').then(async (m) => { await m.acquireLock(${JSON.stringify(dir)}); console.log('held'); setTimeout(() => {}, 60000); })`], { reject: false });
    await new Promise<void>((resolve) => holder.stdout?.on('data', (d: Buffer) => d.toString().includes('held') && resolve()));
    await assert.rejects(acquireLock(dir), (e: DriverError) => e.code === 'LN_ERR_LOCKED' && new RegExp(`pid ${holder.pid}\\b`).test(e.message));
    holder.kill('SIGKILL');
    await holder;
    const release = await acquireLock(dir);
    await release();
  });
});

describe('a full disk', () => {
  it('a write that does not fit is refused, never acknowledged, and the log stays readable', async () => {
    const { execa } = await import('execa');
    const dir = await freshDir('full');
    const script = join(process.cwd(), 'test', 'helpers', 'append-until-full.ts');
    // 16 blocks of 512 bytes: the file may not grow past 8 KiB.
    const r = await execa('bash', ['-c', `ulimit -f 16; exec "${process.execPath}" --import tsx "${script}" "${dir}"`], { reject: false });
    const out = JSON.parse(r.stdout) as { acked: number; error: string };
    assert.ok(out.acked > 0 && out.acked < 200, `some appends fit, then the log refused: ${r.stdout} ${r.stderr}`);
    assert.match(out.error, /writing the event log .*events\.log failed: EFBIG/);
    const { events, end } = await readLog(dir);
    assert.equal(end.kind, 'clean', 'no partial record is left behind');
    assert.equal(events.length, out.acked, 'every acknowledged event is in the log, and nothing else');
  });
});
