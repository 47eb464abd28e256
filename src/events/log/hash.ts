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

/**
 * The hash of a new event and its record: the canonical JSON of the stored event, i.e. the text
 * `eventHash` hashes with `"hash":"<hex>"` at its sorted place (after `data`, before `host`).
 * A reader then checks the hash over the stored bytes (`storedBytesMatch`) instead of
 * serialising the parsed event again.
 */
export function sealEvent(base: Omit<StoredEvent, 'hash'>): { hash: string; payload: string } {
  const obj = base as unknown as Record<string, unknown>;
  let head = '';
  let tail = '';
  for (const k of Object.keys(obj).sort()) {
    const v = obj[k];
    if (v === undefined || k === 'hash') continue;
    const piece = `${JSON.stringify(k)}:${canonicalJson(v)}`;
    if (k < 'hash') head += (head ? ',' : '') + piece;
    else tail += (tail ? ',' : '') + piece;
  }
  const h = hash('sha256', `{${head}${head && tail ? ',' : ''}${tail}}`, 'hex');
  return { hash: h, payload: `{${head ? `${head},` : ''}"hash":"${h}"${tail ? `,${tail}` : ''}}` };
}

const HASH_FIELD = Buffer.from(',"hash":"');
const HEX_LEN = 64;
/** Room for the bytes of a record without its hash field (grown when a record is larger). */
let scratch = Buffer.alloc(64 * 1024);

/**
 * The hash a record's stored bytes carry, when they are what its writer hashed: the sha256 of
 * the bytes without the `,"hash":"…"` field equals the hex written in that field; else null.
 * A record written by `sealEvent` has one while intact; any changed byte loses it (and so does a
 * record written in another key order, e.g. by older versions): the reader then recomputes
 * `eventHash` of the parsed event, the full check, so a null decides nothing by itself.
 */
export function storedHash(body: Buffer): string | null {
  const at = body.lastIndexOf(HASH_FIELD);
  if (at < 0) return null;
  const hexStart = at + HASH_FIELD.length;
  const after = hexStart + HEX_LEN + 1;
  if (after > body.length || body[after - 1] !== 0x22) return null;
  const n = body.length - (after - at);
  if (scratch.length < n) scratch = Buffer.alloc(n);
  body.copy(scratch, 0, 0, at);
  body.copy(scratch, at, after);
  const h = hash('sha256', scratch.subarray(0, n), 'hex');
  return body.toString('latin1', hexStart, after - 1) === h ? h : null;
}

/** True when `body` carries the hash `claimed` and is what its writer hashed (see storedHash). */
export function storedBytesMatch(body: Buffer, claimed: string): boolean {
  return storedHash(body) === claimed;
}

/** True when the record text's `,"hash":"…"` field (the last one, as storedHash reads it) is `claimed`. */
export function hashFieldIs(payload: string, claimed: unknown): boolean {
  const at = payload.lastIndexOf(',"hash":"');
  const hex = at + HASH_FIELD.length;
  return typeof claimed === 'string' && claimed.length === HEX_LEN && at >= 0 && payload.startsWith(claimed, hex) && payload.charCodeAt(hex + HEX_LEN) === 0x22;
}
