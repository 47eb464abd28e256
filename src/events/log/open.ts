import { join } from 'node:path';
import { folder } from '../domain/evolve.ts';
import { EventLog, type LogOptions } from './log.ts';
import { checkCovers, LOG_START, liveStart, type ScanBase } from './read.ts';
import { replayLog } from './read-parts.ts';
import { loadSnapshot, mismatchNote, sameState, SNAPSHOT_FILE, uncheckedNote, type Snapshot } from './snapshot.ts';
import { EventStore, type StoreOptions } from './store.ts';
import { emptyState, type State, type StoredEvent } from '../domain/types.ts';
import { newerError, upcastState } from './upcast.ts';
import { archiveChain } from './archive.ts';

/**
 * Where a replay starts: the snapshot's position and state, or the log's start. A snapshot
 * without checksum (older versions) is only used as it is when the events it covers are no
 * longer here (with a warning); otherwise the replay starts at event 1 and compares the state at
 * its seq with it (`check`).
 */
async function snapshotBase(dir: string): Promise<{ base: ScanBase; state: State; check: Snapshot | null; warnings: string[] }> {
  const loaded = await loadSnapshot(dir);
  if (loaded !== null && 'newer' in loaded) throw newerError(join(dir, SNAPSHOT_FILE), loaded.newer);
  if (loaded === null || !('snap' in loaded)) return { base: LOG_START, state: emptyState, check: null, warnings: [] };
  const snap = loaded.snap;
  if (loaded.unchecked && snap.seq > 0) {
    const from = await firstHeld(dir);
    if (from === 0) return { base: LOG_START, state: emptyState, check: snap, warnings: [] };
    if (from < snap.seq) return { ...fromSnapshot(snap), check: null, warnings: [uncheckedNote(dir, snap.seq, from)] };
  }
  return { ...fromSnapshot(snap), check: null, warnings: [] };
}

function fromSnapshot(snap: Snapshot): { base: ScanBase; state: State } {
  const { offset, seq, hash, recordOffset, before } = snap;
  return { base: { offset, seq, hash, recordOffset, ...(before ? { before } : {}) }, state: snap.state };
}

/** The seq after which the events held here (archives and events.log) start: 0 when all are here. */
async function firstHeld(dir: string): Promise<number> {
  const start = await liveStart(dir);
  return start.seq === 0 ? 0 : (await archiveChain(dir, start.seq)).missing;
}

/** Events an open keeps of its replay, for the audit outbox (which keeps no more unpublished ones in memory). */
const KEEP_EVENTS = 10_000;

/**
 * What a replay folds into: the snapshot's state, or the empty one when the scan starts at the
 * log's start. Events are folded as they are read (a long replay holds none of them). With
 * `check` (an unchecked snapshot, replayed from event 1), the state at its seq is compared with
 * its state: `matched` says how that went (null: the events did not reach its seq).
 */
function replayInto(snapState: State, check: Snapshot | null) {
  let f: ReturnType<typeof folder> | null = null;
  let matched: boolean | null = null;
  return {
    consume: (b: ScanBase) => {
      const fold = folder(b.seq > 0 ? snapState : emptyState);
      f = fold;
      if (!check) return fold.add;
      return (ev: StoredEvent) => {
        (f as ReturnType<typeof folder>).add(ev);
        if (ev.seq !== check.seq) return;
        // The folded state is frozen by result(): go on from a copy of it.
        const at = (f as ReturnType<typeof folder>).result();
        matched = sameState(check.state, at);
        f = folder(at);
      };
    },
    result: (base: ScanBase) => (f as ReturnType<typeof folder> | null)?.result() ?? (base.seq > 0 ? snapState : emptyState),
    matched: () => matched,
  };
}

/** A snapshot `check` replayed from event 1 that its events do not reach: the log lost events it had (refused as before). */
function snapshotFrom(check: Snapshot): ScanBase {
  return fromSnapshot(check).base;
}

/**
 * Opens the log for writing and rebuilds the state: from the snapshot when it lines up with the
 * log, otherwise from the first record. `keep`: how many of the last replayed events to return
 * (the audit outbox's; a daemon without one passes 1: holding 10,000 parsed events through a
 * long replay costs a sixth of its CPU in garbage collection). `partBytes` (an operator's command
 * alone): a log the snapshot does not line up with is read and folded in parts of about that many
 * bytes instead of whole (without: whole, its checks on the second core, as a daemon starts).
 */
export async function openStore(dir: string, logOpts: LogOptions, storeOpts: StoreOptions = {}, keep = KEEP_EVENTS, partBytes?: number) {
  const snap = await snapshotBase(dir);
  const into = replayInto(snap.state, snap.check);
  const scan = { consume: into.consume, keep, rehash: 'stored' as const, ...(partBytes === undefined ? {} : { partBytes }) };
  const { log, events, count, base, repaired } = await EventLog.open(dir, logOpts, snap.base, scan);
  if (snap.check) {
    try {
      checkCovers(dir, snapshotFrom(snap.check), { count, base, goodLength: log.sizeBytes });
    } catch (e) {
      await log.close();
      throw e;
    }
    if (into.matched() === false) snap.warnings.push(mismatchNote(dir, snap.check.seq));
  }
  // What older versions recorded that this one refuses is read leniently, with warnings.
  const { state, warnings } = upcastState(into.result(base));
  const store = new EventStore(log, state, { dir, snapshotSeq: base.seq, ...storeOpts });
  // A start that replayed more than a snapshot's worth (no snapshot, or one that did not line up)
  // writes one now, so the next start does not replay it all again.
  const every = storeOpts.snapshotEvery ?? 0;
  if (every > 0 && count >= every) void store.snapshot();
  return { store, state, events, replayed: count, fromSnapshotSeq: base.seq, repaired, warnings: [...snap.warnings, ...warnings] };
}

/**
 * The folded state for readers (no lock, no repair), using the snapshot when it lines up (and is
 * checked); without one, the log and its archives are read and folded in parts (replayLog), so
 * that a long log is not held whole. `partBytes`: about how many bytes of it a part holds (tests).
 */
export async function loadState(dir: string, partBytes?: number): Promise<State> {
  const snap = await snapshotBase(dir);
  const into = replayInto(snap.state, snap.check);
  const res = await replayLog(dir, snap.base, { consume: into.consume, ...(partBytes === undefined ? {} : { partBytes }) });
  if (snap.check) checkCovers(dir, snapshotFrom(snap.check), res);
  return upcastState(into.result(res.base)).state;
}
