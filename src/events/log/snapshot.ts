// Snapshots bound replay time: the folded state at a durable seq, with the byte offset where the
// next record starts and the hash it must link to. The log stays the source of truth: a
// snapshot that does not line up with the log (missing, damaged, ahead of it, chain mismatch)
// is ignored and the whole log is replayed. The file is the snapshot's JSON and a line with the
// sha256 of it (a snapshot written by an older version has none): a damaged one is ignored too,
// and `events verify` names it.
import { hash } from 'node:crypto';
import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { State } from '../domain/types.ts';
import { newerError, newerNetwork, upcastState } from './upcast.ts';
import { canonicalJson } from './hash.ts';

export const SNAPSHOT_FILE = 'snapshot.json';
const FORMAT = 1;

export interface Snapshot {
  readonly format: number;
  readonly seq: number;
  readonly hash: string;
  /** Byte offset in events.log right after the record with `seq`. */
  readonly offset: number;
  /** Byte offset where the record with `seq` starts (to check the snapshot lines up). */
  readonly recordOffset: number;
  /**
   * Written by an archive (archive.ts) before its new events.log replaces the old one: where the
   * same event is in the old file, which stays the log when a crash cuts the archive off there.
   */
  readonly before?: { readonly offset: number; readonly recordOffset: number };
  readonly state: State;
}

/** The checksum line after the JSON: `\nsha256:<hex>\n`. */
const SUM_RE = /\nsha256:([0-9a-f]{64})\n$/;

/**
 * The snapshot in the state dir, or why it cannot be used: absent (null), damaged (a reason), or
 * written by a newer ledgernet (`newer`: its format, above this version's; not damage).
 * `unchecked`: it has no checksum line (versions before 2026-12-06 wrote none), so a changed byte
 * of its state would go unnoticed: a start compares it with the events it covers when they are
 * still here (open.ts), `events verify` too.
 */
export async function loadSnapshot(dir: string): Promise<{ snap: Snapshot; unchecked?: true } | { damaged: string } | { newer: string } | null> {
  let text: string;
  try {
    text = await readFile(join(dir, SNAPSHOT_FILE), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    return { damaged: `cannot be read: ${(e as Error).message}` };
  }
  const sum = SUM_RE.exec(text);
  const json = sum ? text.slice(0, sum.index) : text;
  if (sum && hash('sha256', json) !== sum[1]) return { damaged: 'its checksum does not match its contents' };
  let s: Partial<Snapshot>;
  try {
    s = JSON.parse(json) as Partial<Snapshot>;
  } catch {
    return { damaged: 'it is not JSON' };
  }
  if (s !== null && typeof s === 'object' && typeof s.format === 'number' && Number.isInteger(s.format) && s.format > FORMAT) {
    return { newer: `snapshot format ${s.format}; this ledgernet reads format ${FORMAT}` };
  }
  const ok =
    s !== null &&
    s.format === FORMAT &&
    typeof s.seq === 'number' &&
    typeof s.hash === 'string' &&
    typeof s.offset === 'number' &&
    typeof s.recordOffset === 'number' &&
    (s.before === undefined || (typeof s.before?.offset === 'number' && typeof s.before.recordOffset === 'number')) &&
    s.state !== undefined &&
    s.state.seq === s.seq &&
    s.state.hash === s.hash;
  if (!ok) return { damaged: `it is not a snapshot of format ${FORMAT}` };
  const snap = s as Snapshot;
  for (const n of Object.values(snap.state.networks ?? {})) {
    const newer = newerNetwork(n);
    if (newer !== null) return { newer: `${newer}, in the snapshot's state` };
  }
  return sum ? { snap } : { snap, unchecked: true };
}

/**
 * The snapshot in the state dir; null when there is none or it is damaged (the log is replayed).
 * @throws DriverError `LN_ERR_LOG_NEWER` when a newer ledgernet wrote it (a replay without it
 * would write over it).
 */
export async function readSnapshot(dir: string): Promise<Snapshot | null> {
  const r = await loadSnapshot(dir);
  if (r !== null && 'newer' in r) throw newerError(join(dir, SNAPSHOT_FILE), r.newer);
  return r !== null && 'snap' in r ? r.snap : null;
}

/** Writes atomically: temp file, fsync, rename, fsync of the directory. */
export async function writeSnapshot(dir: string, snap: Omit<Snapshot, 'format'>): Promise<void> {
  const tmp = join(dir, `${SNAPSHOT_FILE}.tmp`);
  const fh = await open(tmp, 'w', 0o600);
  try {
    const json = JSON.stringify({ format: FORMAT, ...snap });
    await fh.writeFile(`${json}\nsha256:${hash('sha256', json)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, SNAPSHOT_FILE));
  const d = await open(dir, 'r');
  await d.sync().finally(() => d.close());
}

/**
 * Whether a snapshot's state is the one its events give (`folded`: events 1 to its seq folded by
 * this version), compared as the JSON a snapshot holds. An older version's state counts as the
 * same when this version's reading of it (upcastState) is.
 */
export function sameState(snapState: State, folded: State): boolean {
  const text = (st: State) => canonicalJson(JSON.parse(JSON.stringify(st)));
  const want = text(snapState);
  return want === text(folded) || want === text(upcastState(folded).state) || text(upcastState(snapState).state) === text(upcastState(folded).state);
}

/** The warning of a start (and the line of `events verify`) for a snapshot without checksum whose state is not its events'. */
export function mismatchNote(dir: string, seq: number): string {
  return (
    `the snapshot ${join(dir, SNAPSHOT_FILE)} has no checksum (an older ledgernet wrote it) and its state differs from the one events 1 to ${seq} give ` +
    `(changed or damaged): it is ignored and the state is rebuilt from every event`
  );
}

/** The warning of a start for a snapshot without checksum whose events are no longer here to check it against. */
export function uncheckedNote(dir: string, seq: number, from: number): string {
  return (
    `the snapshot ${join(dir, SNAPSHOT_FILE)} (events up to ${seq}) has no checksum (an older ledgernet wrote it) and events 1 to ${from} are no longer here ` +
    `(archived and removed) to check it against: its state is used UNCHECKED; a damaged byte in it would go unnoticed (put the archives back to have it checked)`
  );
}
