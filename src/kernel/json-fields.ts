// Small readers for `ip -j` output. Each takes the JSON value and a label naming where it
// sits, so a parse error says which field of which entry was wrong.
import { DriverError } from '../errors.ts';

export type JsonRecord = Readonly<Record<string, unknown>>;

/** Throws the kernel parse error; `detail` goes in `cause`, not in the user message. */
export function parseError(what: string, detail: string): never {
  throw new DriverError('LN_ERR_KERNEL_PARSE', `could not parse the output of ${what}`, {
    cause: new Error(detail),
  });
}

/** Parses `text` as a JSON array of objects. */
export function parseJsonRecords(text: string, what: string): JsonRecord[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new DriverError('LN_ERR_KERNEL_PARSE', `could not parse the output of ${what}`, { cause: e });
  }
  if (!Array.isArray(value)) parseError(what, 'expected a JSON array');
  return value.map((item: unknown, i) => asRecord(item, what, `entry ${i}`));
}

export function asRecord(value: unknown, what: string, label: string): JsonRecord {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    parseError(what, `${label} is not an object`);
  }
  return value as JsonRecord;
}

export function requireString(rec: JsonRecord, key: string, what: string, label: string): string {
  const value = rec[key];
  if (typeof value !== 'string') parseError(what, `${label}: "${key}" is not a string`);
  return value;
}

export function requireNumber(rec: JsonRecord, key: string, what: string, label: string): number {
  const value = rec[key];
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    parseError(what, `${label}: "${key}" is not a number`);
  }
  return value;
}

/** A string field that may be absent; `ip` prints some absent links as JSON null. */
export function optionalString(rec: JsonRecord, key: string, what: string, label: string): string | null {
  const value = rec[key];
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') parseError(what, `${label}: "${key}" is not a string`);
  return value;
}

export function requireStringArray(rec: JsonRecord, key: string, what: string, label: string): string[] {
  const value = rec[key];
  if (!Array.isArray(value) || !value.every((v: unknown) => typeof v === 'string')) {
    parseError(what, `${label}: "${key}" is not an array of strings`);
  }
  return value as string[];
}

export function requireArray(rec: JsonRecord, key: string, what: string, label: string): unknown[] {
  const value = rec[key];
  if (!Array.isArray(value)) parseError(what, `${label}: "${key}" is not an array`);
  return value;
}
