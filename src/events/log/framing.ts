// Record framing of the event log: [u32 BE payload length][u32 BE crc32 of payload][payload].
//
// A damaged spot (a header or checksum that does not verify) is a torn tail only when it can be
// what a crash mid-write leaves and nothing complete follows it:
// - no complete record with a valid checksum anywhere after it (a later frame whose length and
//   crc verify), and none hidden behind a damaged length field (the spot's own checksum matching
//   some prefix of the bytes after its header);
// - and the bytes look written-but-not-finished: the header is cut short, everything from the
//   record on is zeros (blocks allocated but never written), or a header ledgernet can have
//   written (a possible length, a payload that starts with '{' or zeros or is not there) whose
//   record runs past the end of the file or ends in zeros from a 512-byte boundary to the end.
// Everything else is corruption: a complete record is never cut, even the last one.
import { crc32 } from 'node:zlib';

export const HEADER_BYTES = 8;
/** No single event comes near this; a larger length field means damage, not a big record. */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024;
/** Zero-filled tails after a crash start on a sector (or block) boundary. */
const SECTOR = 512;

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
  /** `newer`: the record is intact but of a newer ledgernet (what of it: upcast.ts newerRecord), not damage. */
  | { readonly kind: 'corrupt'; readonly offset: number; readonly reason: string; readonly newer?: string };

/**
 * Splits `buf` into frames. `fileOffset` is where `buf` starts in the file (only used to find
 * sector boundaries for zero-filled tails). With `limit`, stops (clean) after that many frames.
 */
export function unframe(buf: Buffer, fileOffset = 0, limit = Infinity): { frames: Frame[]; goodLength: number; end: ScanEnd } {
  const frames: Frame[] = [];
  const r = eachFrame(buf, fileOffset, limit, (offset, payload) => {
    frames.push({ offset, payload: payload() });
    return true;
  });
  return { frames, ...r };
}

/**
 * Walks the frames of `buf` without holding them: `visit` gets each frame's offset and a function
 * that decodes its payload, and returns false to stop there (the walk then ends clean at that
 * frame). A long log is read this way so that its records become garbage one at a time.
 */
export function eachFrame(
  buf: Buffer,
  fileOffset: number,
  limit: number,
  visit: (offset: number, payload: () => string) => boolean,
  checked?: (n: number) => boolean,
): { goodLength: number; end: ScanEnd } {
  let off = 0;
  for (let n = 0; off < buf.length && n < limit; n++) {
    // `checked(n)`: frame n's checksum was verified already (a replay's checker thread).
    const problem = badFrameAt(buf, off, checked?.(n) !== true);
    if (problem !== null) return { goodLength: off, end: classify(buf, off, problem, fileOffset) };
    const end = off + HEADER_BYTES + buf.readUInt32BE(off);
    const at = off;
    if (!visit(at, () => buf.toString('utf8', at + HEADER_BYTES, end))) return { goodLength: off, end: { kind: 'clean' } };
    off = end;
  }
  return { goodLength: off, end: { kind: 'clean' } };
}

/** Why the frame at `off` does not verify, or null when its length and (with `crc`) checksum do. */
export function badFrameAt(buf: Buffer, off: number, crc = true): string | null {
  const rest = buf.length - off;
  if (rest < HEADER_BYTES) return `a record header cut short (${rest} of ${HEADER_BYTES} bytes)`;
  const len = buf.readUInt32BE(off);
  if (len === 0) return 'record length 0';
  if (len > MAX_RECORD_BYTES) return `record length ${len} is impossible`;
  if (HEADER_BYTES + len > rest) return `record length ${len} runs past the end of the file`;
  if (crc && crc32(buf.subarray(off + HEADER_BYTES, off + HEADER_BYTES + len)) !== buf.readUInt32BE(off + 4)) return 'checksum mismatch';
  return null;
}

function classify(buf: Buffer, off: number, problem: string, fileOffset: number): ScanEnd {
  const later = nextValidFrame(buf, off + 1);
  if (later >= 0) {
    return { kind: 'corrupt', offset: off, reason: `${problem}, and a complete record with a valid checksum follows at offset ${later + fileOffset}` };
  }
  const hidden = buf.length - off > HEADER_BYTES ? hiddenRecordLength(buf, off) : 0;
  if (hidden > 0) {
    return {
      kind: 'corrupt',
      offset: off,
      reason: `${problem}, but the record is complete (its checksum matches ${hidden} bytes): its length field is damaged`,
    };
  }
  const rest = buf.length - off;
  const declaredEnd = rest < HEADER_BYTES ? Infinity : off + HEADER_BYTES + buf.readUInt32BE(off);
  const torn =
    rest < HEADER_BYTES || allZero(buf, off) || (writtenHeader(buf, off) && (declaredEnd > buf.length || zeroFilledFromSector(buf, off, fileOffset)));
  if (torn) return { kind: 'torn', offset: off, bytes: rest };
  return { kind: 'corrupt', offset: off, reason: `${problem} in a complete record (not a write cut short by a crash)` };
}

/**
 * The header at `off` can be one ledgernet wrote: a possible length, and a payload that starts as
 * every payload does (a JSON object's '{'), or not at all, or with zeros (not written yet). A cut
 * write leaves what was written and nothing else: bytes that no write made (a text or random
 * bytes in the log's place) are damage, not a torn tail.
 */
function writtenHeader(buf: Buffer, off: number): boolean {
  if (buf.readUInt32BE(off) > MAX_RECORD_BYTES) return false;
  const first = buf[off + HEADER_BYTES];
  return first === undefined || first === 0x7b || first === 0;
}

/** The offset of the first frame at or after `from` whose length and checksum verify, or -1. */
function nextValidFrame(buf: Buffer, from: number): number {
  const last = buf.length - HEADER_BYTES - 1;
  for (let p = from; p <= last; p++) {
    const len = buf.readUInt32BE(p);
    if (len === 0 || len > MAX_RECORD_BYTES || p + HEADER_BYTES + len > buf.length) continue;
    if (crc32(buf.subarray(p + HEADER_BYTES, p + HEADER_BYTES + len)) === buf.readUInt32BE(p + 4)) return p;
  }
  return -1;
}

/**
 * A length L > 0 for which the header at `off`'s checksum matches the L bytes after it, or 0.
 * Payloads are JSON objects, so only prefixes ending in '}' are candidates.
 */
function hiddenRecordLength(buf: Buffer, off: number): number {
  const want = buf.readUInt32BE(off + 4);
  const start = off + HEADER_BYTES;
  let sum = 0;
  let p = start;
  while (p < buf.length) {
    const close = buf.indexOf(0x7d, p);
    if (close < 0) return 0;
    sum = crc32(buf.subarray(p, close + 1), sum);
    p = close + 1;
    if (sum === want) return p - start;
  }
  return 0;
}

/** The record at `off` ends in a run of at least 2 zeros that starts on a sector boundary and lasts to the end. */
function zeroFilledFromSector(buf: Buffer, off: number, fileOffset: number): boolean {
  let z = buf.length;
  while (z > off && buf[z - 1] === 0) z--;
  if (buf.length - z < 2) return false;
  const firstSector = Math.ceil((z + fileOffset) / SECTOR) * SECTOR - fileOffset;
  return firstSector < buf.length - 1 && firstSector >= off;
}

function allZero(buf: Buffer, from: number): boolean {
  for (let i = from; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}
