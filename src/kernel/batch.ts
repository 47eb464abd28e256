// Typed changes to batch lines and back: each change renders to one or more lines, one process
// runs them all (`-force` keeps going past a failing line), and each failed line is mapped back
// to the change it belongs to.
import type { BatchResult, ChangeFailure, ChangesResult } from './types.ts';

/**
 * Renders every change, sends all lines as one batch, and reports each change with a failed
 * line once (its first failure). Sends nothing when no change has a line.
 */
export async function runChanges<C>(
  changes: readonly C[],
  toLines: (c: C) => string[],
  send: (lines: readonly string[]) => Promise<BatchResult>,
): Promise<ChangesResult> {
  const lines: string[] = [];
  const owner: number[] = [];
  changes.forEach((c, index) => {
    for (const l of toLines(c)) (lines.push(l), owner.push(index));
  });
  if (lines.length === 0) return { failures: [] };
  const failures: ChangeFailure[] = [];
  for (const f of (await send(lines)).failures) {
    const index = owner[f.line];
    if (index !== undefined && !failures.some((x) => x.index === index)) failures.push({ index, message: f.message });
  }
  return { failures };
}
