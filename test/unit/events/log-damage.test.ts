// Finding 1 of issue 9: damage never costs an acknowledged event. A 100-record log is built once;
// every single-byte change of every byte, and every truncation point in its last three records,
// either refuses naming the damaged record's offset, or (a write cut short in the last record
// only) repairs, keeping the cut bytes aside. Acknowledged events are compared with what opens.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DriverError } from '../../../src/errors.ts';
import { frame, HEADER_BYTES } from '../../../src/events/log/framing.ts';
import { EventLog } from '../../../src/events/log/log.ts';
import { LOG_FILE, LOG_START, readLog, scanLog, tornFile, type ScanBase } from '../../../src/events/log/read.ts';
import { loadState, openStore } from '../../../src/events/log/open.ts';
import { SNAPSHOT_FILE } from '../../../src/events/log/snapshot.ts';
import type { StoredEvent } from '../../../src/events/domain/types.ts';
import { networkSpec } from '../../helpers/events.ts';
import { byLedgernet } from '../../../src/events/domain/cause.ts';

const RECORDS = 100;
let root: string;
let image: Buffer; // the log file as written
let written: StoredEvent[]; // every event the log acknowledged (durable)
let starts: number[]; // where each record starts; starts[RECORDS] = file size

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ln-damage-'));
  const dir = join(root, 'source');
  const { log } = await EventLog.open(dir, { host: 'h' });
  written = [];
  for (let i = 0; i < RECORDS; i++) {
    // Two kinds of records of different sizes, so lengths differ from record to record.
    const ev =
      i % 3 === 0
        ? { type: 'network.deleted' as const, data: { networkId: `${i}`.padStart(64, '0') } }
        : { type: 'network.created' as const, data: networkSpec(`${i}`.padStart(64, 'a'), `10.${i}.0.0/24`, `10.${i}.0.1/24`) };
    const r = log.append([ev]);
    await r.durable;
    written.push(...r.stored);
  }
  await log.close();
  image = await readFile(join(dir, LOG_FILE));
  starts = [0];
  for (let i = 0; i < RECORDS; i++) starts.push((starts[i] ?? 0) + HEADER_BYTES + image.readUInt32BE(starts[i] ?? 0));
  assert.equal(starts[RECORDS], image.length);
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Index of the record holding byte `pos`. */
function recordAt(pos: number): number {
  let k = 0;
  while ((starts[k + 1] ?? Infinity) <= pos) k++;
  return k;
}

/** The position right before record k: what a start from a snapshot of event k would use. */
function baseBefore(k: number): ScanBase {
  if (k === 0) return LOG_START;
  const prev = written[k - 1] as StoredEvent;
  return { offset: starts[k] ?? 0, seq: prev.seq, hash: prev.hash, recordOffset: starts[k - 1] ?? 0 };
}

const seqs = (evs: readonly StoredEvent[]) => evs.map((e) => `${e.seq}:${e.hash}`);

/**
 * Checks the reader's verdict on a damaged image whose first damaged record is k: a refusal must
 * name record k's offset; a repair is allowed only inside the last record present and must keep
 * every acknowledged event (`acked` of them).
 */
function judge(buf: Buffer, k: number, acked: number, what: string): 'refused' | 'repaired' | 'clean' {
  // Records before k are untouched: scan from right before k (the reader's own snapshot start).
  const r = scanLog(buf, baseBefore(k));
  const opened = [...written.slice(0, k), ...r.events];
  if (r.end.kind === 'corrupt') {
    assert.equal(r.end.offset, starts[k], `${what}: refused, but named offset ${r.end.offset}, not record ${k + 1} at ${starts[k]}`);
    return 'refused';
  }
  assert.deepEqual(seqs(opened), seqs(written.slice(0, acked)), `${what}: ${r.end.kind}, and the events opened differ from the acknowledged ones`);
  if (r.end.kind === 'torn') {
    assert.ok(r.end.offset >= (starts[acked] ?? 0), `${what}: repaired at ${r.end.offset}, before the last record`);
    return 'repaired';
  }
  return 'clean';
}

describe('a damaged 100-record log', () => {
  it('every single-byte change of every byte is refused, naming the damaged record', (t) => {
    const buf = Buffer.from(image);
    let cases = 0;
    const verdicts = { refused: 0, repaired: 0, clean: 0 };
    for (let pos = 0; pos < buf.length; pos++) {
      const k = recordAt(pos);
      const orig = buf[pos] as number;
      const inLength = pos - (starts[k] ?? 0) < 4;
      // Every value of a length byte (shorter, longer, impossible); for the checksum and the
      // payload (which the checksum covers whatever the value): a bit flip, all bits, zero.
      const values = inLength ? Array.from({ length: 256 }, (_, v) => v) : [orig ^ 0x01, orig ^ 0xff, 0];
      for (const v of values) {
        if (v === orig) continue;
        buf[pos] = v;
        verdicts[judge(buf, k, RECORDS, `byte ${pos} (record ${k + 1}) ${orig}->${v}`)]++;
        cases++;
      }
      buf[pos] = orig;
    }
    assert.equal(verdicts.refused, cases, `every change is refused: ${JSON.stringify(verdicts)}`);
    assert.ok(cases > 150_000);
    t.diagnostic(`${cases} single-byte changes of a ${buf.length}-byte log: ${JSON.stringify(verdicts)}`);
  });

  it('every truncation point in the last three records repairs, and keeps every complete record', (t) => {
    let cases = 0;
    for (let len = (starts[RECORDS - 3] ?? 0) + 1; len < image.length; len++) {
      const buf = image.subarray(0, len);
      const k = recordAt(len - 1);
      const whole = len === starts[k + 1]; // a cut between records: nothing to repair
      assert.equal(judge(buf, k, whole ? k + 1 : k, `cut at ${len}`), whole ? 'clean' : 'repaired');
      cases++;
    }
    assert.ok(cases > 1000);
    t.diagnostic(`${cases} truncation points`);
  });

  it('on disk: a start repairs a cut last record, keeping the bytes in events.log.torn-<offset>; it refuses damage and cuts nothing', async () => {
    const at = join(root, 'disk');
    // A sample through the real start: cuts every 23 bytes of the last three records, and one
    // change of every 17th byte of the last two records (the rest is covered in memory above).
    const cuts = [];
    for (let len = (starts[RECORDS - 3] ?? 0) + 1; len < image.length; len += 23) cuts.push(len);
    for (const len of cuts) {
      const k = recordAt(len - 1);
      if (len === starts[k + 1]) continue;
      await rm(at, { recursive: true, force: true });
      await mkdir(at, { mode: 0o700 });
      await writeFile(join(at, LOG_FILE), image.subarray(0, len));
      const { log, events, repaired } = await EventLog.open(at, { host: 'h' });
      await log.close();
      assert.deepEqual(seqs(events), seqs(written.slice(0, k)), `cut at ${len}`);
      assert.deepEqual(repaired, { offset: starts[k], bytes: len - (starts[k] ?? 0), keptAs: join(at, tornFile(starts[k] ?? 0)) });
      assert.deepEqual(await readFile(repaired.keptAs), image.subarray(starts[k], len), 'the cut bytes are kept aside');
      assert.equal((await stat(join(at, LOG_FILE))).size, starts[k]);
    }
    for (let pos = starts[RECORDS - 2] ?? 0; pos < image.length; pos += 17) {
      const k = recordAt(pos);
      const buf = Buffer.from(image);
      buf[pos] = (buf[pos] as number) ^ 0xff;
      await rm(at, { recursive: true, force: true });
      await mkdir(at, { mode: 0o700 });
      await writeFile(join(at, LOG_FILE), buf);
      await assert.rejects(
        EventLog.open(at, { host: 'h' }),
        (e: DriverError) => e.code === 'LN_ERR_LOG_CORRUPT' && e.message.includes(`byte offset ${starts[k]} `),
        `byte ${pos}`,
      );
      assert.deepEqual(await readFile(join(at, LOG_FILE)), buf, 'a refused log is not touched');
      assert.deepEqual(await readdir(at), [LOG_FILE], 'nothing kept aside: nothing was cut');
    }
  });
});

describe('zero-filled and odd tails', () => {
  it('zeros after the last record are a torn tail (blocks allocated, never written)', () => {
    for (const n of [1, 7, 8, 9, 4096]) {
      const r = scanLog(Buffer.concat([image, Buffer.alloc(n)]));
      assert.equal(r.end.kind, 'torn', `${n} zeros`);
      assert.equal(r.events.length, RECORDS);
    }
  });

  it('a record cut short by zeros from a sector boundary is torn; zeros that end in a valid record are not', () => {
    const next = frame(JSON.stringify({ any: 'x'.repeat(2000) }));
    const whole = Buffer.concat([image, next]);
    const sector = Math.ceil((image.length + 100) / 512) * 512;
    const zeroed = Buffer.from(whole);
    zeroed.fill(0, sector);
    const r = scanLog(zeroed);
    assert.equal(r.end.kind, 'torn');
    assert.equal(r.events.length, RECORDS);
    const after = Buffer.concat([image, Buffer.alloc(1000), frame('{"later":1}')]);
    const c = scanLog(after);
    assert.equal(c.end.kind, 'corrupt');
    assert.equal(c.end.kind === 'corrupt' && c.end.offset, image.length);
  });

  it('a length field made longer in the middle (the reported case) is refused, not cut', () => {
    const buf = Buffer.from(image);
    const k = 7;
    buf.writeUInt32BE(image.length, starts[k] ?? 0); // runs past the end of the file
    const r = scanLog(buf);
    assert.equal(r.end.kind, 'corrupt');
    assert.equal(r.end.kind === 'corrupt' && r.end.offset, starts[k]);
    assert.match(r.end.kind === 'corrupt' ? r.end.reason : '', /valid checksum follows at offset/);
  });
});

describe('bytes no write of ledgernet made', () => {
  // A cut write leaves a prefix of what was written (or zeros): a header with a possible length
  // and a payload that starts with '{'. Text or random bytes in the log's place are damage: the
  // start refuses them (naming the offset) instead of cutting them as a torn tail and opening an
  // empty or older state.
  const text = Buffer.from('this is not an event log: someone wrote over it\n');
  const noise = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919 + 13) % 251));
  const wrongStart = Buffer.concat([frame('{"a":1}').subarray(0, 4), Buffer.from('\x00\x00\x00\x00xyz')]);
  wrongStart.writeUInt32BE(5000, 0); // a possible length, running past the end, but no '{'
  const cases: [string, Buffer][] = [
    ['a line of text', text],
    ['3,000 bytes of noise', noise],
    ['a possible length whose payload does not start as a record does', wrongStart],
  ];
  for (const [what, bytes] of cases) {
    it(`${what}: in the log's place, or after the last record, is refused`, () => {
      const alone = scanLog(bytes);
      assert.equal(alone.end.kind, 'corrupt', `${what} alone`);
      assert.equal(alone.end.kind === 'corrupt' && alone.end.offset, 0);
      const after = scanLog(Buffer.concat([image, bytes]));
      assert.equal(after.end.kind, 'corrupt', `${what} after the log`);
      assert.equal(after.end.kind === 'corrupt' && after.end.offset, image.length);
      assert.equal(after.events.length, RECORDS);
    });
  }

  it('on disk: a start refuses a log of text and leaves it as it is', async () => {
    const at = join(root, 'text');
    await mkdir(at, { mode: 0o700 });
    await writeFile(join(at, LOG_FILE), text);
    await assert.rejects(EventLog.open(at, { host: 'h' }), (e: DriverError) => e.code === 'LN_ERR_LOG_CORRUPT' && e.message.includes('byte offset 0 '));
    assert.deepEqual(await readFile(join(at, LOG_FILE)), text);
    assert.deepEqual(await readdir(at), [LOG_FILE], 'nothing cut, nothing kept aside');
  });
});

describe('a snapshot the log does not back', () => {
  it('damage after the snapshot is refused naming its offset; damage before it costs nothing at start and verify names it; a log cut under the snapshot is refused', async () => {
    const dir = join(root, 'snap');
    const create = async (from: number, to: number) => {
      const { store } = await openStore(dir, { host: 'h' });
      for (let i = from; i < to; i++) {
        await store.execute({ type: 'CreateNetwork', spec: networkSpec(`${i}`.padEnd(64, 'b'), `10.${i}.0.0/24`, `10.${i}.0.1/24`) }, byLedgernet('test'));
      }
      await store.close();
    };
    await create(0, 12);
    const snap12 = await readFile(join(dir, SNAPSHOT_FILE));
    await create(12, 19);
    const snap19 = await readFile(join(dir, SNAPSHOT_FILE));
    await writeFile(join(dir, SNAPSHOT_FILE), snap12);
    const path = join(dir, LOG_FILE);
    const log = await readFile(path);
    const offsets = [0];
    while ((offsets.at(-1) ?? 0) < log.length) offsets.push((offsets.at(-1) ?? 0) + HEADER_BYTES + log.readUInt32BE(offsets.at(-1) ?? 0));
    const lengthRunsPastEnd = (record: number) => {
      const b = Buffer.from(log);
      b[offsets[record - 1] ?? 0] = 0x7f;
      return b;
    };
    const namesOffset = (off: number) => (e: DriverError) => e.code === 'LN_ERR_LOG_CORRUPT' && e.message.includes(`byte offset ${off} `);

    // Record 15 (after the snapshot at 12) gets a length that runs past the end of the file.
    const after15 = lengthRunsPastEnd(15);
    await writeFile(path, after15);
    await assert.rejects(openStore(dir, { host: 'h' }), namesOffset(offsets[14] ?? -1));
    await assert.rejects(loadState(dir), namesOffset(offsets[14] ?? -1));
    await assert.rejects(readLog(dir), namesOffset(offsets[14] ?? -1));
    assert.deepEqual(await readFile(path), after15, 'nothing was cut');

    // Record 8 (before the snapshot): a start from the snapshot never reads it and loses nothing;
    // a full read (events verify) names it.
    const before8 = lengthRunsPastEnd(8);
    await writeFile(path, before8);
    const { store, state } = await openStore(dir, { host: 'h' });
    await store.close();
    assert.equal(state.seq, 19);
    assert.equal(Object.keys(state.networks).length, 19);
    await assert.rejects(readLog(dir), namesOffset(offsets[7] ?? -1));
    assert.deepEqual(await readFile(path), before8, 'nothing was cut');

    // The log lost its last records (cut inside record 17) while the snapshot covers 19.
    await writeFile(join(dir, SNAPSHOT_FILE), snap19);
    const cut = log.subarray(0, (offsets[16] ?? 0) + 30);
    await writeFile(path, cut);
    const ahead = (e: DriverError) =>
      e.code === 'LN_ERR_LOG_CORRUPT' && /snapshot .* covers events up to seq 19/.test(e.message) && /up to seq 16/.test(e.message);
    await assert.rejects(openStore(dir, { host: 'h' }), ahead);
    await assert.rejects(loadState(dir), ahead);
    assert.deepEqual(await readFile(path), cut, 'nothing was cut');
    assert.ok(!(await readdir(dir)).some((f) => f.includes('torn')), 'nothing was repaired');
  });
});
