import { DriverError } from '../errors.ts';
import { EventVersions, type EventType, type StoredEvent } from './types.ts';

/**
 * Brings a record read from the log up to the current version of its type. Every type is at
 * v1 today; when a shape changes, bump EventVersions and add a step here (vN -> vN+1).
 */
export function upcast(raw: unknown, offset: number): StoredEvent {
  if (raw === null || typeof raw !== 'object') {
    throw new DriverError('LN_ERR_LOG_CORRUPT', `event log record at offset ${offset} is not an object`);
  }
  const rec = raw as { type?: unknown; v?: unknown; seq?: unknown };
  if (typeof rec.type !== 'string' || !(rec.type in EventVersions)) {
    throw new DriverError('LN_ERR_LOG_CORRUPT', `event log record at offset ${offset} has unknown type ${String(rec.type)}`);
  }
  const current = EventVersions[rec.type as EventType];
  if (typeof rec.v !== 'number' || rec.v < 1 || rec.v > current) {
    throw new DriverError(
      'LN_ERR_LOG_CORRUPT',
      `event log record at offset ${offset} (${rec.type}) has version ${String(rec.v)}; this ledgernet reads up to v${current}`,
    );
  }
  return raw as StoredEvent;
}
