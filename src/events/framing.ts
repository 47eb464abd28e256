// Record framing of the event log: [u32 BE payload length][u32 BE crc32 of payload][payload].
// A record that runs past the end of the file, or a bad record with nothing valid after it, is
// a torn tail (a crash mid-write); a bad record followed by more data is corruption.
import { crc32 } from 'node:zlib';

export const HEADER_BYTES = 8;
/** No single event comes near this; a larger length field means damage, not a big record. */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;

export function frame(payload: string): Buffer {
  const body = Buffer.from(payload, 'utf8');
  const out = Buffer.alloc(HEADER_BYTES + body.length);
  out.writeUInt32BE(body.length, 0);
  out.writeUInt32BE(crc32(body), 4);
  body.copy(out, HEADER_BYTES);
  return out;
}

export interface Frame {
  readonly offset: number;
  readonly payload: string;
}

export type ScanEnd =
  | { readonly kind: 'clean' }
  | { readonly kind: 'torn'; readonly offset: number; readonly bytes: number }
  | { readonly kind: 'corrupt'; readonly offset: number; readonly reason: string };

export function unframe(buf: Buffer): { frames: Frame[]; goodLength: number; end: ScanEnd } {
  const frames: Frame[] = [];
  let off = 0;
  while (off < buf.length) {
    const rest = buf.length - off;
    if (rest < HEADER_BYTES) return { frames, goodLength: off, end: { kind: 'torn', offset: off, bytes: rest } };
    const len = buf.readUInt32BE(off);
    const sum = buf.readUInt32BE(off + 4);
    const end = off + HEADER_BYTES + len;
    if (len > MAX_RECORD_BYTES || end > buf.length) {
      if (isTail(buf, off, len)) return { frames, goodLength: off, end: { kind: 'torn', offset: off, bytes: rest } };
      return { frames, goodLength: off, end: { kind: 'corrupt', offset: off, reason: `record length ${len} is impossible` } };
    }
    const body = buf.subarray(off + HEADER_BYTES, end);
    if (len === 0 || crc32(body) !== sum) {
      if (end === buf.length || allZero(buf, off)) {
        return { frames, goodLength: off, end: { kind: 'torn', offset: off, bytes: rest } };
      }
      return { frames, goodLength: off, end: { kind: 'corrupt', offset: off, reason: 'checksum mismatch' } };
    }
    frames.push({ offset: off, payload: body.toString('utf8') });
    off = end;
  }
  return { frames, goodLength: off, end: { kind: 'clean' } };
}

// A length that runs past the end is torn when it is the last thing in the file.
function isTail(buf: Buffer, off: number, len: number): boolean {
  return off + HEADER_BYTES + len > buf.length || allZero(buf, off);
}

function allZero(buf: Buffer, from: number): boolean {
  for (let i = from; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}
