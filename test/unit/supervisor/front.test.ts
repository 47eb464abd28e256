// The supervisor's plugin-socket front (front.ts) and its HTTP reading (http-request.ts): a call is
// handed over whole in the callback that read its last bytes, in the accept callback itself when
// it was already in the socket's backlog; bad framing gets a clear Err and the connection closes.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { front, type Call, type Front } from '../../../src/supervisor/front.ts';
import { RequestReader, type ParseResult } from '../../../src/supervisor/http-request.ts';

const MAX = 1024;
const post = (body: string, extra = '') => `POST /NetworkDriver.Join HTTP/1.1\r\nHost: x\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
const read = (...parts: string[]): ParseResult[] => {
  const r = new RequestReader(MAX);
  return parts.map((p) => r.push(Buffer.from(p), () => undefined));
};

describe('RequestReader', () => {
  it('a request in one piece, or byte by byte: the same call, whole only at its last byte', () => {
    const text = post('{"EndpointID":"é"}');
    assert.deepEqual(read(text).at(-1), { kind: 'request', request: { method: 'POST', target: '/NetworkDriver.Join', body: '{"EndpointID":"é"}' } });
    const bytes = [...Buffer.from(text)].map((b) => Buffer.from([b]));
    const r = new RequestReader(MAX);
    const results = bytes.map((b) => r.push(b, () => undefined).kind);
    assert.deepEqual([results.slice(0, -1).every((k) => k === 'more'), results.at(-1)], [true, 'request']);
  });

  it('a chunked body (with an extension and a trailer) is decoded', () => {
    const head = 'POST /X HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n';
    const r = read(head, '3;x=1\r\n{"a\r\n', '4\r\n":1}\r\n0\r\nT: v\r\n', '\r\n');
    assert.deepEqual(r.map((x) => x.kind), ['more', 'more', 'more', 'request']);
    assert.equal(r[3]?.kind === 'request' && r[3].request.body, '{"a":1}');
  });

  it('refuses what could be read two ways, or is too large, with a status that names it', () => {
    const status = (...p: string[]) => {
      const x = read(...p).at(-1);
      return x?.kind === 'error' ? [x.status, x.message] : x?.kind;
    };
    assert.match(String(status('POST /X HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n')), /^400,Content-Length and Transfer-Encoding/);
    assert.match(String(status('POST /X HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n')), /^400,Content-Length/);
    assert.match(String(status('POST /X HTTP/1.1\r\nContent-Length: -1\r\n\r\n')), /^400/);
    assert.match(String(status('POST /X HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n')), /^400,Transfer-Encoding/);
    assert.match(String(status('POST /X\r\n\r\n')), /^400,the request line/);
    assert.match(String(status('POST /X HTTP/1.1\r\nno colon\r\n\r\n')), /^400,a header line/);
    assert.match(String(status(`POST /X HTTP/1.1\r\nContent-Length: ${MAX + 1}\r\n\r\n`)), /^413,the request body is 1025 bytes, over the limit of 1024 bytes; nothing was changed$/);
    assert.match(String(status('POST /X HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n', `${(MAX + 1).toString(16)}\r\n`, 'x'.repeat(MAX + 1))), /^413/);
    assert.match(String(status(`POST /X HTTP/1.1\r\nA: ${'a'.repeat(70_000)}`)), /^431/);
    // What a chunked body holds besides its data counts: endless trailers, or small chunks with long extensions.
    const chunked = 'POST /X HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n';
    const trailers = Array.from({ length: 200 }, () => `X-Pad: ${'p'.repeat(1000)}\r\n`);
    assert.match(String(status(chunked, '2\r\n{}\r\n0\r\n', ...trailers)), /^413,the request body is larger than 1024 bytes \(with its chunk framing, extensions and trailers: over 66560 bytes\); nothing was changed$/);
    assert.match(String(status(chunked, ...Array.from({ length: 200 }, () => `1;e=${'e'.repeat(1000)}\r\nx\r\n`))), /^413,/);
  });

  it('asks for the body once when the client expects 100 Continue', () => {
    const r = new RequestReader(MAX);
    let asked = 0;
    r.push(Buffer.from('POST /X HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n'), () => (asked += 1));
    r.push(Buffer.from('{'), () => (asked += 1));
    assert.equal(r.push(Buffer.from('}'), () => (asked += 1)).kind, 'request');
    assert.equal(asked, 1);
  });
});

describe('front on a real unix socket', () => {
  let dir: string;
  let socket: string;
  let plugin: Front;
  const calls: Call[] = [];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ledgernet-front-'));
    socket = join(dir, 'p.sock');
    plugin = front(
      async (c) => {
        calls.push(c);
        if (c.request.target === '/Throw') throw new Error('boom');
        return { status: 200, body: JSON.stringify({ echo: c.request.body, verb: c.request.method }) };
      },
      () => undefined,
      MAX,
    );
    await new Promise<void>((resolve) => plugin.server.listen(socket, () => resolve()));
  });
  after(async () => {
    await plugin.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const call = (method: string, body: string) =>
    new Promise<{ status: number; text: string; headers: Record<string, unknown> }>((resolve, reject) => {
      const q = request({ socketPath: socket, method, path: '/NetworkDriver.Join', headers: { 'Content-Length': Buffer.byteLength(body) } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), headers: res.headers }));
      });
      q.on('error', reject);
      q.end(body);
    });

  /** A client in another process that sends `parts` (a pause between them) and prints the reply. */
  const python = (parts: string[]) =>
    new Promise<string>((resolve, reject) => {
      const code = `import socket, sys, time, json\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\nfor i, p in enumerate(json.loads(sys.argv[2])):\n    if i: time.sleep(0.3)\n    s.sendall(p.encode())\nout = b''\nwhile True:\n    b = s.recv(65536)\n    if not b: break\n    out += b\nsys.stdout.write(out.decode())\n`;
      const p = spawn('python3', ['-c', code, socket, JSON.stringify(parts)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (b: Buffer) => (out += b.toString()));
      p.on('error', reject);
      p.on('close', () => resolve(out));
    });

  /** Connections waiting in the listening socket's backlog (its Recv-Q in `ss -xl`), read while the loop is blocked. */
  const backlog = () => Number(execFileSync('ss', ['-xlH', 'src', socket], { encoding: 'utf8' }).trim().split(/\s+/)[2] ?? 0);

  /** Blocks this event loop (nothing is accepted meanwhile), as a busy supervisor would be. */
  const block = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

  it('answers with Docker\'s content type and closes the connection', async () => {
    const r = await call('POST', '{"a":1}');
    assert.deepEqual([r.status, JSON.parse(r.text), r.headers['connection'], r.headers['content-type']], [200, { echo: '{"a":1}', verb: 'POST' }, 'close', 'application/vnd.docker.plugins.v1+json']);
  });

  it('a call already waiting in the backlog is read whole in its accept callback', async () => {
    calls.length = 0;
    const reply = python([post('{"b":2}')]);
    // Nothing is accepted while the client connects and writes. Not a fixed time: on a loaded
    // machine python took longer than 1.5 s to start, and its bytes came after the accept.
    for (const t0 = Date.now(); backlog() < 1 && Date.now() - t0 < 20_000; ) block(20);
    block(300); // its write follows its connect at once
    assert.match(await reply, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n\{"echo":"\{\\"b\\":2\}","verb":"POST"\}$/);
    assert.deepEqual(calls.map((c) => [c.request.body, c.readAtAccept]), [['{"b":2}', true]]);
  });

  it('a call whose bytes come later is handed over when its last byte is read', async () => {
    calls.length = 0;
    const text = post('{"c":3}');
    const reply = await python([text.slice(0, 20), text.slice(20)]);
    assert.match(reply, /^HTTP\/1\.1 200 OK/);
    assert.deepEqual(calls.map((c) => [c.request.body, c.readAtAccept]), [['{"c":3}', false]]);
  });

  /** A client in another process: sends `first` (`@PAD@` in it becomes `pad` x's), reads until EOF, then (after 0.3 s) writes `then`; prints the reply and what that write met. */
  const pythonAfter = (first: string, then: string, pad = 0) =>
    new Promise<{ reply: string; laterWrite: string }>((resolve, reject) => {
      const code = `import socket, sys, time\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ns.sendall(sys.argv[2].replace('@PAD@', 'x' * int(sys.argv[4])).encode())\nout = b''\nwhile True:\n    b = s.recv(65536)\n    if not b: break\n    out += b\ntime.sleep(0.3)\ntry:\n    s.sendall(sys.argv[3].encode()); r = 'ok'\nexcept OSError as e:\n    r = type(e).__name__\nsys.stdout.write(r + '\\n' + out.decode())\n`;
      const p = spawn('python3', ['-c', code, socket, first, then, String(pad)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (b: Buffer) => (out += b.toString()));
      p.on('error', reject);
      p.on('close', () => {
        const nl = out.indexOf('\n');
        resolve({ laterWrite: out.slice(0, nl), reply: out.slice(nl + 1) });
      });
    });

  it('after answering a whole request it closes the connection, not only its writing side', async () => {
    const r = await pythonAfter(post('{"d":4}'), 'more');
    assert.match(r.reply, /^HTTP\/1\.1 200 OK[\s\S]*\{"echo":"\{\\"d\\":4\}","verb":"POST"\}$/);
    assert.equal(r.laterWrite, 'BrokenPipeError', 'nothing is left on the server side to write to');
  });

  it('a body refused as too large is still read, so the client can send it all and read the refusal', async () => {
    // Far over MAX, and over the socket's buffers: refused after its headers, long before its end.
    const size = 4 * 1024 * 1024;
    const big = `POST /NetworkDriver.Join HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n@PAD@`;
    const r = await pythonAfter(big, '', size);
    assert.match(r.reply, /^HTTP\/1\.1 413 [\s\S]*nothing was changed"\}$/);
    // The same with its headers already there when it is accepted (refused in the accept callback).
    const waited = pythonAfter(big, '', size);
    for (const t0 = Date.now(); backlog() < 1 && Date.now() - t0 < 20_000; ) block(20);
    block(300);
    assert.match((await waited).reply, /^HTTP\/1\.1 413 [\s\S]*nothing was changed"\}$/);
  });

  it('bad framing and a failing handler get a clear Err, never a hang', async () => {
    const bad = await python(['POST /X HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n']);
    assert.match(bad, /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*\{"Err":"Content-Length \\"2\\" is not one decimal length; nothing was changed"\}$/);
    const thrown = await python(['POST /Throw HTTP/1.1\r\nContent-Length: 0\r\n\r\n']);
    assert.match(thrown, /^HTTP\/1\.1 500 [\s\S]*LN_ERR_INTERNAL/);
  });
});

describe('front: the time a request may take to arrive', () => {
  let dir: string;
  let socket: string;
  let plugin: Front;
  const calls: Call[] = [];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ledgernet-front-deadline-'));
    socket = join(dir, 'p.sock');
    // A request must be whole within 1 s of its accept; the call itself takes 1.5 s.
    plugin = front(
      async (c) => {
        calls.push(c);
        await new Promise((r) => setTimeout(r, 1_500));
        return { status: 200, body: '{}' };
      },
      () => undefined,
      MAX,
      { requestTimeoutMs: 1_000 },
    );
    await new Promise<void>((resolve) => plugin.server.listen(socket, () => resolve()));
  });
  after(async () => {
    await plugin.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Sends `parts`, `gap` seconds apart, and prints the reply (empty: closed without one). */
  const send = (parts: string[], gap: number) =>
    new Promise<string>((resolve, reject) => {
      const code = `import socket, sys, time, json\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ntry:\n    for i, p in enumerate(json.loads(sys.argv[2])):\n        if i: time.sleep(float(sys.argv[3]))\n        s.sendall(p.encode())\nexcept OSError:\n    pass\nout = b''\nwhile True:\n    try:\n        b = s.recv(65536)\n    except OSError:\n        break\n    if not b: break\n    out += b\nsys.stdout.write(out.decode())\n`;
      const p = spawn('python3', ['-c', code, socket, JSON.stringify(parts), String(gap)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      p.stdout.on('data', (b: Buffer) => (out += b.toString()));
      p.on('error', reject);
      p.on('close', () => resolve(out));
    });

  it('a request that trickles in (a few bytes every 0.3 s) is cut off 1 s after its accept, never handed over', async () => {
    calls.length = 0;
    const text = post('{"slow":1}');
    const parts = Array.from({ length: 8 }, (_, i) => text.slice((i * text.length) / 8, ((i + 1) * text.length) / 8));
    assert.equal(await send(parts, 0.3), '');
    assert.deepEqual(calls, []);
  });

  it('a whole request is answered however long the call takes (the deadline is for its arrival)', async () => {
    calls.length = 0;
    const text = post('{"long":1}');
    assert.match(await send([text.slice(0, 20), text.slice(20)], 0.3), /^HTTP\/1\.1 200 OK[\s\S]*\{\}$/);
    assert.equal(calls.length, 1);
  });
});
