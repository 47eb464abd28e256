import { createHash } from 'node:crypto';
import type { StoredEvent } from '../domain/types.ts';

/** JSON with object keys sorted at every level, so that any reader can recompute a hash. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** sha256 over the canonical JSON of the event without its own `hash` field. */
export function eventHash(event: Omit<StoredEvent, 'hash'> | StoredEvent): string {
  const { hash: _drop, ...rest } = event as StoredEvent;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}
