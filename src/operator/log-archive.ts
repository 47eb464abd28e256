// `serve --archive-log-size SIZE`: events.log is archived (EventStore.archive: its events move
// into archive/, the log goes on in a fresh file) once it holds SIZE bytes, by the daemon itself,
// after the group commit that took it there, one archive at a time, off Docker's path (a call
// recording meanwhile waits for the new file: a few fsyncs).
import type { Logger } from 'pino';
import { byLedgernet, type EventStore } from '../events/index.ts';

type Archiving = Pick<EventStore, 'logBytes' | 'archive' | 'onEvents'>;

/** Starts archiving at `maxBytes`; returns what waits for a running archive at shutdown. */
export function startAutoArchive(store: Archiving, maxBytes: number, log: Pick<Logger, 'info' | 'error'>): () => Promise<void> {
  let running: Promise<void> | null = null;
  let stopped = false;
  // After a failure (the disk is full…), not again for a minute: every append would try.
  let quietUntil = 0;
  store.onEvents(() => {
    if (stopped || running || store.logBytes < maxBytes || Date.now() < quietUntil) return;
    running = store
      .archive(byLedgernet('archive-log-size'))
      .then((a) => {
        if (a) log.info({ archive: a.file, first: a.first, last: a.last, bytes: a.bytes }, `event log archived: it reached ${a.bytes} bytes (--archive-log-size ${maxBytes})`);
        if (a?.unrecorded) log.error({ archive: a.file, err: a.unrecorded }, 'the event log was archived, but recording that in the log failed');
      })
      .catch((e: unknown) => {
        quietUntil = Date.now() + 60_000;
        log.error({ err: e }, 'could not archive the event log; trying again in a minute, and events.log keeps growing meanwhile');
      })
      .finally(() => {
        running = null;
      });
  });
  return async () => {
    stopped = true;
    await running;
  };
}
