// The address this host sends from towards a destination (`ip -j route get`): the default VTEP
// of a cluster member is its source address towards the first NATS server.
import { DriverError } from '../errors.ts';
import { spawnLean } from './spawn-lean.ts';

/** The `prefsrc` of `ip -j route get` output, or null when the route names none. */
export function parseRouteSource(json: string): string | null {
  try {
    const routes = JSON.parse(json) as { prefsrc?: unknown }[];
    const src = routes[0]?.prefsrc;
    return typeof src === 'string' && src !== '' ? src : null;
  } catch {
    return null;
  }
}

/**
 * This host's source address towards `dst` (an IP address).
 * @throws DriverError `LN_ERR_CONFIG` when there is no route or it names no source.
 */
export async function routeSource(dst: string): Promise<string> {
  const r = await spawnLean('ip', ['-j', 'route', 'get', dst], 10_000);
  const src = r.exitCode === 0 ? parseRouteSource(r.stdout) : null;
  if (src === null) {
    throw new DriverError('LN_ERR_CONFIG', `no route towards the first NATS server ${dst} names a source address; give --vtep ADDR (this host's underlay address)`);
  }
  return src;
}
