// Reads and writes the VXLAN objects of cluster networks. Reads go through rtnetlink from this
// process (netlink.ts; a host with cluster networks reads them on every pass, Docker's among
// them): the VXLAN devices in a dump the kernel filters by kind, the underlay's address, each
// device's FDB in a dump the kernel filters by port, each bridge's IPv4 neighbours in a dump the
// kernel filters by device (not the host's whole ARP table); no `ip` or
// `bridge` process. Without koffi the same is read from `ip -j` / `bridge -j`. Writes go the same
// way (iproute/vxlan-rtnl.ts): the requests of the batches they replace, in their order (devices,
// FDB entries and port flags, neighbour entries, deleted devices: an entry needs its device; a device made again is deleted first);
// without koffi one `ip -batch` for devices, one `bridge -batch` for FDB entries and port flags,
// one `ip -batch` for neighbour entries and one for deletions.
import { DriverError } from '../errors.ts';
import { recreated, vxlanFdbLines, vxlanIpLines, vxlanKey, type VxlanChange } from './iproute/vxlan.ts';
import { ipBytes } from './iproute/rtnl.ts';
import { VXLAN_CODEC, vxlanSteps } from './iproute/vxlan-rtnl.ts';
import { openNetlink, openRequests, type Netlink, type NetlinkRequests } from './netlink.ts';
import { collect } from './observe-netlink.ts';
import { cstr, encodeAttrs } from './netlink-attrs.ts';
import { ADDR_DUMP_REQUEST, LINK_DUMP_REQUEST, RTM_GETADDR, RTM_GETLINK, addrOf, linkOf, namedLinks, hostGroupNames, type DumpedAddr, type DumpedLink } from './parse-link-dump.ts';
import { fdbDumpRequest, fdbOf, neighDumpRequest, neighOf, RTM_GETNEIGH } from './parse-neigh-dump.ts';
import { parseLinks } from './parse-links.ts';
import { parseNeighs, parseVxlanFdb, type Neigh, type VxlanFdb } from './parse-vxlan.ts';
import { applyStepsByNetlink, findLink } from './rtnl-apply.ts';
import { spawnLean } from './spawn-lean.ts';
import type { Link } from './types.ts';

/**
 * `netns`: read and write in that named namespace (`-n` for the processes), for tests.
 * `via`: `processes` reads with `ip -j` / `bridge -j` and writes with their batches even when
 * rtnetlink can be used (tests compare the two).
 */
interface Where {
  readonly netns?: string | undefined;
  readonly via?: 'netlink' | 'processes';
}

const TIMEOUT_MS = 60_000;
const IFLA_LINKINFO = 18;
const IFLA_INFO_KIND = 1;

/** A dump of the links of kind vxlan (the kernel filters by IFLA_LINKINFO's kind; `linkOf`'s callers check it too). */
const VXLAN_DUMP_REQUEST = Buffer.concat([LINK_DUMP_REQUEST, encodeAttrs([[IFLA_LINKINFO, [[IFLA_INFO_KIND, cstr('vxlan')]]]])]);

/** rtnetlink for dumps and for requests in `where`; null when it cannot be used (or `via` says processes). */
async function rtnetlink(where: Where): Promise<{ nl: Netlink; rq: NetlinkRequests } | null> {
  if (where.via === 'processes') return null;
  const nl = await openNetlink(where.netns, TIMEOUT_MS).catch(() => null);
  const rq = nl && (await openRequests(where.netns, TIMEOUT_MS, 'read the cluster networks\' devices').catch(() => null));
  return nl && rq ? { nl, rq } : null;
}

/** The link with ifindex `index` (RTM_GETLINK), null when there is none. */
async function linkByIndex(rq: NetlinkRequests, index: number): Promise<DumpedLink | null> {
  const body = Buffer.alloc(16);
  body.writeInt32LE(index, 4);
  const a = await rq.request(RTM_GETLINK, 0, body);
  const g = hostGroupNames();
  return a.errno === 0 ? (a.messages.map((m) => linkOf(m, g)).find((l) => l !== null) ?? null) : null;
}

async function run(where: Where, cmd: string, rest: readonly string[], input?: string): Promise<string> {
  const args = [...(where.netns ? ['-n', where.netns] : []), ...rest];
  const r = await spawnLean(cmd, args, 60_000, input);
  if (r.exitCode !== 0) {
    throw new DriverError('LN_ERR_KERNEL_EXEC', `${cmd} ${args.join(' ')} exited with code ${r.exitCode ?? 'none'}`, { cause: new Error(r.stderr) });
  }
  return r.stdout;
}

/** The FDB entries of the VXLAN devices `vxlans` and the neighbour entries of the bridges `bridges` (by name). */
export async function observeVxlan(vxlans: ReadonlySet<string>, bridges: ReadonlySet<string>, where: Where = {}): Promise<{ fdb: VxlanFdb[]; neighs: Neigh[] }> {
  const kernel = await rtnetlink(where);
  if (kernel === null) {
    const [fdb, neighs] = await Promise.all([run(where, 'bridge', ['-j', 'fdb', 'show']), run(where, 'ip', ['-j', '-4', 'neigh', 'show'])]);
    return { fdb: parseVxlanFdb(fdb, (d) => vxlans.has(d)), neighs: parseNeighs(neighs, (d) => bridges.has(d)) };
  }
  const { nl, rq } = kernel;
  try {
    const indexes = async (names: ReadonlySet<string>) => {
      const out = new Map<number, string>();
      for (const name of names) {
        const at = await findLink(rq, name, '');
        if (typeof at === 'number') out.set(at, name);
      }
      return out;
    };
    const ports = await indexes(vxlans);
    const masters = await indexes(bridges);
    const fdb: VxlanFdb[] = [];
    const neighs: Neigh[] = [];
    // One small dump per device: in turn on one socket (a socket each costs more than the dump).
    await nl.dumpInTurn([
      ...[...masters.keys()].map((bridge) => collect('read a bridge\'s neighbour entries', RTM_GETNEIGH, neighDumpRequest(bridge), (m) => neighOf(m, masters), neighs)),
      ...[...ports.keys()].map((port) => collect('read a VXLAN device\'s FDB', RTM_GETNEIGH, fdbDumpRequest(port), (m) => fdbOf(m, ports), fdb)),
    ]);
    return { fdb, neighs };
  } finally {
    rq.close();
  }
}

/** The VXLAN devices, and the MTU of the link that holds `address` (the underlay), null when none does. */
export async function observeVxlanLinks(address: string, where: Where = {}): Promise<{ links: Link[]; underlayMtu: number | null }> {
  const kernel = await rtnetlink(where);
  if (kernel === null) {
    const [links, underlay] = await Promise.all([run(where, 'ip', ['-j', '-d', 'link', 'show', 'type', 'vxlan']), underlayMtu(address, where)]);
    return { links: parseLinks(links || '[]'), underlayMtu: underlay };
  }
  const { nl, rq } = kernel;
  try {
    const g = hostGroupNames();
    const dumped: DumpedLink[] = [];
    const addrs: DumpedAddr[] = [];
    await nl.dump([
      collect('read the VXLAN devices', RTM_GETLINK, VXLAN_DUMP_REQUEST, (m) => linkOf(m, g), dumped),
      collect('read the underlay\'s address', RTM_GETADDR, ADDR_DUMP_REQUEST, addrOf, addrs),
    ]);
    const vxlans = dumped.filter((l) => l.kind === 'vxlan');
    const names = new Map(vxlans.map((l) => [l.index, l.name]));
    for (const l of vxlans) {
      if (l.masterIndex === null || names.has(l.masterIndex)) continue;
      const master = await linkByIndex(rq, l.masterIndex);
      if (master) names.set(master.index, master.name);
    }
    // By bytes, not text: an IPv6 VTEP may be written in any of its forms.
    const vtep = ipBytes(address);
    const holder = vtep === null ? undefined : addrs.find((a) => ipBytes(a.addr.cidr.split('/')[0] ?? '')?.bytes.equals(vtep.bytes));
    const underlay = holder === undefined ? null : await linkByIndex(rq, holder.ifindex);
    return { links: namedLinks(vxlans, names), underlayMtu: underlay?.mtu ?? null };
  } finally {
    rq.close();
  }
}

/** The MTU of the link that holds `address` (the underlay); null when no link does. */
export async function underlayMtu(address: string, where: Where = {}): Promise<number | null> {
  const out = await run(where, 'ip', ['-j', 'addr', 'show', 'to', `${address}/32`]);
  const dev = (JSON.parse(out || '[]') as { ifname?: string; mtu?: number }[])[0];
  return dev?.mtu ?? null;
}

/**
 * Applies the changes: as rtnetlink requests in the batches' order (iproute/vxlan-rtnl.ts), each
 * sent even after one failed, or without koffi in four batches (`-force` goes on past a failed
 * line).
 * @throws DriverError `LN_ERR_KERNEL_EXEC` naming what failed, once everything else was applied.
 */
export async function applyVxlan(changes: readonly VxlanChange[], where: Where = {}): Promise<void> {
  const rq = where.via === 'processes' ? null : await openRequests(where.netns, TIMEOUT_MS, 'apply VXLAN changes').catch(() => null);
  if (rq === null) return applyByBatches(changes, where);
  try {
    const steps = vxlanSteps(changes);
    const { failures } = await applyStepsByNetlink(rq, steps, (x) => [x.step], VXLAN_CODEC);
    if (failures.length === 0) return;
    const named = failures.slice(0, 3).map((f) => {
      const c = changes[steps[f.index]?.change ?? -1];
      return `${c ? `${c.kind} ${vxlanKey(c)}` : 'a request'}: ${f.message}`;
    });
    const more = failures.length > 3 ? `; and ${failures.length - 3} more` : '';
    throw new DriverError('LN_ERR_KERNEL_EXEC', `${failures.length} of ${steps.length} VXLAN requests failed: ${named.join('; ')}${more}`);
  } finally {
    rq.close();
  }
}

/**
 * The changes in four batches; `-force` goes on past a failed line, the exit code says one
 * failed. A device made again is deleted in the devices' batch, before it is created.
 */
async function applyByBatches(changes: readonly VxlanChange[], where: Where): Promise<void> {
  const remade = recreated(changes);
  const isDevice = (c: VxlanChange) => c.kind === 'vxlan.create' || c.kind === 'vxlan.set';
  const isRemade = (c: VxlanChange) => c.kind === 'vxlan.delete' && remade.has(c.name);
  const devices = [...changes.filter(isRemade), ...changes.filter(isDevice)].flatMap(vxlanIpLines);
  const fdb = changes.flatMap(vxlanFdbLines);
  const neighs = changes.filter((c) => !isDevice(c) && c.kind !== 'vxlan.delete').flatMap(vxlanIpLines);
  const gone = changes.filter((c) => c.kind === 'vxlan.delete' && !isRemade(c)).flatMap(vxlanIpLines);
  if (devices.length > 0) await run(where, 'ip', ['-force', '-batch', '-'], `${devices.join('\n')}\n`);
  if (fdb.length > 0) await run(where, 'bridge', ['-force', '-batch', '-'], `${fdb.join('\n')}\n`);
  if (neighs.length > 0) await run(where, 'ip', ['-force', '-batch', '-'], `${neighs.join('\n')}\n`);
  if (gone.length > 0) await run(where, 'ip', ['-force', '-batch', '-'], `${gone.join('\n')}\n`);
}
