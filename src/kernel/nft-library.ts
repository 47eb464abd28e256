// nftables without a process per change: nft commands and JSON transactions go to libnftables in a
// worker thread (nft-worker.ts), the same text in and out as `nft -j`. When the library cannot be
// loaded (the koffi package, libnftables.so.1 or the namespace missing), every command runs the
// `nft` process instead, as before; which of the two is reported once through `onRoute`. Reads
// before the first transaction run the process (the thread starts with the first transaction).
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { DriverError } from '../errors.ts';
import type { Outcome, Runner } from './runner.ts';

/** How nft commands run, for the log: the library in-process, or the `nft` process and why. */
export interface NftRoute {
  readonly via: 'libnftables' | 'nft';
  readonly why: string;
}

export interface NftOptions {
  readonly netns?: string;
  readonly timeoutMs: number;
  /** The library to load (default `libnftables.so.1`); tests name a missing one to take the fallback. */
  readonly library?: string;
  readonly onRoute?: (route: NftRoute) => void;
  /** The process runner of run-kernel.ts. */
  readonly run: Runner;
}

interface Reply {
  readonly rc: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `nft(what, command)`: an nft command line (`list table inet x`) or a JSON transaction. */
type Nft = (what: string, command: string) => Promise<Outcome>;

export interface NftRunner extends Nft {
  /**
   * Whether the thread the kernel names as a commit's committer (NFT_MSG_NEWGEN's pid,
   * nf-changes.ts) is the running libnftables thread: its commits are this process's transactions.
   */
  ours(pid: number): boolean;
}

// Built, the worker is nft-worker.js beside this file. Under tsx (tests, bench) both are .ts, and
// on Node 20 a worker does not inherit tsx's loader: a bootstrap registers it, then imports the worker.
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER = new URL(`./nft-worker${FROM_SOURCE ? '.ts' : '.js'}`, import.meta.url);
const startWorker = (workerData: object): Worker =>
  FROM_SOURCE
    ? new Worker(`import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((t) => t.register()).then(() => import(${JSON.stringify(WORKER.href)}))`, { eval: true, workerData })
    : new Worker(WORKER, { workerData });

/** Runs nft commands through libnftables, or through the `nft` process when it cannot be loaded. */
export function createNft(opts: NftOptions): NftRunner {
  const where = opts.netns === undefined ? '' : ` in network namespace ${opts.netns}`;
  const library = opts.library ?? 'libnftables.so.1';
  const session = new LibrarySession(library, opts.netns, opts.timeoutMs);
  let route: Promise<NftRoute> | null = null;
  const viaProcess = processNft(opts);
  const nft: Nft = async (what, command) => {
    // A read before the first transaction (the full observe's look for our table, which the
    // iptables backend makes too) runs the process: the thread (~13 MB of the daemon's memory,
    // bench row 9) starts with the first transaction, so a daemon on iptables never starts it.
    // Where `nft` itself is missing (the plugin's rootfs has only the library), the library reads.
    if (route === null && !command.startsWith('{')) {
      const o = await viaProcess(what, command).catch(() => null);
      if (o !== null) return o;
    }
    route ??= session.ensure().then((why) => {
      const r: NftRoute = why === null ? { via: 'libnftables', why: `${library} loaded in a worker thread` } : { via: 'nft', why };
      opts.onRoute?.(r);
      return r;
    });
    if ((await route).via === 'nft' || !lowDescriptorsFree()) return viaProcess(what, command);
    const reply = await session.call(command, `could not ${what}${where}`);
    const shown = command.startsWith('{') ? 'nft -j -f -' : `nft -j ${command}`;
    return { ...reply, exitCode: reply.rc, what: `${what}${where}`, command: `${shown} (libnftables)`, raw: { exitCode: reply.rc, stdout: reply.stdout, stderr: reply.stderr } };
  };
  return Object.assign(nft, { ours: (pid: number) => session.tid === pid });
}

/**
 * Below this, the next descriptor the process opens is one libnftables can use. Its transactions
 * wait for the kernel's answer with select(2) on their netlink socket (`mnl_batch_talk`), and
 * glibc aborts the whole process when that socket's number is FD_SETSIZE (1,024) or more
 * (`*** bit out of range 0 - FD_SETSIZE on fd_set ***: terminated`). The daemon holds a
 * descriptor per published host port (kernel/reservations), so with ~1,000 of them (a range of 250
 * ports, tcp and udp, on an `--ipv6` network) the socket of the next context would be numbered
 * above it: the worker died at that transaction, and at the first one after each restart. The
 * margin covers what the main thread opens while the thread makes its context (the reconciler
 * binds the reservations only after the firewall's transaction: reconciler/apply.ts).
 */
const LOW_DESCRIPTORS = 900;

/** Whether the lowest free descriptor (the one the next socket gets) is below LOW_DESCRIPTORS. */
function lowDescriptorsFree(): boolean {
  let fd: number;
  try {
    fd = openSync('/dev/null', 'r');
  } catch {
    return false;
  }
  closeSync(fd);
  return fd < LOW_DESCRIPTORS;
}

/** The fallback: `nft -j` as a process, a JSON transaction through a file (see below). */
function processNft(opts: NftOptions): Nft {
  const inNetns = (args: string[]): [string, string[]] => (opts.netns === undefined ? ['nft', args] : ['ip', ['netns', 'exec', opts.netns, 'nft', ...args]]);
  return async (what, command) => {
    if (!command.startsWith('{')) return opts.run(what, ...inNetns(['-j', ...command.split(' ')]));
    // nft opens /dev/stdin, which fails on the socket node gives a child as stdin: a file it is.
    const file = join(tmpdir(), `ledgernet-nft-${process.pid}-${randomBytes(6).toString('hex')}.json`);
    await writeFile(file, command, { mode: 0o600 });
    try {
      return await opts.run(what, ...inNetns(['-j', '-f', file]));
    } finally {
      await rm(file, { force: true });
    }
  };
}

/** One worker thread, started on first use, restarted after it died; requests answered in order. */
class LibrarySession {
  private worker: Worker | null = null;
  /** The running worker's thread id; null while none runs (one abandoned or dead is not ours any more). */
  tid: number | null = null;
  private starting: Promise<string | null> | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();

  private readonly library: string;
  private readonly netns: string | undefined;
  private readonly timeoutMs: number;

  constructor(library: string, netns: string | undefined, timeoutMs: number) {
    this.library = library;
    this.netns = netns;
    this.timeoutMs = timeoutMs;
  }

  /** The worker, started unless running: null once the library is loaded, else why it is not. */
  ensure(): Promise<string | null> {
    if (this.worker !== null) return Promise.resolve(null);
    this.starting ??= this.start().finally(() => (this.starting = null));
    return this.starting;
  }

  private start(): Promise<string | null> {
    return new Promise((resolve) => {
      let worker: Worker;
      try {
        worker = startWorker({ library: this.library, ...(this.netns === undefined ? {} : { netns: this.netns }) });
      } catch (e) {
        resolve(`the nftables worker thread could not start: ${(e as Error).message}`);
        return;
      }
      const failed = (e: Error) => resolve(`the nftables worker thread failed: ${e.message}`);
      const ended = (code: number) => resolve(`the nftables worker thread ended (exit code ${code}) before it loaded ${this.library}`);
      worker.once('error', failed);
      worker.once('exit', ended);
      worker.once('message', (m: { ready: boolean; why?: string; tid?: number | null }) => {
        // Not removeAllListeners: the Worker refs and unrefs its port through listeners of its own.
        worker.off('error', failed).off('exit', ended);
        if (!m.ready) {
          void worker.terminate();
          resolve(m.why ?? 'libnftables could not be loaded');
          return;
        }
        this.adopt(worker, m.tid ?? null);
        resolve(null);
      });
    });
  }

  private adopt(worker: Worker, tid: number | null): void {
    worker.unref();
    let fatal: string | null = null;
    worker.on('message', (m: Reply & { id?: number; fatal?: string }) => {
      if (m.fatal !== undefined) fatal = m.fatal;
      const p = m.id === undefined ? undefined : this.pending.get(m.id);
      if (p === undefined || m.id === undefined) return;
      this.settle(m.id);
      p.resolve(m);
    });
    const died = (why: string) => {
      if (this.worker === worker) this.forget();
      for (const [id, p] of this.pending) {
        this.settle(id);
        p.reject(new Error(fatal ?? why));
      }
    };
    worker.on('error', (e) => died(`the nftables worker thread failed: ${e.message}`));
    worker.on('exit', (code) => died(`the nftables worker thread ended (exit code ${code})`));
    this.worker = worker;
    this.tid = tid;
  }

  /** No worker runs (dead, or abandoned: it may still commit, as someone else). */
  private forget(): void {
    this.worker = null;
    this.tid = null;
  }

  async call(command: string, failure: string): Promise<Reply> {
    const why = await this.ensure();
    if (why !== null) throw new DriverError('LN_ERR_KERNEL_EXEC', `${failure}: ${why}`);
    const worker = this.worker;
    if (worker === null) throw new DriverError('LN_ERR_KERNEL_EXEC', `${failure}: the nftables worker thread is gone`);
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.settle(id);
        // A thread stuck in the library cannot be interrupted: abandon it, the next call starts another.
        this.forget();
        void worker.terminate();
        reject(new DriverError('LN_ERR_TIMEOUT', `${failure}: libnftables did not answer in ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject: (e) => reject(new DriverError('LN_ERR_KERNEL_EXEC', `${failure}: ${e.message}`, { cause: e })), timer });
      if (this.pending.size === 1) worker.ref();
      worker.postMessage({ id, command });
    });
  }

  private settle(id: number): void {
    const p = this.pending.get(id);
    if (p === undefined) return;
    clearTimeout(p.timer);
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker?.unref();
  }
}
