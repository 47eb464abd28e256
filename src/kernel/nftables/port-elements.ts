// The nftables map elements of a published range (IPv4 and IPv6 alike), cached by the forward's fields.
import type { PortForward } from '../types.ts';
import * as x from './expr.ts';

export interface PortElements {
  readonly addrs: unknown[];
  readonly ports: unknown[];
}
const PORT_CACHE_SIZE = 20_000;
const portCache = new Map<string, PortElements>();

/**
 * The map elements of a published range, one per host port: `key : container address` and
 * `key : container port`. The same forward gets the same element objects pass after pass (a cache
 * by its fields), so comparing them with the table (canon.ts, memoised per object) costs nothing
 * for the ports that did not change: at 500 published ports, most of a pass's time otherwise.
 */
export function portElements(f: PortForward): PortElements {
  const id = `${f.hostIp}|${f.proto}|${f.hostPorts[0]}-${f.hostPorts[1]}|${f.ip}|${f.port}`;
  const known = portCache.get(id);
  if (known) {
    portCache.delete(id);
    portCache.set(id, known);
    return known;
  }
  const [lo, hi] = f.hostPorts;
  const out: PortElements = { addrs: [], ports: [] };
  for (let p = lo; p <= hi; p++) {
    const key = f.hostIp === '' ? x.concat(f.proto, p) : x.concat(f.hostIp, f.proto, p);
    out.addrs.push([key, f.ip]);
    out.ports.push([key, f.port + p - lo]);
  }
  portCache.set(id, out);
  // Least recently used first (a Map keeps insertion order): the cache stays bounded.
  if (portCache.size > PORT_CACHE_SIZE) portCache.delete(portCache.keys().next().value as string);
  return out;
}
