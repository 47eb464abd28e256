// A start's replay checks each record's hash over its stored bytes (rehash 'stored') instead of
// serialising the parsed event again. These tests hold it to the full check: records are written
// in canonical form; for every byte of a log whose checksums are recomputed after the change (so
// only the hash can catch it) the 'stored' scan gives exactly the verdict of the full one; and
// records in another key order (older versions) still read.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import { frame, HEADER_BYTES } from '../../../src/events/log/framing.ts';
import { canonicalJson, eventHash, hashFieldIs, sealEvent, storedBytesMatch } from '../../../src/events/log/hash.ts';
import { EventLog } from '../../../src/events/log/log.ts';
import { LOG_FILE, scanLog } from '../../../src/events/log/read.ts';
import type { NewEvent, StoredEvent } from '../../../src/events/domain/types.ts';
import { endpointSpec, networkSpec } from '../../helpers/events.ts';

const NET = 'c'.repeat(64);
let root: string;
let image: Buffer;
let written: StoredEvent[];
let starts: number[];

/** Records of several shapes: nested data, a key `hash` inside data, non-ASCII text, nulls. */
function events(): NewEvent[] {
  const spec = { ...networkSpec(NET, '10.9.0.0/24', '10.9.0.1/24'), options: { 'com.example.hash': 'x', 'com.example.note': 'grüße "quoted" \\ ✓' } };
  return [
    { type: 'network.created', data: spec },
    { type: 'endpoint.created', data: endpointSpec(NET, 'e'.repeat(64), '10.9.0.2/24') },
    { type: 'endpoint.joined', data: { networkId: NET, endpointId: 'e'.repeat(64), sandboxKey: '/var/run/docker/netns/hash' } },
    { type: 'endpoint.deleted', data: { networkId: NET, endpointId: 'e'.repeat(64) } },
    { type: 'network.deleted', data: { networkId: NET } },
  ] as NewEvent[];
}

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ln-stored-hash-'));
  const { log } = await EventLog.open(root, { host: 'h' });
  const r = log.append(events());
  await r.durable;
  written = r.stored;
  await log.close();
  image = await readFile(join(root, LOG_FILE));
  starts = [0];
  while ((starts.at(-1) ?? 0) < image.length) starts.push((starts.at(-1) ?? 0) + HEADER_BYTES + image.readUInt32BE(starts.at(-1) ?? 0));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const body = (buf: Buffer, k: number) => buf.subarray((starts[k] ?? 0) + HEADER_BYTES, starts[k + 1]);

describe('records in canonical form', () => {
  it('a record is the canonical JSON of the stored event, and its hash is eventHash', () => {
    assert.equal(written.length, 5);
    written.forEach((ev, k) => {
      assert.equal(body(image, k).toString('utf8'), canonicalJson(ev), `record ${k + 1}`);
      assert.equal(eventHash(ev), ev.hash);
      assert.ok(storedBytesMatch(body(image, k), ev.hash), `record ${k + 1}: the stored-bytes check passes`);
    });
    const { hash, payload } = sealEvent({ seq: 1, id: 'h:1', host: 'h', type: 'network.deleted', v: 1, at: 'now', data: { networkId: NET }, prevhash: '0' });
    assert.equal(payload, canonicalJson({ ...JSON.parse(payload), hash }));
    // What the checker thread's verdict is joined with: the hash field read is the one parsed.
    assert.ok(hashFieldIs(payload, hash));
    assert.ok(!hashFieldIs(payload, hash.replace(/^./, (c) => (c === '0' ? '1' : '0'))));
    assert.ok(!hashFieldIs(payload, hash.slice(1)));
    assert.ok(!hashFieldIs(payload, null));
  });

  it('every byte changed, the checksum recomputed: the stored-bytes scan gives the full scan\'s verdict', (t) => {
    let cases = 0;
    let refused = 0;
    for (let k = 0; k < written.length; k++) {
      const b = Buffer.from(body(image, k));
      for (let i = 0; i < b.length; i++) {
        const orig = b[i] as number;
        for (const v of [orig ^ 0x01, orig ^ 0x20, 0x30]) {
          if (v === orig) continue;
          b[i] = v;
          // Only the payload changed; its frame's checksum is made to match, so framing passes.
          const refr = Buffer.concat([image.subarray(0, starts[k]), reframe(b), image.subarray(starts[k + 1])]);
          const full = scanLog(refr, undefined, 0, { rehash: true });
          const stored = scanLog(refr, undefined, 0, { rehash: 'stored' });
          assert.deepEqual(stored.end, full.end, `record ${k + 1} byte ${i} ${orig}->${v}`);
          assert.deepEqual(stored.events.map((e) => e.hash), full.events.map((e) => e.hash));
          if (full.end.kind === 'corrupt') refused++;
          cases++;
        }
        b[i] = orig;
      }
    }
    assert.equal(refused, cases, 'each change is refused');
    t.diagnostic(`${cases} changed bytes under a recomputed checksum: all refused by both scans, with the same offset and reason`);
  });

  it('records written in another key order (older versions) pass the full check', () => {
    const old = Buffer.concat(written.map((ev) => frame(JSON.stringify(ev))));
    assert.ok(!storedBytesMatch(old.subarray(HEADER_BYTES, HEADER_BYTES + old.readUInt32BE(0)), written[0]?.hash ?? ''));
    const r = scanLog(old, undefined, 0, { rehash: 'stored' });
    assert.equal(r.end.kind, 'clean');
    assert.deepEqual(r.events, written);
  });
});

/** A frame around these exact bytes (frame() takes text; a changed byte may not be UTF-8). */
function reframe(payload: Buffer): Buffer {
  const head = Buffer.alloc(HEADER_BYTES);
  head.writeUInt32BE(payload.length, 0);
  head.writeUInt32BE(crc32(payload), 4);
  return Buffer.concat([head, payload]);
}
