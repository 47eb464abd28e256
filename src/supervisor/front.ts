// The supervisor's side of the plugin socket: accepts Docker's connections and hands each call,
// whole, to `onCall` in the very callback that read its last bytes, so that the journal line is
// written (supervisor.ts) before the event loop runs anything else.
//
// From accept(2) on, a call lives only in this process: a SIGKILL closes its connection and
// Docker re-sends it with an empty body (moby#39331), which only the journal can answer. So the
// time from accept to journal is kept to one synchronous stretch wherever the bytes allow it:
// - the connection is read at once, in the callback libuv makes right after accept(2)
//   (a non-blocking read(2) of its fd; Docker writes the request right after connecting, so it is
//   usually all there), not one turn of the event loop later when libuv would first read it;
// - when it is not all there yet, the rest is read as it arrives, and the call goes on in that
//   callback;
// - libuv accepts every connection waiting in the backlog in one pass; each is read and journaled
//   in its own accept callback, so none waits while the others are processed.
import { readSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { Reply } from './forward.ts';
import { CONTINUE, replyText, RequestReader, type HttpRequest } from './http-request.ts';

export interface Call {
  readonly request: HttpRequest;
  /** performance.now() in the accept callback. */
  readonly acceptedAt: number;
  /** The whole request was read in the accept callback. */
  readonly readAtAccept: boolean;
}

/**
 * Answers a call. Its synchronous part (up to its first await) runs in the callback that read the
 * call: that is where the journal line must be written.
 */
export type CallHandler = (call: Call) => Promise<Reply>;

/** A connection that has not sent a whole request within this of its accept is closed (node's requestTimeout is 300 s, its headersTimeout 60 s). */
const REQUEST_TIMEOUT_MS = 60_000;
/** After a refusal of a request not read whole, the client has this long to close its end. */
const LINGER_MS = 10_000;
/** On stop, connections still without a whole request get this long. */
const STOP_GRACE_MS = 2_000;

const scratch = Buffer.allocUnsafe(64 * 1024);

/** What the connection's fd holds right now (a non-blocking read): bytes, nothing yet, or its end. */
function readNow(socket: Socket): Buffer | null | 'eof' {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return null;
  const parts: Buffer[] = [];
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, scratch, 0, scratch.length, null);
    } catch {
      break; // EAGAIN: nothing more yet (any other error shows again on the stream)
    }
    if (n === 0) return parts.length > 0 ? Buffer.concat(parts) : 'eof';
    parts.push(Buffer.from(scratch.subarray(0, n)));
    if (n < scratch.length) break;
  }
  return parts.length === 0 ? null : parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

const errText = (status: number, message: string) => replyText(status, JSON.stringify({ Err: message }));

/** Connections still without a whole request: more than this are refused (Docker makes dozens of calls at once, each read whole at once). */
const MAX_READING = 256;
/** The bytes all those connections may buffer together (Docker's bodies are a few KiB; one body may have BODY_LIMIT). */
const MAX_BUFFERED = 64 * 1024 * 1024;

export interface FrontLimits {
  /** A connection that has not sent a whole request within this of its accept is closed. */
  readonly requestTimeoutMs?: number;
  readonly maxReading?: number;
  readonly maxBuffered?: number;
}

/** What the front shares between its connections. */
interface Ctx {
  readonly onCall: CallHandler;
  readonly onError: (e: unknown, target: string) => void;
  readonly maxBody: number;
  readonly requestTimeoutMs: number;
  readonly maxReading: number;
  readonly maxBuffered: number;
  /** The connections still without a whole request. */
  readonly waiting: Set<Socket>;
  /** The bytes their readers hold. */
  buffered: number;
}

const busy = (what: string) => errText(503, `ledgernet ${what} that have not arrived whole, its limit (a client may be holding connections open without finishing its requests); nothing was changed, try again`);

function serveConnection(socket: Socket, ctx: Ctx): void {
  const acceptedAt = performance.now();
  // Dropped once the request is whole or refused: a lingering connection holds no buffer.
  let reader: RequestReader | null = new RequestReader(ctx.maxBody);
  let counted = 0;
  const count = (n: number) => {
    ctx.buffered += n - counted;
    counted = n;
  };
  let done = false;
  socket.on('error', () => socket.destroy());
  // The answer to a whole request is the last thing on the connection (it says `Connection:
  // close`), and the client has nothing more to send: once the kernel has the reply, the fd is
  // closed, and the client reads the reply, then its EOF. No shutdown(2), no wait for the client's
  // own close, no timer: three syscalls and a timer fewer per call (bench row 6). Closed in the
  // next tick, not in the write's callback: node's stream, destroyed while it is still finishing
  // the write, makes an ERR_STREAM_DESTROYED error (with its stack) that nobody reads, about 6 µs
  // of the supervisor's CPU per call.
  const close = () => socket.destroy();
  const answer = (text: string) => {
    socket.write(text, () => process.nextTick(close));
  };
  let deadline: NodeJS.Timeout | undefined;
  const finish = () => {
    done = true;
    reader = null;
    count(0);
    // The call itself may take long (the kernel, a worker replaced): no deadline once it is whole.
    clearTimeout(deadline);
    ctx.waiting.delete(socket);
  };
  // A refusal may come before the client has sent all it meant to (a body over the limit): shut
  // down only the writing side and keep reading (ignored) until the client closes, so it can finish
  // writing and read the refusal instead of meeting a reset.
  const refuse = (text: string) => {
    finish();
    socket.setTimeout(LINGER_MS, () => socket.destroy());
    socket.end(text);
    socket.resume(); // read on (what it reads is dropped), also when refused in the accept callback
  };
  const feed = (chunk: Buffer, atAccept: boolean): void => {
    if (done || !reader) return; // bytes after the request: Connection: close, so ignored
    const r = reader.push(chunk, () => socket.write(CONTINUE));
    if (r.kind === 'more') {
      count(reader.held);
      if (ctx.buffered > ctx.maxBuffered) refuse(busy(`already holds ${ctx.maxBuffered} bytes of requests`));
      return;
    }
    if (r.kind === 'error') return refuse(errText(r.status, r.message));
    finish();
    ctx.onCall({ request: r.request, acceptedAt, readAtAccept: atAccept }).then(
      (a) => answer(replyText(a.status, a.body)),
      (e: unknown) => {
        ctx.onError(e, r.request.target);
        answer(errText(500, 'internal error in the ledgernet supervisor (LN_ERR_INTERNAL); see the ledgernet log'));
      },
    );
  };
  const first = readNow(socket);
  if (first === 'eof') return void socket.destroy();
  if (first) feed(first, true);
  // Read whole at accept (most calls): nothing more is read from this connection. Bytes after the
  // request are ignored anyway, and a client that goes away meanwhile only fails the reply's
  // write; so the fd is never added to epoll (two epoll_ctl calls fewer per call).
  if (done) return;
  if (ctx.waiting.size >= ctx.maxReading) return refuse(busy(`is already reading ${ctx.maxReading} requests`));
  ctx.waiting.add(socket);
  // From the accept, however the bytes trickle in (an idle timeout would let a byte a minute keep it open).
  deadline = setTimeout(() => socket.destroy(), ctx.requestTimeoutMs - (performance.now() - acceptedAt));
  socket.on('data', (c: Buffer) => feed(c, false));
  // The client closed its end: without a whole request there is nothing to answer.
  socket.on('end', () => (done ? undefined : socket.destroy()));
  socket.on('close', () => {
    clearTimeout(deadline);
    ctx.waiting.delete(socket);
    count(0);
    reader = null;
  });
  socket.resume();
}

/**
 * Runs the reading and replying code once before the first connection: a function's first run
 * compiles it (and its regular expressions), and the first calls after a restart are the ones
 * that waited in the backlog, accepted together.
 */
function warmUp(maxBody: number): void {
  const r = new RequestReader(maxBody).push(Buffer.from('POST /Plugin.Activate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}'), () => undefined);
  if (r.kind === 'request') JSON.stringify({ k: 'req', m: r.request.target, b: r.request.body });
  replyText(200, '{}');
}

export interface Front {
  readonly server: Server;
  /** Stops accepting; resolves once every accepted call is answered. */
  close(): Promise<void>;
}

/** The plugin socket's server (not yet listening). `onError`: a call's handler threw. */
export function front(onCall: CallHandler, onError: (e: unknown, target: string) => void, maxBody: number, limits: FrontLimits = {}): Front {
  const ctx: Ctx = {
    onCall,
    onError,
    maxBody,
    requestTimeoutMs: limits.requestTimeoutMs ?? REQUEST_TIMEOUT_MS,
    maxReading: limits.maxReading ?? MAX_READING,
    maxBuffered: limits.maxBuffered ?? MAX_BUFFERED,
    waiting: new Set<Socket>(),
    buffered: 0,
  };
  const { waiting } = ctx;
  warmUp(maxBody);
  // pauseOnConnect: libuv must not start reading before readNow has; allowHalfOpen: a client that
  // shuts down its writing side after the request still gets the reply.
  const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => serveConnection(socket, ctx));
  return {
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        const t = setTimeout(() => {
          for (const s of waiting) s.destroy();
        }, STOP_GRACE_MS);
        t.unref();
      }),
  };
}
