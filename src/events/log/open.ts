import { fold } from '../domain/evolve.ts';
import { EventLog, type LogOptions } from './log.ts';
import { LOG_START, readLog, type ScanBase } from './read.ts';
import { readSnapshot } from './snapshot.ts';
import { EventStore, type StoreOptions } from './store.ts';
import { emptyState, type State } from '../domain/types.ts';
import { upcastState } from './upcast.ts';

async function snapshotBase(dir: string): Promise<{ base: ScanBase; state: State }> {
  const snap = await readSnapshot(dir);
  if (!snap) return { base: LOG_START, state: emptyState };
  return { base: { offset: snap.offset, seq: snap.seq, hash: snap.hash, recordOffset: snap.recordOffset }, state: snap.state };
}

/**
 * Opens the log for writing and rebuilds the state: from the snapshot when it lines up with the
 * log, otherwise from the first record.
 */
export async function openStore(dir: string, logOpts: LogOptions, storeOpts: StoreOptions = {}) {
  const snap = await snapshotBase(dir);
  const { log, events, base, repaired } = await EventLog.open(dir, logOpts, snap.base);
  const initial = base.seq > 0 ? snap.state : emptyState;
  // What older versions recorded that this one refuses is read leniently, with warnings.
  const { state, warnings } = upcastState(fold(initial, events));
  const store = new EventStore(log, state, { dir, ...storeOpts });
  return { store, state, events, replayed: events.length, fromSnapshotSeq: base.seq, repaired, warnings };
}

/** The folded state for readers (no lock, no repair), using the snapshot when it lines up. */
export async function loadState(dir: string): Promise<State> {
  const snap = await snapshotBase(dir);
  const { events, base } = await readLog(dir, snap.base);
  return upcastState(fold(base.seq > 0 ? snap.state : emptyState, events)).state;
}
