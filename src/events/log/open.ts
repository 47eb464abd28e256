import { folder } from '../domain/evolve.ts';
import { EventLog, type LogOptions } from './log.ts';
import { LOG_START, readLog, type ScanBase } from './read.ts';
import { readSnapshot } from './snapshot.ts';
import { EventStore, type StoreOptions } from './store.ts';
import { emptyState, type State } from '../domain/types.ts';
import { upcastState } from './upcast.ts';

async function snapshotBase(dir: string): Promise<{ base: ScanBase; state: State }> {
  const snap = await readSnapshot(dir);
  if (!snap) return { base: LOG_START, state: emptyState };
  const { offset, seq, hash, recordOffset, before } = snap;
  return { base: { offset, seq, hash, recordOffset, ...(before ? { before } : {}) }, state: snap.state };
}

/** Events an open keeps of its replay, for the audit outbox (which keeps no more unpublished ones in memory). */
const KEEP_EVENTS = 10_000;

/**
 * What a replay folds into: the snapshot's state, or the empty one when the scan starts at the
 * log's start. Events are folded as they are read (a long replay holds none of them).
 */
function replayInto(snapState: State) {
  let f: ReturnType<typeof folder> | null = null;
  return {
    consume: (b: ScanBase) => {
      f = folder(b.seq > 0 ? snapState : emptyState);
      return f.add;
    },
    result: (base: ScanBase) => (f as ReturnType<typeof folder> | null)?.result() ?? (base.seq > 0 ? snapState : emptyState),
  };
}

/**
 * Opens the log for writing and rebuilds the state: from the snapshot when it lines up with the
 * log, otherwise from the first record. `keep`: how many of the last replayed events to return
 * (the audit outbox's; a daemon without one passes 1: holding 10,000 parsed events through a
 * long replay costs a sixth of its CPU in garbage collection).
 */
export async function openStore(dir: string, logOpts: LogOptions, storeOpts: StoreOptions = {}, keep = KEEP_EVENTS) {
  const snap = await snapshotBase(dir);
  const into = replayInto(snap.state);
  const { log, events, count, base, repaired } = await EventLog.open(dir, logOpts, snap.base, { consume: into.consume, keep, rehash: 'stored' });
  // What older versions recorded that this one refuses is read leniently, with warnings.
  const { state, warnings } = upcastState(into.result(base));
  const store = new EventStore(log, state, { dir, snapshotSeq: base.seq, ...storeOpts });
  // A start that replayed more than a snapshot's worth (no snapshot, or one that did not line up)
  // writes one now, so the next start does not replay it all again.
  const every = storeOpts.snapshotEvery ?? 0;
  if (every > 0 && count >= every) void store.snapshot();
  return { store, state, events, replayed: count, fromSnapshotSeq: base.seq, repaired, warnings };
}

/** The folded state for readers (no lock, no repair), using the snapshot when it lines up. */
export async function loadState(dir: string): Promise<State> {
  const snap = await snapshotBase(dir);
  const into = replayInto(snap.state);
  const { base } = await readLog(dir, snap.base, { rehash: 'stored', consume: into.consume, keep: 1 });
  return upcastState(into.result(base)).state;
}
