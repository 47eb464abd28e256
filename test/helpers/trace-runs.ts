// Which commands the code under test started: a script of each name first on PATH notes its
// command line, then runs the real one.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

/** The command lines (name and arguments) of every `cmds` this process started while `f` ran. */
export async function tracing(cmds: readonly string[], f: () => Promise<unknown>): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'ln-trace-'));
  const mark = join(dir, 'runs');
  for (const cmd of cmds) {
    const real = (await execa('sh', ['-c', `command -v ${cmd}`])).stdout.trim();
    writeFileSync(join(dir, cmd), `#!/bin/sh\necho "${cmd} $*" >> ${mark}\nexec ${real} "$@"\n`, { mode: 0o755 });
  }
  const path = process.env['PATH'];
  process.env['PATH'] = `${dir}:${path ?? ''}`;
  try {
    await f();
    return existsSync(mark) ? readFileSync(mark, 'utf8').split('\n').filter((l) => l !== '') : [];
  } finally {
    process.env['PATH'] = path;
    rmSync(dir, { recursive: true, force: true });
  }
}
