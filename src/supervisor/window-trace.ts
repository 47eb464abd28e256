// Measures, per Docker call, the window in which a SIGKILL of the whole daemon costs the call:
// from the moment the supervisor accepted its connection (the kernel's accept queue, held by the
// service manager, no longer keeps it) to the moment its journal line was written (the next
// supervisor can answer Docker's empty-body retry from it). Off unless LEDGERNET_WINDOW_TRACE
// names a file; then one line per call is appended:
// `<method> <µs in all> <read at accept: 1|0> <µs of them in the journal's write(2)> <pid> <nth call of this pid>`.
// Used by the chaos bench (RELIABILITY.md); costs nothing when off.
import { openSync, writeSync } from 'node:fs';

const ENV = 'LEDGERNET_WINDOW_TRACE';

export type WindowTrace = (method: string, acceptedAt: number, readAtAccept: boolean, writeStartedAt: number) => void;

/** The trace named by the environment, or null (off). `acceptedAt` is a performance.now(). */
export function windowTraceFromEnv(env: NodeJS.ProcessEnv = process.env): WindowTrace | null {
  const path = env[ENV];
  if (!path) return null;
  const fd = openSync(path, 'a', 0o600);
  let n = 0;
  return (method, acceptedAt, readAtAccept, writeStartedAt) => {
    const now = performance.now();
    const us = (t: number) => Math.round((now - t) * 1000);
    writeSync(fd, `${method} ${us(acceptedAt)} ${readAtAccept ? 1 : 0} ${us(writeStartedAt)} ${process.pid} ${++n}\n`);
  };
}
