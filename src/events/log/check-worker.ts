// The replay's checker thread (check-thread.ts): walks the frames of a long log ahead of the
// main thread and verifies what needs no parsing, each frame's checksum and its hash over the
// stored bytes, publishing how many leading frames passed. It stops at the first frame that does
// not pass both (the main thread checks that one and the rest itself, the full way), or when
// told to stop.
import { workerData } from 'node:worker_threads';
import { badFrameAt, HEADER_BYTES } from './framing.ts';
import { storedHash } from './hash.ts';
import { CHECKED, STOP, type CheckerData } from './check-thread.ts';

const d = workerData as CheckerData;
const buf = Buffer.from(d.bytes, d.byteOffset, d.length);
const ctl = new Int32Array(d.control);
let off = 0;
let n = 0;
try {
  while (off < buf.length && Atomics.load(ctl, STOP) === 0) {
    if (badFrameAt(buf, off) !== null) break;
    const end = off + HEADER_BYTES + buf.readUInt32BE(off);
    if (storedHash(buf.subarray(off + HEADER_BYTES, end)) === null) break;
    off = end;
    n += 1;
    if ((n & 255) === 0) Atomics.store(ctl, CHECKED, n);
  }
} finally {
  Atomics.store(ctl, CHECKED, n);
}
