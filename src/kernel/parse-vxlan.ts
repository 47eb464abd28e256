// The forwarding state of cluster networks' VXLAN devices, as `bridge -j fdb show` and
// `ip -j neigh show` report it: the static FDB entries (a remote MAC, or the all-zero MAC of the
// flood list, → a remote VTEP) and the permanent neighbour entries (a remote address → its MAC).
import { optionalString, parseJsonRecords, requireString } from './json-fields.ts';

/**
 * One static FDB entry of a VXLAN device: the device's own (`self`), naming the remote VTEP
 * (`dst`); or the bridge's (`master static`, `dst` null), naming the port a remote MAC is behind.
 */
export interface VxlanFdb {
  readonly dev: string;
  /** `00:00:00:00:00:00` for the flood list (broadcast, multicast, unknown unicast). */
  readonly mac: string;
  readonly dst: string | null;
}

/** One neighbour entry (ARP) on a device. */
export interface Neigh {
  readonly dev: string;
  readonly dst: string;
  readonly lladdr: string | null;
  /** `nud permanent`: never aged out or probed. */
  readonly permanent: boolean;
}

/** The all-zero MAC: FDB entries under it make the flood list. */
export const FLOOD_MAC = '00:00:00:00:00:00';

/**
 * Parses `bridge -j fdb show`; keeps, on devices `keep` accepts, the entries with a `dst` and the
 * bridge's static ones (not the device's own MAC, `permanent`, nor learned ones).
 * @throws DriverError `LN_ERR_KERNEL_PARSE` when the text is not the expected JSON.
 */
export function parseVxlanFdb(json: string, keep: (dev: string) => boolean): VxlanFdb[] {
  const what = 'bridge -j fdb show';
  if (json.trim() === '') return [];
  return parseJsonRecords(json, what).flatMap((rec, i) => {
    const dev = optionalString(rec, 'ifname', what, `entry ${i}`);
    const dst = optionalString(rec, 'dst', what, `entry ${i}`);
    const bridged = rec['master'] !== undefined && rec['state'] === 'static';
    if (dev === null || !keep(dev) || (dst === null && !bridged)) return [];
    return [{ dev, mac: requireString(rec, 'mac', what, `entry ${i}`).toLowerCase(), dst }];
  });
}

/**
 * Parses `ip -j neigh show`, keeping entries on devices `keep` accepts.
 * @throws DriverError `LN_ERR_KERNEL_PARSE` when the text is not the expected JSON.
 */
export function parseNeighs(json: string, keep: (dev: string) => boolean): Neigh[] {
  const what = 'ip -j neigh show';
  if (json.trim() === '') return [];
  return parseJsonRecords(json, what).flatMap((rec, i) => {
    const dev = requireString(rec, 'dev', what, `entry ${i}`);
    if (!keep(dev)) return [];
    const state = Array.isArray(rec['state']) ? rec['state'] : [];
    const lladdr = optionalString(rec, 'lladdr', what, `entry ${i}`);
    return [{ dev, dst: requireString(rec, 'dst', what, `entry ${i}`), lladdr: lladdr?.toLowerCase() ?? null, permanent: state.includes('PERMANENT') }];
  });
}
