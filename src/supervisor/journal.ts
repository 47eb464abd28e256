// The supervisor's request journal: every Docker call with a body is written here at once, in the
// callback that read it (front.ts, supervisor.ts), before it is forwarded, and marked answered just
// before the reply is written to Docker. When the supervisor itself dies mid-call, Docker re-sends
// the call with an EMPTY body (moby#39331: the first attempt consumed the body reader); the next
// supervisor answers such a retry from the journal entry the dead one left unanswered
// (retry-match.ts decides which, if any).
//
// The file is JSON lines, each call's line written with its own write(2) (writeSync) at receipt;
// the answers of one turn of the event loop share one (answeredSoon: each still waits for its
// line before its reply goes out). A SIGKILL loses nothing that write(2) has returned (the page
// cache belongs to the kernel, not the process). No fsync: what fsync adds is survival of a power
// loss or kernel crash, and then dockerd and its retries are gone too, so nothing could ever match
// the entry (and entries older than RETRY_WINDOW_MS are dropped anyway). A torn last line (killed
// mid-write) is skipped on load.
import { closeSync, fstatSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { matchEmptyRetries, RETRY_WINDOW_MS, type Entry, type Match } from './retry-match.ts';
import { DriverError } from '../errors.ts';

export const JOURNAL_FILE = 'requests.journal';

/** The calls kept after their answer, for keptEntries. */
const KEPT = new Set(['NetworkDriver.Join', 'NetworkDriver.Leave', 'NetworkDriver.RevokeExternalConnectivity']);

/**
 * Those are kept this long, answered or not (carried into each rewrite of the file): Docker's
 * ProgramExternalConnectivity follows a Join (or a Leave or Revoke of another endpoint) by ms and
 * is retried within RETRY_WINDOW_MS; with margin. src/api/external-retry.ts's RECENT_MS is the same span.
 */
export const KEEP_MS = 60_000;

/** Rewrite the file (keeping only live entries) once it grows past this. */
const COMPACT_BYTES = 4 * 1024 * 1024;

/**
 * `kept`: ends the answered calls a rewrite carries over (keptEntries), so that their answers are
 * not taken for the last ones a dead supervisor wrote (trailingAnswers).
 */
type Line = { k: 'req'; id: string; t: number; m: string; b: string } | { k: 'ans'; id: string } | { k: 'end' } | { k: 'kept' };

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
  for (const line of lines(text)) {
    if (line.k === 'req') open.set(line.id, { id: line.id, t: line.t, method: line.m, body: line.b });
    else if (line.k === 'ans') open.delete(line.id);
  }
  return [...open.values()].filter((e) => now - e.t >= 0 && now - e.t < RETRY_WINDOW_MS).sort((a, b) => a.t - b.t);
}

/**
 * The Joins, Leaves and Revokes of a journal's text younger than KEEP_MS at `now`, answered or
 * not, oldest first: an empty-body ProgramExternalConnectivity retry that matches no entry is
 * answered from the model and these (src/api/external-retry.ts): its Options repeat its Join's,
 * and a recent Leave or Revoke says which other endpoints Docker may be programming.
 */
export function keptEntries(text: string, now: number): Entry[] {
  const kept: Entry[] = [];
  for (const line of lines(text)) {
    if (line.k === 'req' && KEPT.has(line.m) && now - line.t >= 0 && now - line.t < KEEP_MS) kept.push({ id: line.id, t: line.t, method: line.m, body: line.b });
  }
  return kept.sort((a, b) => a.t - b.t);
}

/**
 * The methods of the calls a dead supervisor may have marked answered without the reply reaching
 * Docker: a call's `ans` line is written in the same stretch as its reply (supervisor.ts, front.ts:
 * nothing runs between), so a kill between the two leaves that line among the answers after the
 * last `req` line. Those answers may all have been delivered; none of them before is in doubt.
 */
export function trailingAnswers(text: string): string[] {
  return trailingCalls(text).map((c) => c.method);
}

/** The calls of trailingAnswers, with their bodies. */
function trailingCalls(text: string): { readonly method: string; readonly body: string }[] {
  const calls = new Map<string, { method: string; body: string }>();
  let trailing: string[] = [];
  for (const line of lines(text)) {
    if (line.k === 'req') {
      calls.set(line.id, { method: line.m, body: line.b });
      trailing = [];
    } else if (line.k === 'ans') trailing.push(line.id);
    else trailing = [];
  }
  return trailing.flatMap((id) => calls.get(id) ?? []);
}

/** The well-formed lines of a journal's text; lines that do not parse (a torn tail) are skipped. */
function* lines(text: string): Generator<Line> {
  for (const raw of text.split('\n')) {
    if (raw === '') continue;
    let line: Line;
    try {
      line = JSON.parse(raw) as Line;
    } catch {
      continue;
    }
    if (typeof line !== 'object' || line === null) continue;
    if (line.k === 'req' && !(typeof line.id === 'string' && typeof line.m === 'string' && typeof line.b === 'string' && typeof line.t === 'number')) continue;
    if (line.k === 'ans' && typeof line.id !== 'string') continue;
    yield line;
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
  /** Kept entries (KEPT) younger than KEEP_MS, earlier supervisors' and this one's, answered or not. */
  private kept: Entry[];
  private readonly path: string;
  private readonly clock: () => number;

  /** Lines of receivedSoon/answeredSoon waiting for their batch's write, and that write. */
  private queued: string[] = [];
  private flushed: Promise<boolean> | null = null;

  /** The last write error (null after a write succeeds). */
  lastError: Error | null = null;
  /** When the previous supervisor died without a clean stop (ms since the epoch), or null. */
  readonly crashedAt: number | null;
  /**
   * Methods of the calls the previous supervisor may have marked answered without their reply
   * reaching Docker (trailingAnswers), when it died; empty otherwise.
   */
  readonly undelivered: ReadonlySet<string>;
  /** Those calls, with their bodies (trailingCalls). */
  readonly undeliveredCalls: readonly { readonly method: string; readonly body: string }[];

  private constructor(path: string, inherited: Entry[], kept: Entry[], clock: () => number, crashedAt: number | null, undeliveredCalls: readonly { method: string; body: string }[]) {
    this.crashedAt = crashedAt;
    this.undeliveredCalls = undeliveredCalls;
    this.undelivered = new Set(undeliveredCalls.map((c) => c.method));
    this.path = path;
    this.clock = clock;
    this.inherited = inherited;
    this.kept = kept;
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
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new DriverError('LN_ERR_LOG_IO', `cannot read the request journal ${path}: ${(e as Error).message}; it must be a regular file the daemon can read (move it aside if it is not, e.g. \`mv ${path} ${path}.bad\`), then start again`, { cause: e });
      }
    }
    const now = clock();
    const crashed = endedUncleanly(text);
    return new Journal(path, liveEntries(text, now), keptEntries(text, now), clock, crashed ? mtime : null, crashed ? trailingCalls(text) : []);
  }

  /** The previous supervisor died less than RETRY_WINDOW_MS ago: Docker may still retry its calls. */
  recentCrash(): boolean {
    return this.crashedAt !== null && this.clock() - this.crashedAt < RETRY_WINDOW_MS;
  }

  /** Entries the previous supervisors left for Docker's empty retries. */
  get pending(): readonly Entry[] {
    return this.inherited.filter((e) => this.clock() - e.t < RETRY_WINDOW_MS);
  }

  /** The Joins, Leaves and Revokes received in the last KEEP_MS, answered or not, by this supervisor and earlier ones. */
  get recent(): readonly Entry[] {
    const now = this.clock();
    this.kept = this.kept.filter((e) => now - e.t < KEEP_MS);
    return this.kept;
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
    if (KEPT.has(method)) {
      // Oldest first. Those older than KEEP_MS go once the oldest is twice that old (one pass a
      // minute at most), not only at the next read or rewrite: a busy host's Joins piled up in
      // memory until the file reached COMPACT_BYTES (bench/probes/soak.ts: 640 per 200 containers).
      if (entry.t - (this.kept[0]?.t ?? entry.t) >= 2 * KEEP_MS) this.kept = this.kept.filter((e) => entry.t - e.t < KEEP_MS);
      this.kept.push(entry);
    }
    // Only now: a rewrite carries what `open` and `kept` hold, and this call must be in it.
    this.compactIfLarge();
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
    this.compactIfLarge();
  }

  /**
   * Takes the candidate for `retries` empty retries of `method` that came together; see
   * matchEmptyRetries. Retries refused as ambiguous use up every entry of the method they could
   * have repeated, here and in the file: Docker does not retry a call that got an answer, so an
   * entry left pending would wait for a retry that may never come, and the lone empty retry of a
   * later cut-off call would be answered from it: another call's body (seen in the cut-off probe: a
   * ProgramExternalConnectivity done for an endpoint whose own retry had been refused). A retry of
   * such an entry that still comes is then one no entry matches (the worker's rules, or the Err).
   */
  claim(method: string, retries = 1, inferable = false): Match {
    const m = matchEmptyRetries(this.pending, method, this.clock(), retries, inferable);
    const ambiguous = m.kind === 'ambiguous' ? this.pending.filter((e) => e.method === method).map((e) => e.id) : [];
    const taken = new Set(m.kind === 'replay' ? [m.entry.id] : m.kind === 'redoAll' ? m.entries.map((e) => e.id) : ambiguous);
    this.inherited = this.inherited.filter((e) => !taken.has(e.id));
    for (const id of ambiguous) this.write({ k: 'ans', id });
    this.compactIfLarge();
    return m;
  }

  /**
   * `answered`, written together with the other answers of the same turn of the event loop (one
   * write(2) for a burst); resolves once the line is written (or failed: lastError).
   */
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
        const ok = this.writeText(text);
        this.compactIfLarge();
        resolve(ok);
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
    return true;
  }

  /** Rewrites the file once it is past COMPACT_BYTES, from what is in memory: call it once that holds the line just written. */
  private compactIfLarge(): void {
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
  }

  /**
   * Writes `entries` (unanswered) and the recent kept entries not among them (answered) to a new file
   * and renames it over the journal; returns its fd (append).
   */
  private rewrite(entries: readonly Entry[]): number {
    const tmp = `${this.path}.new`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      return this.fill(fd, tmp, entries);
    } catch (e) {
      // Nothing of a failed rewrite stays behind (the journal itself is unchanged).
      closeSync(fd);
      rmSync(tmp, { force: true });
      throw e;
    }
  }

  private fill(fd: number, tmp: string, entries: readonly Entry[]): number {
    const req = (e: Entry): string => JSON.stringify({ k: 'req', id: e.id, t: e.t, m: e.method, b: e.body } satisfies Line) + '\n';
    const unanswered = new Set(entries.map((e) => e.id));
    const answered = this.recent.filter((e) => !unanswered.has(e.id)).map((e) => req(e) + JSON.stringify({ k: 'ans', id: e.id } satisfies Line) + '\n');
    const text = (answered.length > 0 ? answered.join('') + JSON.stringify({ k: 'kept' } satisfies Line) + '\n' : '') + entries.map(req).join('');
    if (text) writeSync(fd, text);
    renameSync(tmp, this.path);
    this.bytes = fstatSync(fd).size;
    return fd;
  }
}
