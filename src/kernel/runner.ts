// How ledgernet runs one command: argument arrays only, never a shell; LC_ALL=C; killed after a
// timeout; a command that did not run or exited non-zero leaves as one DriverError with the
// command's result (exit code, stderr) as its cause.
import { DriverError } from '../errors.ts';
import { spawnLean, spawnToFile } from './spawn-lean.ts';

export interface Outcome {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
  /** For messages: what was tried, e.g. `apply iptables rules in network namespace x`. */
  readonly what: string;
  readonly command: string;
  /** The process's result (spawn-lean.ts), kept as the cause. */
  readonly raw: unknown;
}

export type Runner = (what: string, file: string, args: readonly string[], input?: string) => Promise<Outcome>;

/**
 * How a process is started: `lean`, node's own spawn with stdout through a pipe; `file`, the same
 * with stdout read from a temporary file (the full observe's large reads). Not execa: its ~100
 * modules cost the daemon ~5 ms a process and ~8 MB of memory (bench row 9).
 */
export type Spawn = 'lean' | 'file';

export function createRunner(timeoutMs: number, netns: string | undefined, how: Spawn = 'lean'): Runner {
  const where = netns === undefined ? '' : ` in network namespace ${netns}`;
  return async (what, file, args, input) => {
    const result = how === 'file' ? await spawnToFile(file, args, timeoutMs, input) : await spawnLean(file, args, timeoutMs, input);
    const command = [file, ...args].join(' ');
    if (result.timedOut) {
      throw new DriverError('LN_ERR_TIMEOUT', `could not ${what}${where}: ${command} timed out`, {
        cause: result,
      });
    }
    if (result.exitCode === undefined) {
      // Not started (ENOENT, EACCES) or killed by a signal.
      throw new DriverError('LN_ERR_KERNEL_EXEC', `could not ${what}${where}: ${command} did not run`, {
        cause: result,
      });
    }
    const { stdout, stderr, exitCode } = result;
    return { stdout, stderr, exitCode, what: `${what}${where}`, command, raw: result };
  };
}

export function failOnExit(o: Outcome): void {
  const e = exitError(o);
  if (e) throw e;
}

/** The error of a command that exited non-zero (null: it exited 0). */
export function exitError(o: Outcome): DriverError | null {
  if (o.exitCode === 0) return null;
  const detail = firstLine(o.stderr);
  const message = `could not ${o.what}: ${o.command} exited with code ${o.exitCode}`;
  return new DriverError('LN_ERR_KERNEL_EXEC', detail === null ? message : `${message}: ${detail}`, {
    cause: o.raw,
  });
}

/** The first non-empty stderr line, cut to a length fit for a message, or null. */
export function firstLine(stderr: string): string | null {
  const line = stderr.split('\n').find((l) => l.trim() !== '');
  return line === undefined ? null : line.trim().slice(0, 200);
}
