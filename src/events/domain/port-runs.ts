// Published ports as runs. Docker names every port of a range (`-p 10000-10999:1000-1999` is 1,000
// bindings), so an `endpoint.external.programmed` event held ~76 bytes a port: 14,000 ports tcp+udp
// made an event over NATS's 1 MiB max_payload, and its line in `events` named each port. From
// version 2 the event holds runs: consecutive bindings of one protocol and host address whose
// container and host ports both go up by one are one binding with a `count`. A version 1 portmap
// is a version 2 one whose runs are of one port each (no count), so no upcast step is needed.
import type { PortBinding, PortRun } from './types.ts';

/** How many ports a run has (absent: one). */
const sizeOf = (r: PortRun): number => r.count ?? 1;

/** Whether `b` goes on where `run` (of `n` ports) ends. */
function continues(run: PortRun, n: number, b: PortRun): boolean {
  return b.proto === run.proto && b.hostIp === run.hostIp && b.port === run.port + n && b.hostPort === run.hostPort + n && b.hostPortEnd === run.hostPortEnd + n;
}

/** `bindings` (runs or single ports) as the fewest runs, in the same order; expandRuns gives them back. Pure. */
export function portRuns(bindings: readonly PortRun[]): PortRun[] {
  const out: PortRun[] = [];
  let last: PortRun | undefined;
  for (const b of bindings) {
    if (last !== undefined && continues(last, sizeOf(last), b)) {
      last = { ...last, count: sizeOf(last) + sizeOf(b) };
      out[out.length - 1] = last;
      continue;
    }
    const { count, ...one } = b;
    last = count !== undefined && count > 1 ? { ...one, count } : one;
    out.push(last);
  }
  return out;
}

/** One binding per port, in order: the inverse of portRuns. Pure. */
export function expandRuns(runs: readonly PortRun[]): PortBinding[] {
  const out: PortBinding[] = [];
  for (const r of runs) {
    const n = sizeOf(r);
    for (let i = 0; i < n; i++) out.push({ proto: r.proto, port: r.port + i, hostIp: r.hostIp, hostPort: r.hostPort + i, hostPortEnd: r.hostPortEnd + i });
  }
  return out;
}
