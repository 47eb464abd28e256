// Reading a request's body: a buffer that grows by doubling (each byte copied a bounded number of
// times, however small the reads), and a chunked body decoded as its bytes arrive, from where the
// last read stopped. Concatenating every read and decoding from the start each time cost a 3.6 MB
// body of one-byte chunks 79 s of the supervisor's single thread (review of 2026-12-06, finding 4).
import { bodyTooLargeErr } from '../errors.ts';

/** What a body read so far comes to: whole, not yet, or refused (`message` is the whole Err). */
export type Decoded = Buffer | 'more' | { readonly status: number; readonly message: string };

/** A chunk size line (with its extensions) longer than this is refused. */
const MAX_SIZE_LINE = 1024;
const CR = 13;
const LF = 10;

export const refusal = (status: number, message: string) => ({ status, message: `${message}; nothing was changed` });

/** Bytes appended piece by piece; grows by doubling, never past `max`. */
export class Bytes {
  private buf: Buffer;
  length = 0;
  max: number;
  /** Bytes copied so far, growing included (tests: linear in the bytes appended). */
  copied = 0;

  constructor(initial: number, max: number) {
    this.max = max;
    this.buf = Buffer.allocUnsafe(Math.min(initial, max));
  }

  /** The memory it holds. */
  get capacity(): number {
    return this.buf.length;
  }

  append(src: Buffer, start = 0, end = src.length): void {
    const need = this.length + end - start;
    if (need > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, Math.min(2 * this.buf.length, this.max)));
      this.buf.copy(grown, 0, 0, this.length);
      this.copied += this.length;
      this.buf = grown;
    }
    src.copy(this.buf, this.length, start, end);
    this.copied += end - start;
    this.length = need;
  }

  view(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

type State = 'size' | 'data' | 'cr' | 'lf' | 'trailers' | 'done';

/**
 * A chunked body, decoded from each read where the last one stopped. What it holds besides its
 * data (size lines, extensions, trailers) counts too: at most `maxWire` bytes are read in all.
 */
export class ChunkedBody {
  private scanned = 0;
  private state: State = 'size';
  private readonly data: Bytes;
  private readonly line = Buffer.allocUnsafe(MAX_SIZE_LINE + 1);
  private lineLength = 0;
  /** Data bytes of the current chunk still to come. */
  private left = 0;
  /** Data bytes declared by the size lines so far. */
  private total = 0;
  /** Bytes of the body read so far, framing included. */
  private wire = 0;
  /** The last (up to 3) bytes of the trailers, to find their empty line across reads. */
  private tail = '';
  private readonly maxBody: number;
  private readonly maxWire: number;

  constructor(maxBody: number, maxWire: number) {
    this.maxBody = maxBody;
    this.maxWire = maxWire;
    this.data = new Bytes(4096, maxBody);
  }

  /** The memory it holds. */
  get held(): number {
    return this.data.capacity + this.line.length;
  }

  /** Bytes looked at or copied (tests: the work is linear in the bytes received). */
  get work(): number {
    return this.scanned + this.data.copied;
  }

  push(chunk: Buffer): Decoded {
    for (let at = 0; at < chunk.length && this.state !== 'done'; ) {
      const next = this.step(chunk, at);
      if (typeof next !== 'number') return next;
      this.wire += next - at;
      at = next;
      if (this.wire > this.maxWire) return refusal(413, `the request body is larger than ${this.maxBody} bytes (with its chunk framing, extensions and trailers: over ${this.maxWire} bytes)`);
    }
    return this.state === 'done' ? this.data.view() : 'more';
  }

  /** Reads from `at` what the state expects; returns where it stopped, or a refusal. */
  private step(chunk: Buffer, at: number): number | Exclude<Decoded, Buffer | 'more'> {
    switch (this.state) {
      case 'size':
        return this.sizeLine(chunk, at);
      case 'data': {
        const end = Math.min(chunk.length, at + this.left);
        this.data.append(chunk, at, end);
        this.left -= end - at;
        if (this.left === 0) this.state = 'cr';
        return end;
      }
      case 'cr':
      case 'lf':
        if (chunk[at] !== (this.state === 'cr' ? CR : LF)) return refusal(400, 'a chunk does not end with CRLF');
        this.state = this.state === 'cr' ? 'lf' : 'size';
        return at + 1;
      default:
        return this.trailers(chunk, at);
    }
  }

  private sizeLine(chunk: Buffer, at: number): number | Exclude<Decoded, Buffer | 'more'> {
    const lf = chunk.indexOf(LF, at);
    const end = lf < 0 ? chunk.length : lf;
    this.scanned += end - at;
    if (this.lineLength + end - at > this.line.length) return refusal(400, 'a chunk size line is too long');
    chunk.copy(this.line, this.lineLength, at, end);
    this.lineLength += end - at;
    if (lf < 0) return end;
    const text = this.line.toString('latin1', 0, this.lineLength);
    this.lineLength = 0;
    const size = /^([0-9a-fA-F]{1,8})(;.*)?\r$/s.exec(text);
    if (!size) return refusal(400, 'a chunk size is not hexadecimal');
    const n = Number.parseInt(size[1] as string, 16);
    if (n === 0) {
      // Trailers (ignored), then the empty line: the CRLF just read may be the first half of it.
      this.state = 'trailers';
      this.tail = '\r\n';
      return lf + 1;
    }
    this.total += n;
    if (this.total > this.maxBody) return { status: 413, message: bodyTooLargeErr(`at least ${this.total} bytes`, this.maxBody) };
    this.left = n;
    this.state = 'data';
    return lf + 1;
  }

  private trailers(chunk: Buffer, at: number): number {
    const seam = this.tail + chunk.toString('latin1', at, Math.min(chunk.length, at + 3));
    const inSeam = seam.indexOf('\r\n\r\n');
    const found = inSeam >= 0 ? at + inSeam + 4 - this.tail.length : chunk.indexOf('\r\n\r\n', at, 'latin1');
    const end = found < 0 ? chunk.length : inSeam >= 0 ? found : found + 4;
    this.scanned += end - at;
    if (found >= 0) this.state = 'done';
    else this.tail = (this.tail + chunk.toString('latin1', Math.max(at, chunk.length - 3))).slice(-3);
    return end;
  }
}
