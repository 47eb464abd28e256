// The supervisor's HTTP reading under big, split or slow bodies (review of 2026-12-06, finding 4):
// the same call however the bytes are split, a cost linear in the bytes (counted, not timed), the
// worker's body limit and Err applied while reading, and the front's caps on what waits.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { requestError } from '../../../src/api/failure.ts';
import { BODY_LIMIT } from '../../../src/errors.ts';
import { readFrames, sendFrame } from '../../../src/supervisor/frames.ts';
import { front, type Front } from '../../../src/supervisor/front.ts';
import { RequestReader, type ParseResult } from '../../../src/supervisor/http-request.ts';
import { EventEmitter } from 'node:events';
import { openRaw, readToClose } from '../../helpers/raw-client.ts';

const none = () => undefined;
const feed = (r: RequestReader, parts: readonly Buffer[]): ParseResult[] => parts.map((p) => r.push(p, none));
const bytewise = (b: Buffer) => [...b].map((x) => Buffer.from([x]));
const CHUNKED = 'POST /NetworkDriver.Join HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n';
/** `body` as chunks of `size` bytes (a multibyte character may be cut), with an extension and a trailer. */
const chunked = (body: Buffer, size: number) => {
  const parts: Buffer[] = [Buffer.from(CHUNKED)];
  for (let i = 0; i < body.length; i += size) {
    const c = body.subarray(i, i + size);
    parts.push(Buffer.from(`${c.length.toString(16)}${i === 0 ? ';ext=1' : ''}\r\n`), c, Buffer.from('\r\n'));
  }
  parts.push(Buffer.from('0\r\nX-T: v\r\n\r\n'));
  return Buffer.concat(parts);
};
const lengthed = (body: Buffer) => Buffer.concat([Buffer.from(`POST /NetworkDriver.Join HTTP/1.1\r\nContent-Length: ${body.length}\r\n\r\n`), body]);

describe('RequestReader: split anywhere', () => {
  const body = Buffer.from('{"EndpointID":"é€😀","Options":{}}\n');
  for (const [name, wire] of [['Content-Length', lengthed(body)], ['chunked, 3-byte chunks', chunked(body, 3)]] as const) {
    it(`${name}: cut at every byte, or fed one byte at a time, the same call, whole only at its last byte`, () => {
      for (let i = 1; i < wire.length; i++) {
        const r = feed(new RequestReader(1024), [wire.subarray(0, i), wire.subarray(i)]);
        assert.deepEqual(r.map((x) => x.kind), ['more', 'request'], `cut at ${i}`);
        assert.equal(r[1]?.kind === 'request' && r[1].request.body, body.toString(), `cut at ${i}`);
      }
      const one = feed(new RequestReader(1024), bytewise(wire));
      assert.ok(one.slice(0, -1).every((x) => x.kind === 'more'));
      assert.equal(one.at(-1)?.kind === 'request' && one.at(-1)?.kind === 'request' ? (one.at(-1) as { request: { body: string } }).request.body : null, body.toString());
    });
  }
});

describe('RequestReader: cost linear in the bytes received (counted work, not time)', () => {
  /** Work per byte received for a body fed in `pieces`. */
  const workPerByte = (parts: readonly Buffer[]) => {
    const r = new RequestReader(BODY_LIMIT);
    const results = feed(r, parts);
    assert.equal(results.at(-1)?.kind, 'request');
    const bytes = parts.reduce((n, p) => n + p.length, 0);
    return r.work / bytes;
  };
  it('one-byte chunks, each in its own read: never decoded from the start again', () => {
    const small = workPerByte(bytewise(chunked(Buffer.alloc(2_000, 'a'), 1)));
    const large = workPerByte(bytewise(chunked(Buffer.alloc(20_000, 'a'), 1)));
    assert.ok(small < 4 && large < 4, `work per byte received: ${small} (2 kB body), ${large} (20 kB body)`);
    // 10 times the body, at most about 10 times the work: re-reading from the start would be 100 times.
    assert.ok(large < small * 1.5, `work per byte grew from ${small} to ${large}`);
  });
  it('a Content-Length body of 1 MB in 2 KB reads', () => {
    const wire = lengthed(Buffer.alloc(BODY_LIMIT, 'b'));
    const parts = Array.from({ length: Math.ceil(wire.length / 2048) }, (_, i) => wire.subarray(i * 2048, (i + 1) * 2048));
    const w = workPerByte(parts);
    assert.ok(w < 4, `work per byte received: ${w}`);
  });
  it('frames on the worker link: a large frame in many reads is joined once', () => {
    const socket = Object.assign(new EventEmitter(), { destroy: (e: Error) => assert.fail(e.message) });
    const got: unknown[] = [];
    readFrames(socket as never, (m) => got.push(m));
    const frames: Buffer[] = [];
    const fake = { destroyed: false, writableCorked: 1, write: (b: Buffer) => frames.push(Buffer.from(b)) };
    sendFrame(fake as never, { i: 1, m: 'M', b: 'x'.repeat(500_000) });
    sendFrame(fake as never, { i: 2, m: 'N', b: 'é' });
    const wire = Buffer.concat(frames);
    const concat = Buffer.concat;
    let copied = 0;
    Buffer.concat = ((list: readonly Uint8Array[], n?: number) => {
      const b = concat(list, n);
      copied += b.length;
      return b;
    }) as typeof Buffer.concat;
    try {
      for (let i = 0; i < wire.length; i += 1000) socket.emit('data', wire.subarray(i, i + 1000));
    } finally {
      Buffer.concat = concat;
    }
    assert.deepEqual(got.map((m) => (m as { i: number }).i), [1, 2]);
    assert.ok(copied < 3 * wire.length, `${copied} bytes copied for ${wire.length} received`);
  });
});

describe("RequestReader: the worker's body limit, as soon as it is passed", () => {
  const err = (r: ParseResult | undefined) => (r?.kind === 'error' ? [r.status, r.message] : r?.kind);
  it('a declared Content-Length over it: refused at the head, with the Err the worker would give', () => {
    const r = new RequestReader(BODY_LIMIT).push(Buffer.from(`POST /X HTTP/1.1\r\nContent-Length: ${BODY_LIMIT + 1}\r\n\r\n`), none);
    const tooLarge = { code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 };
    assert.deepEqual(err(r), [413, requestError(tooLarge, '/X', String(BODY_LIMIT + 1), BODY_LIMIT)]);
  });
  it('a chunked body: refused at the size line that takes the total past it, before its data comes', () => {
    const r = new RequestReader(BODY_LIMIT);
    const half = (BODY_LIMIT / 2).toString(16);
    const data = Buffer.alloc(BODY_LIMIT / 2, 'c');
    const results = feed(r, [Buffer.from(CHUNKED), Buffer.from(`${half}\r\n`), data, Buffer.from(`\r\n${half}\r\n`), data, Buffer.from('\r\n1\r\n')]);
    assert.deepEqual(results.slice(0, 5).map((x) => x.kind), ['more', 'more', 'more', 'more', 'more']);
    assert.deepEqual(err(results[5]), [413, `the request body is at least ${BODY_LIMIT + 1} bytes, over the limit of ${BODY_LIMIT} bytes; nothing was changed`]);
    assert.deepEqual(err(r.push(Buffer.from('x'), none)), err(results[5]), 'the refusal is final');
  });
});

describe('front: caps on the connections still reading a request, and on their bytes', () => {
  let dir: string;
  const fronts: Front[] = [];
  const clients: Socket[] = [];
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ledgernet-front-caps-'));
  });
  after(async () => {
    for (const c of clients) c.destroy();
    await Promise.all(fronts.map((f) => f.close()));
    rmSync(dir, { recursive: true, force: true });
  });
  const serve = async (name: string, limits: { maxReading?: number; maxBuffered?: number }) => {
    const f = front(async () => ({ status: 200, body: '{}' }), none, 1024, limits);
    fronts.push(f);
    const path = join(dir, name);
    await new Promise<void>((resolve) => f.server.listen(path, () => resolve()));
    return path;
  };
  const open = (path: string, text: string) => openRaw(path, text, clients);
  const reply = readToClose;
  const partial = 'POST /NetworkDriver.Join HTTP/1.1\r\nContent-Length: 7\r\n\r\n{"a"';
  const settle = () => new Promise((r) => setTimeout(r, 200));

  it('more connections than maxReading without a whole request: the next is refused with a clear 503; a whole one is served, and when they go, reading resumes', async () => {
    const path = await serve('a.sock', { maxReading: 3 });
    const held = await Promise.all([1, 2, 3].map(() => open(path, partial)));
    await settle();
    const refused = await open(path, partial);
    assert.match(await reply(refused), /^HTTP\/1\.1 503 Service Unavailable\r\n[\s\S]*ledgernet is already reading 3 requests that have not arrived whole, its limit[\s\S]*nothing was changed, try again"\}$/);
    for (const s of held) s.destroy();
    await settle();
    const later = await open(path, partial);
    later.write(':1}');
    assert.match(await reply(later), /^HTTP\/1\.1 200 OK/);
  });

  it('more bytes buffered than maxBuffered across them: the one that passes it is refused; their bytes are counted back when they go', async () => {
    const path = await serve('b.sock', { maxBuffered: 10_000 });
    const held = await Promise.all([1, 2].map(() => open(path, partial)));
    await settle();
    const refused = await open(path, partial);
    assert.match(await reply(refused), /^HTTP\/1\.1 503 [\s\S]*ledgernet already holds 10000 bytes of requests that have not arrived whole, its limit/);
    for (const s of held) s.destroy();
    await settle();
    const later = await Promise.all([1, 2].map(() => open(path, partial)));
    for (const s of later) s.write(':1}');
    for (const s of later) assert.match(await reply(s), /^HTTP\/1\.1 200 OK/);
  });
});
