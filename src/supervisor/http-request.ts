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

import { bodyTooLargeErr } from '../errors.ts';
import { Bytes, ChunkedBody, refusal, type Decoded } from './chunked-body.ts';

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
  /** Where the body starts in the bytes read. */
  readonly start: number;
  readonly length: number | 'chunked';
  readonly expectContinue: boolean;
}

const fail = (status: number, message: string): ParseResult => ({ kind: 'error', ...refusal(status, message) });

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
  // The worker's own limit and Err (errors.ts), before a byte of the body is kept.
  if (n > maxBody) return { kind: 'error', status: 413, message: bodyTooLargeErr(`${n} bytes`, maxBody) };
  return { method: line[1] as string, target: line[2] as string, start, length: chunked ? 'chunked' : n, expectContinue };
}

const tooLargeHead = () => fail(431, `the request line and headers are larger than ${MAX_HEAD} bytes`);

/**
 * Reads one request from the bytes a connection has received so far (call again with more). Each
 * read is looked at once, from where the last stopped: the head is searched only in the new bytes
 * (and the 3 before), a Content-Length body is appended to the head's bytes, a chunked body is
 * decoded as it comes (chunked-body.ts). `onContinue` is called once when the client waits for
 * `100 Continue`.
 */
export class RequestReader {
  /** The head, then (Content-Length) the body after it; null once a chunked body takes over. */
  private bytes: Bytes | null = new Bytes(4096, Number.MAX_SAFE_INTEGER);
  private chunked: ChunkedBody | null = null;
  private head: Head | null = null;
  private continued = false;
  /** A refusal is final: the same answer to whatever comes after it. */
  private refused: ParseResult | null = null;
  private scanned = 0;
  private readonly maxBody: number;

  constructor(maxBody: number) {
    this.maxBody = maxBody;
  }

  /** The memory its buffers hold (front.ts bounds the sum over all connections). */
  get held(): number {
    return (this.bytes?.capacity ?? 0) + (this.chunked?.held ?? 0);
  }

  /** Bytes looked at or copied so far: linear in the bytes pushed, however they were split (tests). */
  get work(): number {
    return this.scanned + (this.bytes?.copied ?? 0) + (this.chunked?.work ?? 0);
  }

  push(chunk: Buffer, onContinue: () => void): ParseResult {
    if (this.refused) return this.refused;
    const body = this.head ? this.more(this.head, chunk) : this.first(chunk);
    if (!Buffer.isBuffer(body)) {
      if (body.kind === 'error') this.refused = body;
      return this.waiting(body, onContinue);
    }
    const h = this.head as Head;
    return { kind: 'request', request: { method: h.method, target: h.target, body: body.toString('utf8') } };
  }

  /** Until the head is whole: appends, and searches what is new for its end. */
  private first(chunk: Buffer): Buffer | ParseResult {
    const bytes = this.bytes as Bytes;
    const from = Math.max(0, bytes.length - 3);
    bytes.append(chunk);
    const all = bytes.view();
    const end = all.indexOf('\r\n\r\n', from, 'latin1');
    this.scanned += (end < 0 ? all.length : end + 4) - from;
    if (end < 0) return all.length > MAX_HEAD ? tooLargeHead() : MORE;
    if (end > MAX_HEAD) return tooLargeHead();
    const head = parseHead(all.toString('latin1', 0, end), end + 4, this.maxBody);
    if ('kind' in head) return head;
    this.head = head;
    if (head.length !== 'chunked') {
      bytes.max = head.start + head.length;
      return this.more(head, Buffer.alloc(0));
    }
    this.chunked = new ChunkedBody(this.maxBody, this.maxBody + MAX_HEAD);
    this.bytes = null;
    this.scanned += bytes.copied;
    return this.decoded(this.chunked.push(all.subarray(head.start)));
  }

  private more(h: Head, chunk: Buffer): Buffer | ParseResult {
    if (this.chunked) return this.decoded(this.chunked.push(chunk));
    const bytes = this.bytes as Bytes;
    const end = h.start + (h.length as number);
    // Bytes after the request are ignored (one request per connection).
    if (bytes.length < end) bytes.append(chunk, 0, Math.min(chunk.length, end - bytes.length));
    return bytes.length < end ? MORE : bytes.view().subarray(h.start, end);
  }

  private decoded(d: Decoded): Buffer | ParseResult {
    return d === 'more' ? MORE : Buffer.isBuffer(d) ? d : { kind: 'error', ...d };
  }

  private waiting(r: ParseResult, onContinue: () => void): ParseResult {
    if (r.kind === 'more' && this.head?.expectContinue && !this.continued) {
      this.continued = true;
      onContinue();
    }
    return r;
  }
}

const REASONS: Readonly<Record<number, string>> = { 200: 'OK', 400: 'Bad Request', 404: 'Not Found', 413: 'Payload Too Large', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 503: 'Service Unavailable' };

/** The whole reply: status line, headers (closing the connection), body. */
export function replyText(status: number, body: string, contentType = 'application/vnd.docker.plugins.v1+json'): string {
  // Engines before v29.4.1 never close idle plugin connections; closing after each reply avoids a
  // reuse race that causes Docker's empty-body retry (moby#39331).
  return `HTTP/1.1 ${status} ${REASONS[status] ?? 'Unknown'}\r\nContent-Type: ${contentType}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

export const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
