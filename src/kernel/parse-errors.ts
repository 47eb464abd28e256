import { DriverError } from '../errors.ts';
import type { BatchFailure } from './types.ts';

/** What the caller knows about how far `ip -batch` got. */
export interface BatchProgress {
  /** Physical lines sent per batch line (2 with the markers of `ip-batch.ts`). Default 1. */
  readonly linesPerCommand?: number;
  /** How many batch lines `ip` finished, counted from the markers. Absent when unknown. */
  readonly completed?: number;
}

const COMMAND_FAILED = /^Command failed .*:(\d+)$/;

/**
 * Turns the stderr of `ip -force -batch -` into the failed lines (0-based, in order).
 *
 * `ip` prints a command's messages (`RTNETLINK answers: File exists`, `Error: …`,
 * `Cannot find device "x"`) and then `Command failed -:N` with the 1-based input line. Messages
 * left after the last such line mean `ip` exited early (it does so, even with `-force`, on an
 * argument it rejects). With `progress.completed` the stopping line is known; the lines after it
 * are reported as not run. Without it, every line after the last reported failure is reported,
 * since any of them may be the one that stopped `ip`.
 * @throws DriverError `LN_ERR_KERNEL_PARSE` when a `Command failed` line names no sent line.
 */
export function parseIpBatchErrors(
  stderr: string,
  lines: readonly string[],
  progress: BatchProgress = {},
): BatchFailure[] {
  const stride = progress.linesPerCommand ?? 1;
  const failures: BatchFailure[] = [];
  let pending: string[] = [];
  for (const raw of stderr.split('\n')) {
    const text = raw.trim();
    if (text === '') continue;
    const m = COMMAND_FAILED.exec(text);
    if (m === null) {
      pending.push(text);
      continue;
    }
    const index = Math.floor((Number(m[1]) - 1) / stride);
    if (!(index >= 0 && index < lines.length)) {
      throw new DriverError('LN_ERR_KERNEL_PARSE', 'could not parse the errors of ip -batch', {
        cause: new Error(`"${text}" names no line of the ${lines.length} sent`),
      });
    }
    failures.push(failureAt(index, lines, pending.join(' ') || 'command failed'));
    pending = [];
  }
  if (pending.length === 0) return failures;
  const next = (failures.at(-1)?.line ?? -1) + 1;
  return [...failures, ...stoppedEarly(pending.join(' '), lines, next, progress.completed)];
}

function stoppedEarly(
  message: string,
  lines: readonly string[],
  next: number,
  completed: number | undefined,
): BatchFailure[] {
  const rest = lines.map((_, i) => i).filter((i) => i >= (completed ?? next));
  if (completed === undefined) {
    // Unknown which line stopped `ip`: none of these is known to have run.
    const range = `${next}..${lines.length - 1}`;
    return rest.map((i) => failureAt(i, lines, `ip -batch stopped at one of lines ${range}: ${message}`));
  }
  // All lines finished: the messages were warnings of lines that succeeded.
  return rest.map((i) =>
    failureAt(i, lines, i === completed ? message : `not run: ip -batch stopped at line ${completed}`),
  );
}

function failureAt(line: number, lines: readonly string[], message: string): BatchFailure {
  return { line, command: lines[line] ?? '', message };
}
