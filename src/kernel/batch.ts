// Typed changes to batch lines and back: each change renders to one or more lines, one process
// runs them all (`-force` keeps going past a failing line), and each failed line is mapped back
// to the change it belongs to. A line that makes a link is different: when it fails, its name is
// held by a link the plan did not know (someone else's), and the change's later lines, and the
// later changes naming that link, would find that link by its name and change it. `-force`
// cannot stop only them, so a batch with such a line runs without it: `ip` stops at a failed line,
// which is mapped back; after a failed `link add` the lines that depend on it are dropped (not
// run); the lines after it are sent again in a new process (one more process a failure, none
// when nothing fails).
import { notMade } from './rtnl-apply.ts';
import type { BatchResult, ChangeFailure, ChangesResult } from './types.ts';

/** How to read the links out of batch lines (`ip`'s; iproute/render.ts). */
export interface LineLinks {
  /** The name of the link the line makes, else null. */
  made(line: string): string | null;
  /** The links the line names. */
  names(line: string): readonly string[];
}

/**
 * Renders every change, sends all lines as one batch, and reports each change with a failed
 * line once (its first failure). Sends nothing when no change has a line. With `links`, a batch
 * with a line that makes a link is sent without `force`, as above.
 */
export async function runChanges<C>(
  changes: readonly C[],
  toLines: (c: C) => string[],
  send: (lines: readonly string[], force?: boolean) => Promise<BatchResult>,
  links?: LineLinks,
): Promise<ChangesResult> {
  const lines: string[] = [];
  const owner: number[] = [];
  changes.forEach((c, index) => {
    for (const l of toLines(c)) (lines.push(l), owner.push(index));
  });
  if (lines.length === 0) return { failures: [] };
  const failures: ChangeFailure[] = [];
  const fail = (index: number | undefined, message: string) => {
    if (index !== undefined && !failures.some((x) => x.index === index)) failures.push({ index, message });
  };
  if (links === undefined || !lines.some((l) => links.made(l) !== null)) {
    for (const f of (await send(lines)).failures) fail(owner[f.line], f.message);
    return { failures };
  }
  // The lines still to send, by their index in `lines`.
  let todo = lines.map((_, i) => i);
  while (todo.length > 0) {
    const sent = todo;
    const found = [...(await send(sent.map((i) => lines[i] ?? ''), false)).failures].sort((a, b) => a.line - b.line);
    const stop = found[0];
    if (stop === undefined) break;
    // More than one: `ip` exited on an argument it rejects, the lines after it reported not run (as with -force).
    if (found.length > 1) {
      for (const f of found) fail(owner[sent[f.line] ?? -1], f.message);
      break;
    }
    const at = sent[stop.line] ?? -1;
    fail(owner[at], stop.message);
    todo = sent.slice(stop.line + 1);
    const name = links.made(lines[at] ?? '');
    if (name === null) continue;
    // Not made: the rest of its change, and every later change naming it, are not run.
    const dropped = new Set([owner[at]]);
    for (const i of todo) {
      if (owner[i] !== owner[at] && links.names(lines[i] ?? '').includes(name)) (dropped.add(owner[i]), fail(owner[i], notMade(name)));
    }
    todo = todo.filter((i) => !dropped.has(owner[i]));
  }
  // In the changes' order, as one batch (and the rtnetlink path) reports them.
  return { failures: failures.sort((a, b) => a.index - b.index) };
}
