// A process started with node's own `child_process.spawn`: how the daemon runs every command.
// execa's stream machinery cost ~5 ms a process on this VM (7 ms for `true` against 2 ms with
// spawn), and loading its ~100 modules ~8 MB of the daemon's memory (bench row 9). No stdin,
// output collected as text, killed after `timeoutMs`; `ip -batch -` gets its lines on stdin (a
// socket: fine for ip, which reads stdin as it is; nft opens /dev/stdin, which fails on one).
// `spawnToFile`: the same with stdout written to an unlinked temporary file and read once the
// process exited. For the full observe's large reads: `ip -j link show` flushes once per link,
// and reading 4,000 small writes from a pipe cost the daemon 13–41 ms of CPU at 2,000 endpoints
// (4,400 links), from a file 5–11 ms.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LeanResult {
  readonly stdout: string;
  readonly stderr: string;
  /** undefined: not started (ENOENT, EACCES) or killed (a signal, the timeout). */
  readonly exitCode: number | undefined;
  readonly timedOut: boolean;
  readonly error?: Error;
}

/**
 * Runs `file` with `args` (LC_ALL=C), `input` on its stdin if given, and resolves once it exited;
 * never rejects. `stdoutFd`: the child writes its stdout there (the result's stdout is then empty).
 */
export function spawnLean(file: string, args: readonly string[], timeoutMs: number, input?: string, stdoutFd?: number): Promise<LeanResult> {
  return new Promise((resolve) => {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    let error: Error | undefined;
    const child = spawn(file, args, { stdio: [input === undefined ? 'ignore' : 'pipe', stdoutFd ?? 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    // A command that exits before reading all of its input: its exit code and stderr say why.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      error = e;
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const text = (bs: Buffer[]) => Buffer.concat(bs).toString('utf8');
      // A process that did not start (ENOENT) closes with the negative errno as its code: none, as execa says.
      resolve({ stdout: text(out), stderr: text(err), exitCode: error ? undefined : (code ?? undefined), timedOut, ...(error ? { error } : {}) });
    });
  });
}

/** An unlinked file of our own (O_EXCL, mode 0600) in the temporary directory; null when none can be made. */
async function anonymousFile(): Promise<FileHandle | null> {
  const path = join(tmpdir(), `ledgernet-out-${process.pid}-${randomBytes(6).toString('hex')}`);
  try {
    const handle = await open(path, 'wx+', 0o600);
    await unlink(path).catch(() => undefined);
    return handle;
  } catch {
    return null;
  }
}

/** `spawnLean` with stdout collected through an unlinked temporary file; through the pipe when no file can be made. */
export async function spawnToFile(file: string, args: readonly string[], timeoutMs: number, input?: string): Promise<LeanResult> {
  const handle = await anonymousFile();
  if (handle === null) return spawnLean(file, args, timeoutMs, input);
  try {
    const result = await spawnLean(file, args, timeoutMs, input, handle.fd);
    // The child wrote through its own copy of the descriptor: read from the start, not from the shared offset.
    const { size } = await handle.stat();
    const buffer = Buffer.allocUnsafe(size);
    const { bytesRead } = size === 0 ? { bytesRead: 0 } : await handle.read(buffer, 0, size, 0);
    return { ...result, stdout: buffer.toString('utf8', 0, bytesRead) };
  } finally {
    await handle.close();
  }
}
