// The supervisor's watch on its worker's event loop. A worker that is alive but no longer runs
// its event loop (a bug that loops, SIGSTOP, a synchronous call that never returns) answers no
// Docker call, and without this every call would get the "did not answer within 25 s" Err for as
// long as it stays so. The supervisor asks the ready worker over its IPC channel once a second;
// the worker answers from its event loop; a worker silent for the watchdog's time is SIGKILLed,
// which is a worker crash like any other: a new one starts at once and gets the calls in flight
// again (forward.ts). Pure: the clock is the caller's.

/** How often the supervisor asks (ms). */
export const PING_MS = 1_000;

export type Verdict = 'ping' | 'kill';

export class Watchdog {
  private lastPong: number;
  private lastTick: number;
  private limitMs: number;

  /** `limitMs`: how long the worker may stay silent; `now`: when it said it was ready. */
  constructor(limitMs: number, now: number) {
    this.limitMs = limitMs;
    this.lastPong = now;
    this.lastTick = now;
  }

  /** From `now` on, the limit is `limitMs` (the worker said it is ready: from the start-up limit to the running one); counts as an answer. */
  relimit(limitMs: number, now: number): void {
    this.limitMs = limitMs;
    this.pong(now);
  }

  /** The worker answered. */
  pong(now: number): void {
    this.lastPong = Math.max(this.lastPong, now);
  }

  /** How long the worker has been silent at `now` (ms). */
  silentFor(now: number): number {
    return now - this.lastPong;
  }

  /**
   * One tick of the supervisor's timer: 'kill' once the worker has been silent for longer than
   * the limit, else 'ping'. A tick much later than its interval means the supervisor itself was
   * held up (a loaded or paused machine): that time is not counted against the worker, which gets
   * the whole limit again from now.
   */
  tick(now: number): Verdict {
    if (now - this.lastTick > 3 * PING_MS) this.lastPong = now;
    this.lastTick = now;
    return now - this.lastPong > this.limitMs ? 'kill' : 'ping';
  }
}
