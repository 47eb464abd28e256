// The log is the outbox: a background loop publishes every event after the cursor, in order, and
// advances the cursor only after the stream acknowledged. Docker calls never wait for it.
// Publishes go out a batch at a time without waiting for each ack (JetStream stores one
// connection's messages in the order sent); the acks are then looked at in order and the cursor
// moves over the acknowledged prefix only. After any failure it re-reads the stream's last event
// of this host before publishing again, so an event stored before a lost ack is not stored twice,
// even when the outage outlasted JetStream's duplicate window (msg-id dedup covers only the
// window); when acks of a batch were lost, it also reads which of the batch's events the stream
// holds, so that one lost across a reconnect while later ones were stored is not skipped.
// The cursor moves to the stream's event only when that event has the log's hash at its seq:
// a stream that holds other events under this host's name (the state dir was reset, or another
// host publishes under this name) stops publishing, loudly, instead of skipping events.
// A stream deleted and made again (its created time changed, seen at a resync or asked before each
// batch, as an idle host sees nothing else; its sequence went back; an ack came from behind the
// cursor's position) or emptied (it holds less of this host than was acknowledged,
// and nothing but an operator removes messages from it) is given the whole log again, from seq 1.
// A host whose subject token changed with the escape (web.1 was web_1) and has no event under its
// new one goes on after its last event under the old one (hash-checked as any other).
// An event whose message would not fit the stream's message limit (NATS's max_payload: a range of
// thousands of published ports) is published without its data (`dataelided`), loudly, instead of
// being refused for good with every later event behind it.
// Failures are logged when the state changes (NATS unreachable; reachable but the stream refuses
// events, and why), not on every retry.
import { cloudEventMessage, hostFilter, subjectFor } from './cloudevents.ts';
import { CURSOR_FILE, CursorFile, readCursor } from './cursor.ts';
import { LogParts } from './log-parts.ts';
import { StreamRefused, type PublishAck, type StreamHead } from './publisher.ts';
import { compareStreamHead, type OutboxConflict } from './stream-check.ts';

export type { OutboxLog, OutboxStats } from './outbox-types.ts';
import { UnpublishedTail } from './unpublished.ts';
import { Waker } from './waker.ts';
import type { OutboxOptions, OutboxStats } from './outbox-types.ts';
import { GENESIS_HASH, type StoredEvent } from '../domain/types.ts';

/** Events sent before their acks are looked at: the in-flight window. */
const BATCH = 1024;

/** The event `seq` of events in seq order without a gap (as the log's are), or undefined; no search. */
function atSeq(events: readonly StoredEvent[], seq: number): StoredEvent | undefined {
  const ev = events[seq - (events[0]?.seq ?? 0)];
  return ev?.seq === seq ? ev : undefined;
}

export class Outbox {
  private cursor: number;
  private cursorHash: string;
  /** A stream position before every event after the cursor that the stream may hold (known once synced). */
  private cursorStreamSeq: number | null = null;
  /** A batch lost acks with publishes after them: the next resync reads what the stream holds (see verifyAhead). */
  private unsure = false;
  /** Events after the cursor that the stream was seen to hold (after a gap): not published again. */
  private held = new Map<number, number>();
  private readonly cursorFile: CursorFile;
  /** The default reader of the log file. */
  private readonly parts: LogParts;
  private head: number;
  private readonly tail: UnpublishedTail;
  private synced = false;
  private cursorChecked = false;
  private stopped = false;
  private lastError: string | null = null;
  /** What the last failure was: NATS not reached, or reached but the stream did not take events. */
  private failure: 'unreachable' | 'refused' | null = null;
  /** Publishes the stream refused (a metric). */
  private refusals = 0;
  /** The largest message the stream takes (known at each resync and asked before each batch). */
  private maxMessageBytes = Number.MAX_SAFE_INTEGER;
  /** Events the stream took without their data since the start (each time it took one), and the last of them. */
  private elided = 0;
  private lastElided: { seq: number; id: string } | null = null;
  /** Events sent without their data whose acks were not looked at yet: the size of what was left out. */
  private readonly sentElided = new Map<number, number>();
  /** The stream's created time at the last resync (a new one: the stream was made again). */
  private streamCreated: string | null = null;
  /** The stream's identity was just read (a resync): the next batch needs not ask again (sameStream). */
  private identityFresh = false;
  /** An ack came from behind the cursor's stream position: the stream was made again under us. */
  private streamReset: string | null = null;
  /** Events were taken out of the stream made again: their msg ids count as duplicates for its duplicate window. */
  private removedMisplaced = false;
  /** Said once: this host's events are under an older ledgernet's subjects (see resync). */
  private legacyNoted = false;
  /** The first resync said where publishing starts; later ones log only what changed. */
  private announced = false;
  private conflict: OutboxConflict | null = null;
  private recheckAt = 0;
  private readonly waker = new Waker();
  private loop: Promise<void> | null = null;
  private reporter: NodeJS.Timeout | null = null;
  private readonly o: OutboxOptions;

  private constructor(o: OutboxOptions, cursor: { seq: number; hash: string }) {
    this.o = o;
    this.cursor = cursor.seq;
    this.cursorHash = cursor.hash;
    this.head = o.headSeq ?? o.initial.at(-1)?.seq ?? 0;
    this.tail = new UnpublishedTail(o.maxTail ?? 10_000, o.initial, cursor.seq);
    this.parts = new LogParts(o.stateDir, o.maxTail ?? 10_000);
    this.cursorFile = new CursorFile(o.stateDir, (e) => this.o.log.warn({ err: (e as Error).message }, `could not write ${CURSOR_FILE}; trying again after the next batch`));
  }

  /** Reads the cursor file; call start() to begin publishing. */
  static async create(o: OutboxOptions): Promise<Outbox> {
    const c = await readCursor(o.stateDir);
    return new Outbox(o, c ?? { seq: 0, hash: GENESIS_HASH });
  }

  start(): void {
    if (this.loop) return;
    this.loop = this.run();
    const every = this.o.reportEveryMs ?? 10_000;
    this.reporter = setInterval(() => this.report(), every);
    this.reporter.unref();
  }

  /** Store listener: new durable events. Never blocks and never throws. */
  notify(events: readonly StoredEvent[]): void {
    for (const ev of events) {
      if (ev.seq <= this.head) continue;
      this.head = ev.seq;
      this.tail.offer(ev, this.cursor);
    }
    this.waker.wake();
  }

  stats(): OutboxStats {
    return {
      target: this.o.publisher.describe,
      cursor: this.cursor,
      head: this.head,
      backlog: Math.max(0, this.head - this.cursor),
      connected: (this.synced || this.conflict !== null) && this.lastError === null,
      state: this.conflict ? 'stopped' : this.failure ?? (this.synced ? 'publishing' : 'connecting'),
      refusals: this.refusals,
      elided: this.elided,
      lastElided: this.lastElided?.id ?? null,
      lastError: this.lastError,
      conflict: this.conflict,
    };
  }

  /** Stops publishing (an in-flight publish is given up to 2 s) and closes the publisher. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reporter) clearInterval(this.reporter);
    this.waker.wake();
    if (this.loop) await Promise.race([this.loop, new Promise((r) => setTimeout(r, 2_000).unref())]);
    await this.cursorFile.idle();
    await this.o.publisher.close();
  }

  private async run(): Promise<void> {
    const min = this.o.retryMinMs ?? 250;
    const max = this.o.retryMaxMs ?? 5_000;
    let delay = min;
    while (!this.stopped) {
      if (this.synced && this.cursor >= this.head) {
        await this.waker.idle();
        continue;
      }
      if (this.conflict) {
        // Stopped: look at the stream again now and then (an operator may have purged it), but
        // never again after a publish met another event under this host's id (see stopFor).
        const wait = this.recheckAt - Date.now();
        if (this.recheckAt === Infinity || wait > 0) {
          await this.waker.idle(this.recheckAt === Infinity ? undefined : wait);
          continue;
        }
      }
      try {
        if (!this.synced) await this.resync();
        if (this.conflict) continue;
        const published = await this.drainBatch();
        if (published === 0 && this.cursor < this.head && this.synced) await this.waker.idle(50);
        if ((published > 0 || this.cursor >= this.head) && this.lastError !== null) this.recovered();
        delay = min;
      } catch (e) {
        this.synced = false;
        this.failed(e);
        await this.waker.idle(delay);
        delay = Math.min(delay * 2, max);
      }
    }
  }

  private async resync(): Promise<void> {
    if (!this.cursorChecked) await this.checkCursor();
    const { head: streamHead, stream, legacy } = await this.o.publisher.resume(this.o.host);
    const have = streamHead?.seq ?? 0;
    const remade =
      this.streamReset ??
      (this.streamCreated !== null && stream.created !== this.streamCreated
        ? `its created time changed from ${this.streamCreated} to ${stream.created}`
        : this.cursorStreamSeq !== null && stream.lastSeq < this.cursorStreamSeq
          ? `its last position ${stream.lastSeq} is behind ${this.cursorStreamSeq}, where it stored ${this.o.host}:${this.cursor}`
          : null);
    this.streamCreated = stream.created;
    this.maxMessageBytes = stream.maxMessageBytes;
    this.streamReset = null;
    const emptied = remade === null && have < this.cursor && stream.keepsAll;
    if (remade !== null || emptied) {
      const why = remade !== null ? `was deleted and made again (${remade})` : `holds ${have} of this host's events but ${this.cursor} were acknowledged, and nothing but an operator removes messages from it (purged?)`;
      this.o.log.warn({ stream: this.o.publisher.stream, cursor: this.cursor, streamHolds: have }, `the stream ${this.o.publisher.stream} ${why}; publishing the log again from its start`);
      this.cursor = 0;
      this.cursorHash = GENESIS_HASH;
      this.tail.invalidate();
      this.held.clear();
      // What the stream holds of this host now (published since it was made again) is read, not assumed.
      this.cursorStreamSeq = 0;
      this.unsure = true;
      await this.saveCursor();
      if (this.removedMisplaced) {
        // Published again at once, a removed event would be taken as a duplicate (and not stored)
        // while later ones are stored: out of order. Wait until the stream forgot its msg id.
        this.removedMisplaced = false;
        this.o.log.info({ ms: stream.duplicateWindowMs }, 'waiting out the stream\'s duplicate window before publishing again (the removed events\' msg ids)');
        const until = Date.now() + stream.duplicateWindowMs + 100;
        while (!this.stopped && Date.now() < until) await this.waker.idle(until - Date.now());
      }
    }
    const conflict = streamHead && (await this.compare(streamHead));
    if (conflict) {
      this.stopFor(conflict, true);
      return;
    }
    if (this.conflict) {
      this.o.log.info({ cursor: this.cursor }, 'the stream matches the log again; publishing resumes');
      this.conflict = null;
    }
    if (legacy !== undefined && streamHead && !this.legacyNoted) {
      // An upgrade from a ledgernet before the one-to-one escape (web.1 was web_1): its events stay
      // where they are, and the audit reader and verifier read both subjects as one history.
      this.legacyNoted = true;
      this.o.log.info(
        { legacy, streamHolds: have, cursor: this.cursor },
        `the stream holds ${this.o.host}'s events up to ${this.o.host}:${have} under ${legacy}, the subjects of an older ledgernet; publishing goes on after them under ${hostFilter(this.o.host)}`,
      );
    }
    // Whatever is published from here on is stored after the stream's last event of this host.
    const starting = this.cursorStreamSeq === null;
    if (!this.unsure) this.cursorStreamSeq = streamHead?.streamSeq ?? 0;
    // What the stream holds after the cursor is read under this host's own subjects only: under
    // an older ledgernet's, the cursor moves to its last event, as that ledgernet did.
    const ahead = streamHead !== null && have > this.cursor && legacy === undefined;
    if (ahead && starting && !this.unsure) {
      await this.resumeAtStart(streamHead);
    } else if (ahead && (this.unsure || this.held.size > 0)) {
      await this.verifyAhead(streamHead);
    } else if (streamHead && have > this.cursor) {
      this.o.log.info({ from: this.cursor, to: have }, 'the stream already holds these events (acknowledged before a lost ack or a restart); resuming after them');
      this.cursor = have;
      this.cursorHash = streamHead.hash;
      this.cursorStreamSeq = streamHead.streamSeq;
      await this.saveCursor();
    } else if (have < this.cursor && !this.announced) {
      this.o.log.warn({ streamSeq: have, cursor: this.cursor }, 'the stream holds fewer of this host\'s events than were acknowledged (its limits or retention removed them?); not republishing them');
    }
    this.unsure = false;
    this.synced = true;
    this.identityFresh = true;
    if (this.announced) return;
    this.announced = true;
    this.o.log.info({ target: this.o.publisher.describe, cursor: this.cursor, backlog: this.head - this.cursor }, 'publishing events to NATS');
  }

  // A cursor file that is not this log's (a log replaced under it) would skip events: forget it,
  // and let the stream say where to resume.
  private async checkCursor(): Promise<void> {
    if (this.cursor > 0) {
      if ((await this.logHashAt(this.cursor)) !== this.cursorHash) {
        this.o.log.warn({ cursor: this.cursor, head: this.head }, `${CURSOR_FILE} does not match the event log (the log was replaced?); ignoring it`);
        this.cursor = 0;
        this.cursorHash = GENESIS_HASH;
        this.tail.invalidate();
      }
    }
    this.cursorChecked = true;
  }

  /** Null when the stream's event at `theirs.seq` is the log's; else why not. */
  private compare(theirs: StreamHead): Promise<OutboxConflict | null> {
    return compareStreamHead(theirs, {
      stream: this.o.publisher.stream,
      host: this.o.host,
      head: this.head,
      logHashAt: (seq) => (seq === this.cursor ? this.cursorHash : this.logHashAt(seq)),
    });
  }

  // From memory where it can: the start's head, the tail, the events read at start; else the file
  // that holds `seq` alone (a clean start keeps no event in memory: reading the whole history,
  // archives included, would fail once an archive was deleted, as it may be once published).
  private async logHashAt(seq: number): Promise<string | undefined> {
    if (seq > this.head) return undefined;
    const near = this.knownHash(seq);
    if (near !== undefined) return near;
    return this.o.readAll ? (await this.o.readAll()).find((e) => e.seq === seq)?.hash : this.parts.hashAt(seq);
  }

  /** The hash of `seq` when memory holds it (the start's head, the tail, the events read at start). */
  private knownHash(seq: number): string | undefined {
    if (seq === this.o.headSeq && this.o.headHash !== undefined) return this.o.headHash;
    return (this.tail.find(seq) ?? atSeq(this.o.initial, seq))?.hash;
  }

  /** The log's hashes of the events after `from` up to `to` (not past the head): from memory, the rest read once, in order. */
  private async logHashes(from: number, to: number): Promise<Map<number, string>> {
    const out = new Map<number, string>();
    const upTo = Math.min(to, this.head);
    let firstMissing = 0;
    for (let seq = from + 1; seq <= upTo; seq++) {
      const h = this.knownHash(seq);
      if (h === undefined) firstMissing ||= seq;
      else out.set(seq, h);
    }
    if (firstMissing === 0) return out;
    if (this.o.readAll) {
      for (const e of await this.o.readAll()) if (e.seq >= firstMissing && e.seq <= upTo) out.set(e.seq, e.hash);
      return out;
    }
    for (let at = firstMissing - 1; at < upTo; ) {
      const part = await this.parts.after(at, upTo);
      if (part.length === 0) break;
      for (const e of part) out.set(e.seq, e.hash);
      at = part.at(-1)?.seq ?? upTo;
    }
    return out;
  }

  // `recheck`: the conflict was seen in the stream's last event of this host, so looking again
  // later shows whether it is gone. A conflict met on publish (the stream held another event
  // under this event's msg id) lasts until a restart: a publisher that keeps trying would store
  // its event a second time once the duplicate window has passed.
  private stopFor(conflict: OutboxConflict, recheck: boolean): void {
    if (this.conflict?.message !== conflict.message) {
      this.o.log.error({ reason: conflict.reason, cursor: this.cursor, head: this.head }, conflict.message);
    }
    this.conflict = conflict;
    this.synced = false;
    this.recheckAt = recheck && this.recheckAt !== Infinity ? Date.now() + (this.o.recheckMs ?? 30_000) : Infinity;
  }

  // One batch: its first event alone (after a resync, that is where an event the stream already
  // holds shows up, and a conflict stops publishing before anything else is sent), then the rest
  // all at once.
  private async drainBatch(): Promise<number> {
    const batch = await this.next(BATCH);
    if (batch.length > 0 && !(await this.sameStream())) return 0;
    let n = 0;
    try {
      n = await this.publishWave(batch.slice(0, 1));
      if (n === 1) n += await this.publishWave(batch.slice(1));
    } finally {
      if (n > 0) {
        this.tail.publishedUpTo(this.cursor);
        for (const seq of this.held.keys()) if (seq <= this.cursor) this.held.delete(seq);
        for (const seq of this.sentElided.keys()) if (seq <= this.cursor) this.sentElided.delete(seq);
        this.cursorFile.writeSoon({ seq: this.cursor, hash: this.cursorHash });
      }
    }
    return n;
  }

  /**
   * Whether the stream is still the one the last resync saw, asked before each batch (after a
   * resync, its own answer counts). A stream deleted and made again while this host was idle (by
   * an operator, or by another host's publisher, whose next publish made it) takes this host's
   * next event after the other hosts' events, at a position that may well be past the cursor's
   * in the old stream: the ack would not tell, and this host's earlier events would be missing
   * from the new stream for good. When it changed, the next resync publishes the log again.
   */
  private async sameStream(): Promise<boolean> {
    if (this.identityFresh) {
      this.identityFresh = false;
      return true;
    }
    const now = await this.o.publisher.identity();
    if (now) this.maxMessageBytes = now.maxMessageBytes;
    const changed =
      now === null
        ? 'it no longer exists'
        : this.streamCreated !== null && now.created !== this.streamCreated
          ? `its created time changed from ${this.streamCreated} to ${now.created}`
          : this.cursorStreamSeq !== null && now.lastSeq < this.cursorStreamSeq
            ? `its last position ${now.lastSeq} is behind ${this.cursorStreamSeq}, where it stored ${this.o.host}:${this.cursor}`
            : null;
    if (changed === null) return true;
    this.streamReset = changed;
    this.synced = false;
    return false;
  }

  /** Sends every event of `wave`, then moves the cursor over the acknowledged prefix; throws the first failure. */
  private async publishWave(wave: readonly StoredEvent[]): Promise<number> {
    const acks = await Promise.allSettled(wave.map((ev) => this.publishOnce(ev)));
    let n = 0;
    for (const [i, ev] of wave.entries()) {
      const ack = acks[i] as PromiseSettledResult<PublishAck>;
      if (this.stopped) break;
      if (ack.status === 'rejected') {
        // A lost ack: a later message of the wave may be stored although this one is not.
        this.unsure = i < wave.length - 1;
        throw ack.reason;
      }
      const fresh = ack.value.held === null && !this.held.has(ev.seq);
      if (fresh && this.cursorStreamSeq !== null && ack.value.streamSeq <= this.cursorStreamSeq) {
        await this.misplaced(wave, acks, i);
        break;
      }
      const conflict = ack.value.held && (await this.compare(ack.value.held));
      if (conflict) {
        this.stopFor(conflict, false);
        break;
      }
      this.cursor = ev.seq;
      this.cursorHash = ev.hash;
      this.cursorStreamSeq = ack.value.streamSeq;
      const left = this.sentElided.get(ev.seq);
      if (left !== undefined) this.noteElided(ev, left);
      n += 1;
    }
    return n;
  }

  /**
   * The stream stored `wave[from]` at a position behind the cursor's: it was deleted and made again
   * since. That event and the wave's later ones are in the new stream before the log's first
   * events: they are removed, and the next resync publishes the log again from its start.
   */
  private async misplaced(wave: readonly StoredEvent[], acks: PromiseSettledResult<PublishAck>[], from: number): Promise<void> {
    const at = (acks[from] as PromiseFulfilledResult<PublishAck>).value.streamSeq;
    this.streamReset = `it stored ${wave[from]?.id ?? '?'} at position ${at}, behind ${this.cursorStreamSeq}, where it stored ${this.o.host}:${this.cursor}`;
    this.synced = false;
    for (let j = from; j < wave.length; j++) {
      const a = acks[j];
      const ev = wave[j];
      if (a?.status !== 'fulfilled' || a.value.held !== null || !ev || this.held.has(ev.seq)) continue;
      await this.o.publisher.remove(a.value.streamSeq).then(
        () => (this.removedMisplaced = true),
        (e: unknown) => {
          this.o.log.warn({ err: (e as Error).message, streamSeq: a.value.streamSeq }, `could not remove ${ev.id} from the stream made again; it stays before the log's first events`);
        },
      );
    }
  }

  /** Publishes one event, unless the stream was seen to hold it already (verifyAhead). */
  private publishOnce(ev: StoredEvent): Promise<PublishAck> {
    const streamSeq = this.held.get(ev.seq);
    if (streamSeq !== undefined) return Promise.resolve({ streamSeq, held: null });
    const msg = cloudEventMessage(ev, this.maxMessageBytes);
    if (msg.elided !== null) this.sentElided.set(ev.seq, msg.elided);
    return this.o.publisher.publish(subjectFor(ev.host, ev.type), msg.event, msg.body);
  }

  /** Said once the stream took it (not on a send that failed): published without its data, and where that is. */
  private noteElided(ev: StoredEvent, bytes: number): void {
    this.sentElided.delete(ev.seq);
    this.elided += 1;
    this.lastElided = { seq: ev.seq, id: ev.id };
    this.o.log.warn(
      { seq: ev.seq, type: ev.type, dataBytes: bytes, maxMessageBytes: this.maxMessageBytes, stream: this.o.publisher.stream },
      `event ${ev.id} (${ev.type}) does not fit the stream's message limit of ${this.maxMessageBytes} bytes (its data: ${bytes} bytes): published without its data (dataelided); its hash links the chain and its content is in the log (ledgernet events --since ${ev.seq}); raise NATS's max_payload to publish such events whole`,
    );
  }

  /**
   * After a batch lost acks: the events the stream holds after the cursor's, in stream order, up
   * to its last event of this host (`head`). The cursor moves over those that follow it without a
   * gap and have the log's hashes; those after a gap are remembered, so only the missing ones are
   * published (no duplicate even after the duplicate window). Unknown position of the cursor's
   * event (the stream was purged): publish again from the cursor, and the duplicate window
   * answers for what the stream holds.
   */
  private async verifyAhead(head: StreamHead): Promise<void> {
    if (this.cursorStreamSeq === null) return;
    const ours = await this.logHashes(this.cursor, head.seq);
    // Messages that are not the log's (another host publishing under this name, an event stored
    // twice) may sit among them: read up to the head's position, within a bound.
    const most = 2 * (head.seq - this.cursor) + BATCH;
    let at = this.cursorStreamSeq;
    for (let read = 0; at < head.streamSeq && read < most; ) {
      const found = await this.o.publisher.heldAfter(this.o.host, at, Math.min(BATCH, most - read));
      if (found.length === 0) break;
      read += found.length;
      for (const h of found) {
        at = h.streamSeq;
        if (h.streamSeq > head.streamSeq) break;
        if (h.seq <= this.cursor || h.hash !== ours.get(h.seq)) continue;
        if (h.seq === this.cursor + 1) {
          this.cursor = h.seq;
          this.cursorHash = h.hash;
          this.cursorStreamSeq = h.streamSeq;
        } else this.held.set(h.seq, h.streamSeq);
      }
    }
    if (this.held.size > 0) this.o.log.warn({ cursor: this.cursor, held: this.held.size }, 'the stream holds events after a gap (acks lost across a reconnect); publishing only the missing ones');
    await this.saveCursor();
  }

  /**
   * A start whose cursor is behind the stream's last event of this host (`head`): those events
   * were acknowledged before a stop or a crash cut off the cursor's write, or sent in a last
   * window whose acks were never looked at (a stop gives in-flight publishes 2 s, an ack may take
   * longer), and a reconnect may have lost one of that window while later ones were stored: what
   * the stream holds is not a prefix of what was sent. So the stream is read from the cursor's
   * event on, as after lost acks (verifyAhead): the cursor moves over the events that follow it
   * without a gap and carry the log's hashes, and a missing one is published again. Acks are
   * looked at in order and a gap met while running is handled then, so only the last window can
   * hold one: a cursor further behind (its file deleted, or an old one restored) first moves to
   * the event two windows before the stream's last, when the stream holds it with the log's hash.
   */
  private async resumeAtStart(head: StreamHead): Promise<void> {
    const from = Math.max(this.cursor, head.seq - 2 * BATCH);
    let at = await this.positionOf(from, head.streamSeq);
    if (from > this.cursor) {
      const [ev] = at > 0 ? await this.o.publisher.heldAfter(this.o.host, at - 1, 1) : [];
      if (ev?.seq === from && ev.streamSeq === at && ev.hash === (await this.logHashAt(from))) {
        this.o.log.info({ from: this.cursor, to: from }, 'the stream already holds these events (acknowledged before a restart); checking the ones after them');
        this.cursor = from;
        this.cursorHash = ev.hash;
      } else at = await this.positionOf(this.cursor, head.streamSeq);
    }
    this.cursorStreamSeq = at;
    const was = this.cursor;
    await this.verifyAhead(head);
    if (this.cursor > was) this.o.log.info({ from: was, to: this.cursor }, 'the stream already holds these events (acknowledged before a lost ack or a restart); resuming after them');
  }

  /**
   * The stream position of this host's event `seq`, or of the last one before it that the stream
   * holds (0: none), found by bisecting the positions up to `hi` (a few reads, however long the
   * stream): a host's events are stored in seq order, so the seq of its first event after a
   * position never falls as the position grows.
   */
  private async positionOf(seq: number, hi: number): Promise<number> {
    let lo = 0;
    if (seq <= 0) return lo;
    while (lo < hi) {
      const mid = Math.floor((lo + hi) / 2);
      const [next] = await this.o.publisher.heldAfter(this.o.host, mid, 1);
      if (!next || next.seq > seq) hi = mid;
      else lo = Math.max(mid + 1, next.streamSeq);
    }
    return lo;
  }

  // The events after the cursor, in order: from the in-memory tail, else from the log file.
  private next(n: number): Promise<StoredEvent[]> {
    return this.tail.next(n, this.cursor, this.head, (cursor, head) => (this.o.readAll ? this.o.readAll() : this.parts.after(cursor, head)));
  }

  private async saveCursor(): Promise<void> {
    await this.cursorFile.write({ seq: this.cursor, hash: this.cursorHash });
  }

  // Logged when the state changes (reached or not; refused, and why), never on every retry.
  private failed(e: unknown): void {
    const msg = e instanceof Error ? e.message : String(e);
    const kind = e instanceof StreamRefused ? 'refused' : 'unreachable';
    const ctx = { err: msg, backlog: this.head - this.cursor, target: this.o.publisher.describe };
    if (kind === 'refused') {
      this.refusals += 1;
      if (this.failure !== 'refused' || this.lastError !== msg) {
        this.o.log.error(
          { ...ctx, stream: this.o.publisher.stream },
          `NATS is reachable but stream ${this.o.publisher.stream} does not take events: ${msg}; Docker calls are not affected, events wait in the log and are sent once the stream takes them`,
        );
      } else this.o.log.debug({ err: msg }, 'the stream still refuses events');
    } else if (this.failure !== 'unreachable') {
      this.o.log.warn(ctx, 'cannot publish to NATS; Docker calls are not affected, events wait in the log and are sent when NATS is back');
    } else this.o.log.debug({ err: msg }, 'NATS still unreachable');
    this.failure = kind;
    this.lastError = msg;
  }

  private recovered(): void {
    if (this.failure === 'refused') this.o.log.info({ cursor: this.cursor, backlog: this.head - this.cursor }, `stream ${this.o.publisher.stream} takes events again; publishing the backlog`);
    else this.o.log.info({ cursor: this.cursor }, 'NATS is reachable again; publishing the backlog');
    this.lastError = null;
    this.failure = null;
  }

  private report(): void {
    const backlog = this.head - this.cursor;
    if (backlog > 0 && this.lastError !== null) {
      this.o.log.warn({ backlog, cursor: this.cursor, head: this.head, err: this.lastError }, `the audit stream is ${backlog} event(s) behind the log`);
    }
  }
}
