// Reads and writes the VXLAN objects of cluster networks: `bridge -j fdb show` and
// `ip -j neigh show` in, one `ip -batch` for devices, one `bridge -batch` for FDB entries and
// port flags, one `ip -batch` for neighbour entries out (in that order: an entry needs its device).
import { DriverError } from '../errors.ts';
import { vxlanFdbLines, vxlanIpLines, type VxlanChange } from './iproute/vxlan.ts';
import { parseLinks } from './parse-links.ts';
import { parseNeighs, parseVxlanFdb, type Neigh, type VxlanFdb } from './parse-vxlan.ts';
import { spawnLean } from './spawn-lean.ts';
import type { Link } from './types.ts';

/** `netns`: run `ip`/`bridge` in that named namespace (`-n`), for tests. */
interface Where {
  readonly netns?: string | undefined;
}

async function run(where: Where, cmd: string, rest: readonly string[], input?: string): Promise<string> {
  const args = [...(where.netns ? ['-n', where.netns] : []), ...rest];
  const r = await spawnLean(cmd, args, 60_000, input);
  if (r.exitCode !== 0) {
    throw new DriverError('LN_ERR_KERNEL_EXEC', `${cmd} ${args.join(' ')} exited with code ${r.exitCode ?? 'none'}`, { cause: new Error(r.stderr) });
  }
  return r.stdout;
}

/** The FDB entries of VXLAN devices `isVxlan` accepts and the neighbour entries of bridges `isBridge` accepts. */
export async function observeVxlan(
  isVxlan: (dev: string) => boolean,
  isBridge: (dev: string) => boolean,
  where: Where = {},
): Promise<{ fdb: VxlanFdb[]; neighs: Neigh[] }> {
  const [fdb, neighs] = await Promise.all([run(where, 'bridge', ['-j', 'fdb', 'show']), run(where, 'ip', ['-j', '-4', 'neigh', 'show'])]);
  return { fdb: parseVxlanFdb(fdb, isVxlan), neighs: parseNeighs(neighs, isBridge) };
}

/** The VXLAN devices, and the MTU of the link that holds `address` (the underlay), null when none does. */
export async function observeVxlanLinks(address: string, where: Where = {}): Promise<{ links: Link[]; underlayMtu: number | null }> {
  const [links, underlay] = await Promise.all([run(where, 'ip', ['-j', '-d', 'link', 'show', 'type', 'vxlan']), underlayMtu(address, where)]);
  return { links: parseLinks(links || '[]'), underlayMtu: underlay };
}

/** The MTU of the link that holds `address` (the underlay); null when no link does. */
export async function underlayMtu(address: string, where: Where = {}): Promise<number | null> {
  const out = await run(where, 'ip', ['-j', 'addr', 'show', 'to', `${address}/32`]);
  const dev = (JSON.parse(out || '[]') as { ifname?: string; mtu?: number }[])[0];
  return dev?.mtu ?? null;
}

/** Applies the changes in three batches; `-force` goes on past a failed line, the exit code says one failed. */
export async function applyVxlan(changes: readonly VxlanChange[], where: Where = {}): Promise<void> {
  const isDevice = (c: VxlanChange) => c.kind === 'vxlan.create' || c.kind === 'vxlan.set';
  const devices = changes.filter(isDevice).flatMap(vxlanIpLines);
  const fdb = changes.flatMap(vxlanFdbLines);
  const neighs = changes.filter((c) => !isDevice(c) && c.kind !== 'vxlan.delete').flatMap(vxlanIpLines);
  const gone = changes.filter((c) => c.kind === 'vxlan.delete').flatMap(vxlanIpLines);
  if (devices.length > 0) await run(where, 'ip', ['-force', '-batch', '-'], `${devices.join('\n')}\n`);
  if (fdb.length > 0) await run(where, 'bridge', ['-force', '-batch', '-'], `${fdb.join('\n')}\n`);
  if (neighs.length > 0) await run(where, 'ip', ['-force', '-batch', '-'], `${neighs.join('\n')}\n`);
  if (gone.length > 0) await run(where, 'ip', ['-force', '-batch', '-'], `${gone.join('\n')}\n`);
}
