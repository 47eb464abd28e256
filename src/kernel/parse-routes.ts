import type { Route } from './types.ts';
import { optionalString, parseJsonRecords, requireString } from './json-fields.ts';

const WHAT = 'ip -j route show';

/**
 * Parses `ip -j [-6] route show` output. `dst` is `default` for a default route (kept as
 * `0.0.0.0/0` or `::/0`) and a bare address for a host route (given its full prefix length).
 * @throws DriverError `LN_ERR_KERNEL_PARSE` when the text is not the expected JSON.
 */
export function parseRoutes(json: string, family: 4 | 6): Route[] {
  if (json.trim() === '') return [];
  return parseJsonRecords(json, WHAT).map((rec, i) => {
    const label = `entry ${i}`;
    const dst = requireString(rec, 'dst', WHAT, label);
    const prefix = dst === 'default' ? (family === 4 ? '0.0.0.0/0' : '::/0') : dst.includes('/') ? dst : `${dst}/${family === 4 ? 32 : 128}`;
    return { family, dst: prefix, dev: optionalString(rec, 'dev', WHAT, label) };
  });
}
