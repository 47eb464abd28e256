// A cluster network's record (`networks.<name>`) as this ledgernet reads it: checked once, here,
// by every reader (creating, joining, leaving, restoring, forgetting, the drift check), so a
// record of another format (a newer ledgernet's, or one edited by hand) is refused by name where
// it is asked for and skipped everywhere else, never a TypeError deep in a subnet proposal that
// failed every cluster-network create of the cluster (review of 2026-12-06, finding 3).
import { DriverError } from '../../errors.ts';
import { parsePrefix } from '../domain/cidr.ts';
import type { ClusterNetwork } from '../domain/cluster.ts';

/**
 * The format of the network records this ledgernet writes (their `v`). A record without `v` was
 * written by a ledgernet before it had one, in this same format; older ledgernets carry `v`
 * along (they spread the fields they read when they write a record again), so a later format
 * can raise it and be refused by name.
 */
export const NETWORK_FORMAT = 1;

/**
 * A network's record in the bucket: `hosts` are the hosts that have it (each adds and removes
 * itself by compare-and-set), so the last one out retires it. A record without `hosts` (written
 * by a ledgernet before it) is never retired: who has it is not known.
 */
export type StoredNetwork = ClusterNetwork & { readonly hosts?: readonly string[] };

/**
 * What a record says: `record` checked, and `fields` as written (unknown fields of a newer
 * ledgernet included, written back along with any change); or why it cannot be read, and the
 * subnets found in it all the same (taken: never handed out to another network).
 */
export type NetworkRead =
  | { readonly ok: true; readonly record: StoredNetwork; readonly fields: Readonly<Record<string, unknown>> }
  | { readonly ok: false; readonly why: string; readonly subnets: readonly string[] };

const MAX_VNI = (1 << 24) - 1;
const isInt = (v: unknown, lo: number, hi: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
const shown = (v: unknown) => (v === undefined ? 'missing' : JSON.stringify(v));

/** Every IPv4 subnet written anywhere in `value` (whatever the format: what a reader can still keep from being handed out twice). */
function subnetsIn(value: string): string[] {
  const found = value.match(/\d{1,3}(?:\.\d{1,3}){3}\/\d{1,2}/g) ?? [];
  return [...new Set(found.filter((s) => parsePrefix(s)?.family === 4))];
}

/** Why the fields of a record (a JSON object) are not a network record of NETWORK_FORMAT, or null when they are. */
function problemOf(name: string, f: Record<string, unknown>): string | null {
  const v = f['v'];
  if (v !== undefined && !isInt(v, 1, Number.MAX_SAFE_INTEGER)) return `its format "v" is ${shown(v)}`;
  if (typeof v === 'number' && v > NETWORK_FORMAT) return `format ${v}; this ledgernet reads format ${NETWORK_FORMAT}`;
  if (f['name'] !== name) return `"name" is ${shown(f['name'])}, not ${JSON.stringify(name)}`;
  const subnet = typeof f['subnet'] === 'string' ? parsePrefix(f['subnet'], true) : null;
  if (subnet?.family !== 4) return `"subnet" is ${shown(f['subnet'])}, not an IPv4 subnet`;
  if (!isInt(f['vni'], 1, MAX_VNI)) return `"vni" is ${shown(f['vni'])}, not a VNI`;
  if (!isInt(f['blockLen'], subnet.len, 32)) return `"blockLen" is ${shown(f['blockLen'])}, not a prefix length within ${String(f['subnet'])}`;
  const hosts = f['hosts'];
  if (hosts !== undefined && !(Array.isArray(hosts) && hosts.every((h) => typeof h === 'string'))) return `"hosts" is ${shown(hosts)}, not a list of host names`;
  return null;
}

/** The record of cluster network `name` from its value in the bucket, checked. */
export function readNetwork(name: string, value: string): NetworkRead {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return { ok: false, why: 'not JSON', subnets: subnetsIn(value) };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { ok: false, why: 'not a JSON object', subnets: subnetsIn(value) };
  const f = parsed as Record<string, unknown>;
  const why = problemOf(name, f);
  if (why !== null) return { ok: false, why, subnets: subnetsIn(value) };
  const record: StoredNetwork = {
    name,
    subnet: f['subnet'] as string,
    vni: f['vni'] as number,
    blockLen: f['blockLen'] as number,
    // Only named in messages: a record that lost it is still the network's.
    createdBy: typeof f['createdBy'] === 'string' ? f['createdBy'] : 'unknown',
    ...(f['hosts'] === undefined ? {} : { hosts: f['hosts'] as string[] }),
  };
  return { ok: true, record, fields: f };
}

/**
 * The refusal of a network whose record this ledgernet cannot read (joining or creating it, and
 * what a host's log has of it against the bucket): the key, why, and what to do.
 */
export function unreadableNetwork(key: string, why: string): DriverError {
  return new DriverError(
    'LN_ERR_CLUSTER_RECORD',
    `${key} in the cluster's KV bucket is in a format this ledgernet does not read (${why}); ` +
      'upgrade ledgernet on this host (a newer one wrote it), or repair or remove the record if it was edited by hand',
  );
}
