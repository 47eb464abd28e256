// Another host's member and endpoint keys (`members.<cluster>.<host>`, `endpoints.<cluster>.<host>.<id>`)
// as this ledgernet reads them, checked here, at the boundary: what is recorded as a peer goes to
// the kernel on every pass (neighbour and FDB entries), so a value that is not a plain address, a
// unicast MAC or a VTEP address is dropped, and said (kv.ts watchPeers), instead of failing a
// kernel request every pass ("10.231.0.200/24 is not an address") or vanishing without a word
// (review of 2026-12-06, finding 5). A dropped value counts as the key's removal: a peer whose
// key turned unreadable is not kept at its old value.
import { contains, isNetworkOrBroadcast, parseIp, parsePrefix } from '../domain/cidr.ts';
import type { PeerChange } from '../domain/peers.ts';
import { hostOfKey } from './host-keys.ts';

/** A member or endpoint key read: the change it makes, and why its value was dropped (then the change is its removal), or null. */
export interface PeerRead {
  readonly change: PeerChange;
  readonly problem: string | null;
}

const shown = (v: unknown) => (v === undefined ? 'missing' : JSON.stringify(v));

/** `v` as an IP address of any family (a VTEP), or why not. */
function vtepProblem(v: unknown): string | null {
  return typeof v === 'string' && parseIp(v) !== null ? null : `"vtep" is ${shown(v)}, not an IP address`;
}

/** `v` as a plain IPv4 address (cluster networks are IPv4) inside `subnet` when known, or why not. */
function addressProblem(v: unknown, subnet: string | null): string | null {
  const a = typeof v === 'string' ? parseIp(v) : null;
  if (a?.family !== 4) return `"address" is ${shown(v)}, not a plain IPv4 address`;
  const p = subnet === null ? null : parsePrefix(subnet);
  if (p && (!contains(p, 4, a.value) || isNetworkOrBroadcast(p, a.value))) return `"address" is ${shown(v)}, not an address of the network's subnet ${subnet}`;
  return null;
}

/** `v` as a unicast MAC address (`02:42:0a:e7:00:c3`), or why not. */
function macProblem(v: unknown): string | null {
  const ok = typeof v === 'string' && /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(v) && (parseInt(v.slice(0, 2), 16) & 1) === 0 && !/^(00:){5}00$/.test(v);
  return ok ? null : `"mac" is ${shown(v)}, not a unicast MAC address`;
}

/** A value as a JSON object, or null when it is not one. */
function objectOf(value: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(value);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * A member or endpoint key of the bucket (`value` null: deleted) as a peer change; null for other
 * keys. `subnet`: the cluster network's subnet when the reader knows it (an endpoint's address
 * must lie in it). A value that cannot be read, or holds a bad field, is its key's removal, with
 * the problem named.
 */
export function readPeer(key: string, value: string | null, subnet: string | null): PeerRead | null {
  const [kind, cluster, token, endpointId, extra] = key.split('.');
  const host = token === undefined ? undefined : hostOfKey(token);
  if (!cluster || !host || extra !== undefined) return null;
  const v = value === null ? null : objectOf(value);
  if (kind === 'members' && endpointId === undefined) {
    const problem = value === null ? null : v === null ? 'not a JSON object' : vtepProblem(v['vtep']);
    const member = v !== null && problem === null ? { host, vtep: v['vtep'] as string } : null;
    return { change: { op: 'member', cluster, host, member }, problem };
  }
  if (kind === 'endpoints' && endpointId) {
    const problem = value === null ? null : v === null ? 'not a JSON object' : (vtepProblem(v['vtep']) ?? addressProblem(v['address'], subnet) ?? macProblem(v['mac']));
    const endpoint = v !== null && problem === null ? { host, vtep: v['vtep'] as string, endpointId, address: v['address'] as string, mac: v['mac'] as string } : null;
    return { change: { op: 'endpoint', cluster, host, endpointId, endpoint }, problem };
  }
  return null;
}
