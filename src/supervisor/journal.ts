// The supervisor's request journal: every Docker call with a body is written here on receipt,
// before it is forwarded, and marked answered just before the reply is written to Docker. When
// the supervisor itself dies mid-call, Docker re-sends the call with an EMPTY body (moby#39331:
// the first attempt consumed the body reader); the next supervisor answers such a retry from the
// journal entry the dead one left unanswered.
//
// The file is JSON lines, written with one write(2) each (writeSync), or one per turn of the
// event loop for the supervisor's calls (receivedSoon/answeredSoon: a burst of calls, or of
// answers, shares one write; each call still waits for its line). A SIGKILL loses nothing
// that write(2) has returned (the page cache belongs to the kernel, not the process). No fsync:
// what fsync adds is survival of a power loss or kernel crash, and then dockerd and its retries
// are gone too, so nothing could ever match the entry (and entries older than RETRY_WINDOW_MS
// are dropped anyway). A torn last line (killed mid-write) is skipped on load.
import { closeSync, fstatSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

export const JOURNAL_FILE = 'requests.journal';

/**
 * Docker's retry budget is 30 s counted from the first attempt (the retries after an EOF come 1,
 * 2, 4 and 8 s apart, so in practice within ~15 s). An entry older than this can have no retry.
 */
export const RETRY_WINDOW_MS = 30_000;

/** Rewrite the file (keeping only live entries) once it grows past this. */
const COMPACT_BYTES = 4 * 1024 * 1024;

export interface Entry {
  readonly id: string;
  /** ms since the epoch, at receipt */
  readonly t: number;
  readonly method: string;
  readonly body: string;
}

type Line = { k: 'req'; id: string; t: number; m: string; b: string } | { k: 'ans'; id: string } | { k: 'end' };

/** True when the journal's text does not end with a clean stop's marker (its writer died). */
export function endedUncleanly(text: string): boolean {
  const last = text.trimEnd().split('\n').at(-1) ?? '';
  return last !== '' && last !== JSON.stringify({ k: 'end' });
}

/**
 * The entries of a journal's text that were never answered and are younger than the retry
 * window at `now`, oldest first. Lines that do not parse (a torn tail) are skipped.
 */
export function liveEntries(text: string, now: number): Entry[] {
  const open = new Map<string, Entry>();
  for (const raw of text.split('\n')) {
    if (raw === '') continue;
    let line: Line;
    try {
      line = JSON.parse(raw) as Line;
    } catch {
      continue;
    }
    if (line.k === 'req' && typeof line.id === 'string' && typeof line.m === 'string' && typeof line.b === 'string' && typeof line.t === 'number') {
      open.set(line.id, { id: line.id, t: line.t, method: line.m, body: line.b });
    } else if (line.k === 'ans') open.delete(line.id);
  }
  return [...open.values()].filter((e) => now - e.t >= 0 && now - e.t < RETRY_WINDOW_MS).sort((a, b) => a.t - b.t);
}

export type Match =
  | { readonly kind: 'none' }
  | { readonly kind: 'replay'; readonly entry: Entry }
  /**
   * Redo every entry; then each retry gets `reply` (the same for every call) if all succeeded, or
   * whatever happened when `anyway` (a method whose errors Docker only logs).
   */
  | { readonly kind: 'redoAll'; readonly entries: readonly Entry[]; readonly reply: string; readonly anyway: boolean }
  | { readonly kind: 'ambiguous'; readonly count: number };

/**
 * Methods whose successful answer can be the same for every call, so that a retry need not be
 * told apart from the others cut off with it.
 *
 * CreateNetwork and ProgramExternalConnectivity answer `{}` when done. So does CreateEndpoint:
 * it sets the MAC on the container-side veth at creation, and Docker keeps an interface's own MAC
 * when the answer names none (observed-docker.md). Their errors fail a docker command, so they
 * need `exact`: as many retries as calls (then each retry is one of them) and every one redone
 * successfully. Join (`SrcName`, the endpoint's own veth), RequestPool and RequestAddress (the
 * pool, the address) have answers of their own, so a wrong pick would cross containers: never.
 *
 * Teardown calls answer `{}` and Docker only logs their errors (protocol.md §2): whatever the
 * count, every journaled one is done again (each is a removal Docker asked for) and each retry
 * gets `{}`. A retry of a call cut off before it was journaled then gets `{}` for work not done,
 * which Docker could not have acted on either way: its endpoint is released by docker-sync
 * (operator/abandoned.ts), its address or pool by `ledgernet repair`.
 */
const CALL_INDEPENDENT = new Map<string, { readonly reply: string; readonly exact: boolean }>([
  ...['NetworkDriver.CreateNetwork', 'NetworkDriver.CreateEndpoint', 'NetworkDriver.ProgramExternalConnectivity'].map((m): [string, { reply: string; exact: boolean }] => [m, { reply: '{}', exact: true }]),
  ...['NetworkDriver.Leave', 'NetworkDriver.RevokeExternalConnectivity', 'NetworkDriver.DeleteEndpoint', 'NetworkDriver.DeleteNetwork', 'IpamDriver.ReleaseAddress', 'IpamDriver.ReleasePool'].map(
    (m): [string, { reply: string; exact: boolean }] => [m, { reply: '{}', exact: false }],
  ),
]);

/** How long the supervisor gathers the empty retries of one method before it decides. */
export const RETRY_BATCH_MS = 500;

/**
 * What to do with `retries` empty-body calls of `method` that arrived together at `now`, given
 * the entries an earlier supervisor left unanswered (not yet used for a retry).
 *
 * One retry and one live candidate: replay it (as a full retry; every handler is idempotent).
 * No candidate: 'none' (the worker refuses the empty body). Anything else is refused: an empty
 * retry carries nothing that tells which call it repeats, and a wrong pick would hand Docker
 * another endpoint's veth (Join) or address (RequestAddress), or answer `{}` for work never
 * done (ProgramExternalConnectivity's ports, CreateNetwork's bridge). More
 * retries than candidates means a call was cut off before it was journaled (still in the
 * listen backlog when the supervisor died), so even one candidate is not enough then. A clear
 * Err costs one failed docker command; a wrong answer corrupts Docker's state.
 *
 * Except for a CALL_INDEPENDENT method: an `exact` one when there are exactly as many retries
 * as candidates (Docker retries every cut-off call on the same backoff schedule from the same
 * instant, so they arrive in one batch; a call cut off before it was journaled would make one
 * retry more), the others always. Every candidate is done again, and the common answer is right
 * for each retry, whichever call it repeats.
 */
export function matchEmptyRetries(candidates: readonly Entry[], method: string, now: number, retries: number): Match {
  const live = candidates.filter((e) => e.method === method && now - e.t >= 0 && now - e.t < RETRY_WINDOW_MS);
  if (live.length === 0) return { kind: 'none' };
  const common = CALL_INDEPENDENT.get(method);
  const one = live.length === 1 && retries === 1;
  if (common && !one && (!common.exact || retries === live.length)) return { kind: 'redoAll', entries: live, reply: common.reply, anyway: !common.exact };
  if (live.length > 1 || retries > 1) return { kind: 'ambiguous', count: Math.max(live.length, retries) };
  return { kind: 'replay', entry: live[0] as Entry };
}

/**
 * Calls whose empty retry may be answered without knowing which call it repeats, when the journal
 * holds none of them (the call was cut off before it was journaled): their work is read-only or
 * done again by the DeleteEndpoint that always follows them in Docker's teardown (stop,
 * disconnect, rm: Revoke, Leave, DeleteEndpoint). EndpointOperInfo only feeds `docker inspect`;
 * `{"Value":{}}` is what an unknown endpoint gets. Only used within RETRY_WINDOW_MS of a
 * supervisor crash: otherwise an empty body is plain bad input and gets the worker's Err.
 * Leave's and Revoke's records stay until that DeleteEndpoint removes the endpoint and its ports
 * (residual: a Revoke when Docker moves a container's gateway to another network keeps the old
 * endpoint's published ports until it is deleted). Every other method gets a clear Err.
 */
export function teardownReply(method: string): string | null {
  switch (method) {
    case 'NetworkDriver.EndpointOperInfo':
      return '{"Value":{}}';
    case 'NetworkDriver.Leave':
    case 'NetworkDriver.RevokeExternalConnectivity':
      return '{}';
    default:
      return null;
  }
}

/** The journal file of one supervisor, plus what the previous ones left unanswered. */
export class Journal {
  private fd: number;
  private bytes = 0;
  private seq = 0;
  private readonly prefix = randomBytes(4).toString('hex');
  /** This instance's entries not yet answered (kept for compaction). */
  private readonly open = new Map<string, Entry>();
  /** Unanswered entries of earlier supervisors, not yet used for a retry. */
  private inherited: Entry[];
  private readonly path: string;
  private readonly clock: () => number;

  /** Lines of receivedSoon/answeredSoon waiting for their batch's write, and that write. */
  private queued: string[] = [];
  private flushed: Promise<boolean> | null = null;

  /** The last write error (null after a write succeeds). */
  lastError: Error | null = null;
  /** When the previous supervisor died without a clean stop (ms since the epoch), or null. */
  readonly crashedAt: number | null;

  private constructor(path: string, inherited: Entry[], clock: () => number, crashedAt: number | null) {
    this.crashedAt = crashedAt;
    this.path = path;
    this.clock = clock;
    this.inherited = inherited;
    try {
      this.fd = this.rewrite(inherited);
    } catch (e) {
      // e.g. a full disk: keep the file as it is and append (the inherited entries are in it).
      this.lastError = e as Error;
      this.fd = openSync(path, 'a', 0o600);
    }
  }

  /** Loads the live entries left by earlier supervisors and starts a fresh file holding only them. */
  static open(path: string, clock: () => number = Date.now): Journal {
    let text = '';
    let mtime = 0;
    try {
      text = readFileSync(path, 'utf8');
      mtime = statSync(path).mtimeMs;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    return new Journal(path, liveEntries(text, clock()), clock, endedUncleanly(text) ? mtime : null);
  }

  /** The previous supervisor died less than RETRY_WINDOW_MS ago: Docker may still retry its calls. */
  recentCrash(): boolean {
    return this.crashedAt !== null && this.clock() - this.crashedAt < RETRY_WINDOW_MS;
  }

  /** Entries the previous supervisors left for Docker's empty retries. */
  get pending(): readonly Entry[] {
    return this.inherited.filter((e) => this.clock() - e.t < RETRY_WINDOW_MS);
  }

  /**
   * Records a call on receipt; returns its id, or null when it could not be written (e.g. the
   * disk is full: the call goes on unjournaled; only a supervisor crash would then cost it).
   */
  received(method: string, body: string): string | null {
    const id = `${this.prefix}-${++this.seq}`;
    const entry: Entry = { id, t: this.clock(), method, body };
    if (!this.write({ k: 'req', id, t: entry.t, m: method, b: body })) return null;
    this.open.set(id, entry);
    return id;
  }

  /**
   * Marks a call answered; call it just BEFORE the reply is written to Docker (see supervisor.ts).
   * A failed write is reported (`lastError`) and never fails the call; residual: if this
   * supervisor then dies within RETRY_WINDOW_MS, the entry looks unanswered to the next one.
   */
  answered(id: string): void {
    this.open.delete(id);
    this.write({ k: 'ans', id });
  }


  /** Takes the candidate for `retries` empty retries of `method` that came together; see matchEmptyRetries. */
  claim(method: string, retries = 1): Match {
    const m = matchEmptyRetries(this.pending, method, this.clock(), retries);
    const taken = new Set(m.kind === 'replay' ? [m.entry.id] : m.kind === 'redoAll' ? m.entries.map((e) => e.id) : []);
    this.inherited = this.inherited.filter((e) => !taken.has(e.id));
    return m;
  }

  /**
   * `received`, written together with the other calls received in the same turn of the event
   * loop (one write(2) for a burst of calls); resolves, once the line is written, with the id or
   * null. Forward the call only after it resolves.
   */
  async receivedSoon(method: string, body: string): Promise<string | null> {
    const id = `${this.prefix}-${++this.seq}`;
    const entry: Entry = { id, t: this.clock(), method, body };
    // Open before the write, so that a compaction the batch triggers keeps it.
    this.open.set(id, entry);
    if (await this.enqueue({ k: 'req', id, t: entry.t, m: method, b: body })) return id;
    this.open.delete(id);
    return null;
  }

  /** `answered`, batched like receivedSoon; resolves once the line is written (or failed: lastError). */
  async answeredSoon(id: string): Promise<void> {
    this.open.delete(id);
    await this.enqueue({ k: 'ans', id });
  }

  private enqueue(line: Line): Promise<boolean> {
    this.queued.push(`${JSON.stringify(line)}\n`);
    this.flushed ??= new Promise((resolve) =>
      setImmediate(() => {
        const text = this.queued.join('');
        this.queued = [];
        this.flushed = null;
        resolve(this.writeText(text));
      }),
    );
    return this.flushed;
  }

  /** `clean`: a graceful stop (nothing is in flight); the next supervisor then expects no retries. */
  close(clean = false): void {
    if (clean) this.write({ k: 'end' });
    closeSync(this.fd);
  }

  private write(line: Line): boolean {
    return this.writeText(`${JSON.stringify(line)}\n`);
  }

  private writeText(text: string): boolean {
    const buf = Buffer.from(text);
    try {
      writeSync(this.fd, buf);
      this.lastError = null;
    } catch (e) {
      this.lastError = e as Error;
      return false;
    }
    this.bytes += buf.length;
    if (this.bytes > COMPACT_BYTES) {
      const now = this.clock();
      const keep = [...this.pending, ...[...this.open.values()].filter((e) => now - e.t < RETRY_WINDOW_MS)];
      const old = this.fd;
      try {
        this.fd = this.rewrite(keep);
        closeSync(old);
      } catch (e) {
        this.lastError = e as Error; // keep appending to the old file
      }
    }
    return true;
  }

  /** Writes `entries` to a new file and renames it over the journal; returns its fd (append). */
  private rewrite(entries: readonly Entry[]): number {
    const tmp = `${this.path}.new`;
    const fd = openSync(tmp, 'w', 0o600);
    const text = entries.map((e) => JSON.stringify({ k: 'req', id: e.id, t: e.t, m: e.method, b: e.body } satisfies Line) + '\n').join('');
    if (text) writeSync(fd, text);
    renameSync(tmp, this.path);
    this.bytes = fstatSync(fd).size;
    return fd;
  }
}
