import { hash } from 'node:crypto';
import type { StoredEvent } from '../domain/types.ts';

/** JSON with object keys sorted at every level, so that any reader can recompute a hash. */
export function canonicalJson(value: unknown): string {
  // Written out (no entries/filter/map/join): a replay hashes every event of the log.
  if (Array.isArray(value)) {
    let out = '[';
    // An undefined element reads as nothing, as join() has it (`[1,,2]`): hashes made so stay valid.
    for (let i = 0; i < value.length; i++) out += (i > 0 ? ',' : '') + ((canonicalJson(value[i]) as string | undefined) ?? '');
    return `${out}]`;
  }
  if (value !== null && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    // sort() without a comparator orders strings by UTF-16 code units, as `<` does.
    const keys = Object.keys(obj).sort();
    let out = '{';
    for (const k of keys) {
      const v = obj[k];
      if (v === undefined) continue;
      out += `${out.length > 1 ? ',' : ''}${JSON.stringify(k)}:${canonicalJson(v)}`;
    }
    return `${out}}`;
  }
  return JSON.stringify(value);
}

/** sha256 over the canonical JSON of the event without its own `hash` field. */
export function eventHash(event: Omit<StoredEvent, 'hash'> | StoredEvent): string {
  const { hash: _drop, ...rest } = event as StoredEvent;
  return hash('sha256', canonicalJson(rest), 'hex');
}
