// A long replay checks checksums and stored-bytes hashes on a second thread (check-thread.ts).
// Over a log long enough to start it (in shared memory, as a start reads it), damage far into
// the log, where the thread is ahead of the main thread, gets exactly the full scan's verdict.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import { CHECKER_MIN_BYTES, sharedBuffer, startChecker, type Checker } from '../../../src/events/log/check-thread.ts';
import { frame, HEADER_BYTES } from '../../../src/events/log/framing.ts';
import { sealEvent } from '../../../src/events/log/hash.ts';
import { scanLog } from '../../../src/events/log/read.ts';
import { GENESIS_HASH, type StoredEvent } from '../../../src/events/domain/types.ts';

/** A log of canonical records just over the checker's threshold, and where each record starts. */
function bigLog(): { image: Buffer; starts: number[]; events: StoredEvent[] } {
  const frames: Buffer[] = [];
  const events: StoredEvent[] = [];
  const starts = [0];
  let prev = GENESIS_HASH;
  for (let seq = 1; (starts.at(-1) ?? 0) < CHECKER_MIN_BYTES + 1_000_000; seq++) {
    const id = seq.toString(16).padStart(64, '0');
    const base = { seq, id: `h:${seq}`, host: 'h', type: 'network.deleted', v: 1, at: '2026-11-30T00:00:00.000Z', data: { networkId: id }, prevhash: prev };
    const { hash, payload } = sealEvent(base as Omit<StoredEvent, 'hash'>);
    const f = frame(payload);
    frames.push(f);
    events.push({ ...base, hash } as StoredEvent);
    starts.push((starts.at(-1) ?? 0) + f.length);
    prev = hash;
  }
  const image = sharedBuffer(starts.at(-1) ?? 0);
  Buffer.concat(frames).copy(image);
  return { image, starts, events };
}

const { image, starts, events } = bigLog();
const far = Math.floor(events.length * 0.8);

/** Waits until the checker has passed frame n, or has stopped short of it (it then stays put). */
async function until(c: Checker, n: number): Promise<void> {
  let last = -1;
  for (let k = 0, seen = 0; ; k++) {
    await new Promise((r) => setTimeout(r, 50));
    if (c.checked(n)) return;
    let lo = 0;
    while (c.checked(lo)) lo++;
    if (lo === last && ++seen > 10) return; // stopped
    if (lo !== last) seen = 0;
    last = lo;
    assert.ok(k < 1200, 'the checker keeps going');
  }
}

/**
 * The 'stored' scan and the full one, on a copy of the image changed by `change`; the stored
 * scan's checker has run as far as it goes before the scan starts, so the frames it passed are
 * read the checked way.
 */
async function both(change: (b: Buffer) => Buffer) {
  const b = change(sharedBuffer(image.length).fill(image));
  assert.ok(b.buffer instanceof SharedArrayBuffer);
  const checker = startChecker(b);
  assert.ok(checker);
  await until(checker, events.length - 1);
  return { stored: scanLog(b, undefined, 0, { rehash: 'stored', keep: 2, checker }), full: scanLog(b, undefined, 0, { rehash: true, keep: 2 }) };
}

/** Replaces record k's payload by `payload` (any bytes) under a matching checksum. */
function withPayload(b: Buffer, k: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(HEADER_BYTES);
  head.writeUInt32BE(payload.length, 0);
  head.writeUInt32BE(crc32(payload), 4);
  const out = Buffer.concat([b.subarray(0, starts[k]), head, payload, b.subarray(starts[k + 1])]);
  return sharedBuffer(out.length).fill(out);
}

describe('the checker thread of a long replay', () => {
  it('runs ahead of the main thread over a long log and passes every intact record', async () => {
    const c = startChecker(image);
    assert.ok(c, 'a checker starts over a long log in shared memory');
    try {
      const t0 = Date.now();
      while (!c.checked(events.length - 1) && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 20));
      assert.ok(c.checked(events.length - 1), 'every record passed');
      assert.ok(!c.checked(events.length), 'and no more');
    } finally {
      c.stop();
    }
    assert.equal(startChecker(Buffer.from(image)), null, 'no checker over a buffer that is not shared');
  });

  it('an intact log reads the same, and damage far into it gets the full scan\'s verdict', async () => {
    const body = (b: Buffer, k: number) => Buffer.from(b.subarray((starts[k] ?? 0) + HEADER_BYTES, starts[k + 1]));
    const cases: [string, (b: Buffer) => Buffer, string][] = [
      ['intact', (b) => b, 'clean'],
      // A payload byte changed under a recomputed checksum: only the hash can tell.
      ['altered payload', (b) => { const p = body(b, far); p[40] = (p[40] as number) ^ 1; return withPayload(b, far, p); }, 'corrupt'],
      ['altered hash field', (b) => { const p = body(b, far); const at = p.lastIndexOf(',"hash":"') + 12; p[at] = p[at] === 0x30 ? 0x31 : 0x30; return withPayload(b, far, p); }, 'corrupt'],
      ['checksum byte', (b) => { b[(starts[far] ?? 0) + 5] = (b[(starts[far] ?? 0) + 5] as number) ^ 0xff; return b; }, 'corrupt'],
      // The same event in another key order (an older writer): read, the full way.
      ['older key order', (b) => withPayload(b, far, Buffer.from(JSON.stringify(events[far]))), 'clean'],
      ['cut in the last record', (b) => b.subarray(0, (starts.at(-2) ?? 0) + 20), 'torn'],
    ];
    for (const [what, change, kind] of cases) {
      const { stored, full } = await both(change);
      assert.equal(full.end.kind, kind, what);
      assert.deepEqual(stored.end, full.end, what);
      assert.equal(stored.count, full.count, what);
      assert.deepEqual(stored.events.map((e) => e.hash), full.events.map((e) => e.hash), what);
      if (kind === 'corrupt') assert.equal(stored.end.kind === 'corrupt' && stored.end.offset, starts[far], `${what}: names the record`);
    }
  });
});
