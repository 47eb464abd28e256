// The worker thread of nft-library.ts: libnftables (Debian's libnftables1) through koffi, so an
// nftables transaction costs a library call (~0.2 ms) instead of an `nft` process (~7 ms). It runs
// here and not on the main thread because a transaction is synchronous, and a large one (a whole
// table of 500 networks) would stall the event loop; and because a thread can enter a network
// namespace (setns) without moving the rest of the process. Every request gets a fresh context, as
// every `nft` process does: no cache lives between transactions, and nothing here pins a
// namespace while idle.
//
// Protocol: workerData `{ library, netns? }`; first message `{ ready: true, tid }` (this thread's
// id, which the kernel names as the committer of its transactions: nf-changes.ts) or `{ ready: false,
// why }`; then `{ id, command }` (an nft command line or a JSON document) answered `{ id, rc,
// stdout, stderr }`, or `{ id, rc: 1, stderr, fatal }` when the namespace could not be left (the
// thread then ends).
import { closeSync, openSync, readlinkSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

/** NFT_CTX_OUTPUT_JSON of <nftables/libnftables.h>: JSON out, and JSON in where the input is JSON. */
const OUTPUT_JSON = 1 << 4;
/** CLONE_NEWNET of <sched.h>. */
const CLONE_NEWNET = 0x40000000;

interface Request {
  readonly id: number;
  readonly command: string;
}

const port = parentPort;
if (port === null) throw new Error('nft-worker.ts runs as a worker thread');
const { library, netns } = workerData as { readonly library: string; readonly netns?: string };

type Run = (command: string) => { rc: number; stdout: string; stderr: string };

/** Binds libnftables' entry points; throws with the loader's reason when it cannot. */
async function bind(): Promise<{ run: Run; setns: (fd: number) => number }> {
  let koffi: typeof import('koffi').default;
  try {
    koffi = (await import('koffi')).default;
  } catch (e) {
    throw new Error(`the koffi package could not be loaded: ${(e as Error).message}`, { cause: e });
  }
  let lib: import('koffi').LibraryHandle;
  try {
    lib = koffi.load(library);
  } catch (e) {
    throw new Error(`${library} could not be loaded (Debian's package libnftables1): ${(e as Error).message}`, { cause: e });
  }
  koffi.opaque('nft_ctx');
  const ctxNew = lib.func('nft_ctx *nft_ctx_new(uint32_t flags)');
  const ctxFree = lib.func('void nft_ctx_free(nft_ctx *ctx)');
  const setFlags = lib.func('void nft_ctx_output_set_flags(nft_ctx *ctx, uint32_t flags)');
  const bufferOutput = lib.func('int nft_ctx_buffer_output(nft_ctx *ctx)');
  const bufferError = lib.func('int nft_ctx_buffer_error(nft_ctx *ctx)');
  const runCmd = lib.func('int nft_run_cmd_from_buffer(nft_ctx *ctx, const char *buf)');
  const output = lib.func('const char *nft_ctx_get_output_buffer(nft_ctx *ctx)');
  const error = lib.func('const char *nft_ctx_get_error_buffer(nft_ctx *ctx)');
  const setns = koffi.load('libc.so.6').func('int setns(int fd, int nstype)');
  const run: Run = (command) => {
    // NFT_CTX_DEFAULT (0): the context opens its netlink socket here, in this thread's namespace.
    const ctx: unknown = ctxNew(0);
    if (ctx === null) return { rc: 1, stdout: '', stderr: 'Error: nft_ctx_new failed (out of memory?)\n' };
    try {
      setFlags(ctx, OUTPUT_JSON);
      if (bufferOutput(ctx) !== 0 || bufferError(ctx) !== 0) return { rc: 1, stdout: '', stderr: 'Error: could not buffer the output of libnftables\n' };
      const rc = runCmd(ctx, command) as number;
      return { rc: rc === 0 ? 0 : 1, stdout: (output(ctx) as string | null) ?? '', stderr: (error(ctx) as string | null) ?? '' };
    } finally {
      ctxFree(ctx);
    }
  };
  return { run, setns: (fd) => setns(fd, CLONE_NEWNET) as number };
}

/** Runs `command` in `netns` (entered for this one command, then left), or where the thread is. */
function inNetns(b: { run: Run; setns: (fd: number) => number }, home: number | null, command: string): ReturnType<Run> & { fatal?: true } {
  if (netns === undefined || home === null) return b.run(command);
  let fd: number;
  try {
    fd = openSync(`/run/netns/${netns}`, 'r');
  } catch (e) {
    // The words `ip netns exec` uses, so the message reads as it did with the nft process.
    return { rc: 1, stdout: '', stderr: `Cannot open network namespace "${netns}": ${(e as Error).message}\n` };
  }
  try {
    if (b.setns(fd) !== 0) return { rc: 1, stdout: '', stderr: `setting the network namespace "${netns}" failed\n` };
  } finally {
    closeSync(fd);
  }
  try {
    return b.run(command);
  } finally {
    if (b.setns(home) !== 0) {
      // Left in the test's namespace: this thread may run nothing more.
      port?.postMessage({ fatal: `could not return from network namespace "${netns}"` });
      process.exit(1);
    }
  }
}

try {
  const b = await bind();
  // Our own namespace to come back to (a descriptor of the process's namespace pins nothing new).
  const home = netns === undefined ? null : openSync('/proc/thread-self/ns/net', 'r');
  port.on('message', (req: Request) => {
    let reply: ReturnType<Run>;
    try {
      reply = inNetns(b, home, req.command);
    } catch (e) {
      reply = { rc: 1, stdout: '', stderr: `Error: libnftables failed: ${(e as Error).message}\n` };
    }
    port.postMessage({ id: req.id, ...reply });
  });
  // `/proc/thread-self` is `<pid>/task/<tid>`: the id the kernel's NFT_MSG_NEWGEN names (null where /proc says otherwise).
  const tid = Number(/\/task\/(\d+)$/.exec(readlinkSync('/proc/thread-self'))?.[1] ?? Number.NaN);
  port.postMessage({ ready: true, tid: Number.isInteger(tid) ? tid : null });
} catch (e) {
  port.postMessage({ ready: false, why: (e as Error).message });
}
