import type { Addr } from './types.ts';
import type { JsonRecord } from './json-fields.ts';
import {
  asRecord,
  parseJsonRecords,
  requireArray,
  requireNumber,
  requireString,
} from './json-fields.ts';

const WHAT = 'ip -j addr show';

/**
 * Parses `ip -j addr show` output into one `Addr` per address, devices in `ip`'s order.
 * Families other than inet/inet6 are skipped, and so are empty `{}` entries in `addr_info`
 * (older iproute2 releases print them for addresses a family filter such as `-4` left out).
 * @throws DriverError `LN_ERR_KERNEL_PARSE` when the text is not the expected JSON.
 */
export function parseAddrs(json: string): Addr[] {
  return parseJsonRecords(json, WHAT).flatMap((rec, i) => {
    const label = `entry ${i}`;
    const dev = requireString(rec, 'ifname', WHAT, label);
    return requireArray(rec, 'addr_info', WHAT, label).flatMap((item, j) => {
      const addr = toAddr(dev, asRecord(item, WHAT, `${label} addr ${j}`), `${label} addr ${j}`);
      return addr === null ? [] : [addr];
    });
  });
}

function toAddr(dev: string, rec: JsonRecord, label: string): Addr | null {
  if (Object.keys(rec).length === 0) return null;
  const family = requireString(rec, 'family', WHAT, label);
  if (family !== 'inet' && family !== 'inet6') return null;
  const local = requireString(rec, 'local', WHAT, label);
  const prefixlen = requireNumber(rec, 'prefixlen', WHAT, label);
  return { dev, family, cidr: `${local}/${prefixlen}`, scope: requireString(rec, 'scope', WHAT, label) };
}
