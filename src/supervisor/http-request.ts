// The HTTP/1.1 the supervisor speaks with Docker: one request per connection (POST /<Method>,
// the body framed by Content-Length or chunked), one reply with `Connection: close`. Parsed by
// hand, incrementally, so that the supervisor sees a call whole in the same callback that read its
// last bytes and journals it there (supervisor.ts), with nothing in between: node's HTTP server
// hands a request over only after its parser, its objects and at least one more turn of the event
// loop, a window in which a SIGKILL cost the call (RELIABILITY.md).
//
// Strict where a lenient reading could be abused (request smuggling): Content-Length and
// Transfer-Encoding together, several different Content-Lengths, a Transfer-Encoding other than
// chunked, malformed lines: each is a 400 and the connection is closed.

/** A whole request. */
export interface HttpRequest {
  readonly method: string;
  /** The request target, e.g. `/NetworkDriver.Join`. */
  readonly target: string;
  readonly body: string;
}

export type ParseResult =
  | { readonly kind: 'more' }
  | { readonly kind: 'request'; readonly request: HttpRequest }
  | { readonly kind: 'error'; readonly status: number; readonly message: string };

/** A request line and headers larger than this are refused (node's default is 16 KiB). */
const MAX_HEAD = 64 * 1024;
const MORE = { kind: 'more' } as const;
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.[01]$/;
const HEADER = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/;

interface Head {
  readonly method: string;
  readonly target: string;
  /** Where the body starts in the buffer. */
  readonly start: number;
  readonly length: number | 'chunked';
  readonly expectContinue: boolean;
}

const fail = (status: number, message: string): ParseResult => ({ kind: 'error', status, message });

function parseHead(text: string, start: number, maxBody: number): Head | ParseResult {
  const lines = text.split('\r\n');
  const line = REQUEST_LINE.exec(lines[0] ?? '');
  if (!line) return fail(400, 'the request line is not "METHOD /path HTTP/1.1"');
  let length: string | null = null;
  let chunked = false;
  let expectContinue = false;
  for (const l of lines.slice(1)) {
    const h = HEADER.exec(l);
    if (!h) return fail(400, `a header line is malformed: ${JSON.stringify(l.slice(0, 80))}`);
    const name = (h[1] as string).toLowerCase();
    const value = h[2] as string;
    if (name === 'content-length') {
      if (!/^\d{1,15}$/.test(value) || (length !== null && length !== value)) return fail(400, `Content-Length ${JSON.stringify(value)} is not one decimal length`);
      length = value;
    } else if (name === 'transfer-encoding') {
      if (value.toLowerCase() !== 'chunked' || chunked) return fail(400, `Transfer-Encoding ${JSON.stringify(value)}: only one "chunked" is understood`);
      chunked = true;
    } else if (name === 'expect' && value.toLowerCase() === '100-continue') expectContinue = true;
  }
  if (chunked && length !== null) return fail(400, 'Content-Length and Transfer-Encoding together');
  const n = length === null ? 0 : Number(length);
  if (n > maxBody) return fail(413, `the request body is larger than ${maxBody} bytes`);
  return { method: line[1] as string, target: line[2] as string, start, length: chunked ? 'chunked' : n, expectContinue };
}

/**
 * Decodes a chunked body from `at`; 'more' until its last chunk and trailers are there. What a
 * chunked body may hold besides its data (size lines, extensions, trailers) counts too: at most
 * MAX_HEAD bytes more than the body's limit are ever kept.
 */
function dechunk(buf: Buffer, at: number, maxBody: number): Buffer | ParseResult {
  if (buf.length - at > maxBody + MAX_HEAD) return fail(413, `the request body is larger than ${maxBody} bytes (with its chunk framing, extensions and trailers)`);
  const parts: Buffer[] = [];
  let total = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', at, 'latin1');
    if (eol < 0) return buf.length - at > 1024 ? fail(400, 'a chunk size line is too long') : MORE;
    const size = /^([0-9a-fA-F]{1,8})(;.*)?$/.exec(buf.toString('latin1', at, eol));
    if (!size) return fail(400, 'a chunk size is not hexadecimal');
    const n = Number.parseInt(size[1] as string, 16);
    at = eol + 2;
    if (n === 0) {
      // Trailers (ignored), then the empty line.
      const end = buf.indexOf('\r\n', at, 'latin1') === at ? at : buf.indexOf('\r\n\r\n', at, 'latin1');
      return end < 0 ? MORE : Buffer.concat(parts, total);
    }
    total += n;
    if (total > maxBody) return fail(413, `the request body is larger than ${maxBody} bytes`);
    if (buf.length < at + n + 2) return MORE;
    if (buf.toString('latin1', at + n, at + n + 2) !== '\r\n') return fail(400, 'a chunk does not end with CRLF');
    parts.push(buf.subarray(at, at + n));
    at += n + 2;
  }
}

/**
 * Reads one request from the bytes a connection has received so far (call again with more).
 * `onContinue` is called once when the client waits for `100 Continue`.
 */
export class RequestReader {
  private buf: Buffer = Buffer.alloc(0);
  private head: Head | null = null;
  private continued = false;
  private readonly maxBody: number;

  constructor(maxBody: number) {
    this.maxBody = maxBody;
  }

  push(chunk: Buffer, onContinue: () => void): ParseResult {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    if (!this.head) {
      const end = this.buf.indexOf('\r\n\r\n', 0, 'latin1');
      if (end < 0) return this.buf.length > MAX_HEAD ? fail(431, `the request line and headers are larger than ${MAX_HEAD} bytes`) : MORE;
      if (end > MAX_HEAD) return fail(431, `the request line and headers are larger than ${MAX_HEAD} bytes`);
      const head = parseHead(this.buf.toString('latin1', 0, end), end + 4, this.maxBody);
      if ('kind' in head) return head;
      this.head = head;
    }
    const h = this.head;
    let body: Buffer;
    if (h.length === 'chunked') {
      const r = dechunk(this.buf, h.start, this.maxBody);
      if (!Buffer.isBuffer(r)) return this.waiting(r, onContinue);
      body = r;
    } else {
      if (this.buf.length < h.start + h.length) return this.waiting(MORE, onContinue);
      body = this.buf.subarray(h.start, h.start + h.length);
    }
    return { kind: 'request', request: { method: h.method, target: h.target, body: body.toString('utf8') } };
  }

  private waiting(r: ParseResult, onContinue: () => void): ParseResult {
    if (r.kind === 'more' && this.head?.expectContinue && !this.continued) {
      this.continued = true;
      onContinue();
    }
    return r;
  }
}

const REASONS: Readonly<Record<number, string>> = { 200: 'OK', 400: 'Bad Request', 404: 'Not Found', 413: 'Payload Too Large', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error' };

/** The whole reply: status line, headers (closing the connection), body. */
export function replyText(status: number, body: string, contentType = 'application/vnd.docker.plugins.v1+json'): string {
  // Engines before v29.4.1 never close idle plugin connections; closing after each reply avoids a
  // reuse race that causes Docker's empty-body retry (moby#39331).
  return `HTTP/1.1 ${status} ${REASONS[status] ?? 'Unknown'}\r\nContent-Type: ${contentType}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

export const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
