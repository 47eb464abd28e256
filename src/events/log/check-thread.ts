// A long replay's checksums and hashes, checked on the second core: a worker thread
// (check-worker.ts) walks the same bytes (shared memory, no copy) ahead of the main thread and
// verifies each frame's crc32 and its hash over the stored bytes (hash.ts storedHash), the
// checks that need no parsing; the main thread, which parses and folds, skips them for the
// frames the worker has passed, and does them itself for every other frame (the worker has not
// got there yet, or stopped at a frame that failed). The main thread never waits for the
// worker, and every frame gets the same verdict as without it.
import { Worker } from 'node:worker_threads';

/** Indexes into the shared control words. */
export const CHECKED = 0;
export const STOP = 1;

export interface CheckerData {
  readonly bytes: SharedArrayBuffer;
  readonly byteOffset: number;
  readonly length: number;
  readonly control: SharedArrayBuffer;
}

/** Below this many bytes to replay, starting a thread costs more than it saves. */
export const CHECKER_MIN_BYTES = 32 * 1024 * 1024;

// Built, the worker is check-worker.js beside this file; under tsx (tests, bench) both are .ts,
// and on Node 20 a worker does not inherit tsx's loader (as in src/kernel/nft-library.ts).
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER = new URL(`./check-worker${FROM_SOURCE ? '.ts' : '.js'}`, import.meta.url);

export interface Checker {
  /** True when frame `n` (0-based, from where the checked bytes start) passed both checks. */
  checked(n: number): boolean;
  stop(): void;
}

/**
 * A checker over `region` (the frames a replay walks), or null when the region is small or not
 * in shared memory (see `sharedBuffer`).
 */
export function startChecker(region: Buffer): Checker | null {
  if (region.length < CHECKER_MIN_BYTES || !(region.buffer instanceof SharedArrayBuffer)) return null;
  const control = new SharedArrayBuffer(8);
  const ctl = new Int32Array(control);
  const workerData: CheckerData = { bytes: region.buffer, byteOffset: region.byteOffset, length: region.length, control };
  let worker: Worker;
  try {
    worker = FROM_SOURCE
      ? new Worker(`import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((t) => t.register()).then(() => import(${JSON.stringify(WORKER.href)}))`, { eval: true, workerData })
      : new Worker(WORKER, { workerData });
  } catch {
    return null; // the main thread checks everything, as without a checker
  }
  // A worker that fails only stops publishing progress: the main thread then checks the rest.
  worker.on('error', () => undefined);
  worker.unref();
  let known = 0;
  return {
    checked(n) {
      if (n < known) return true;
      known = Atomics.load(ctl, CHECKED);
      return n < known;
    },
    stop() {
      Atomics.store(ctl, STOP, 1);
      void worker.terminate();
    },
  };
}

/** A buffer of `length` bytes in shared memory when a checker would run over it, else a plain one. */
export function sharedBuffer(length: number): Buffer {
  return length >= CHECKER_MIN_BYTES ? Buffer.from(new SharedArrayBuffer(length)) : Buffer.allocUnsafe(length);
}
