// Design: the full observe, the read of everything ledgernet plans against (on the repair timer,
// at start, after drift; Docker's calls plan against the model instead, kernel/model.ts). It
// stays exact (every object a plan looks at is read every time) and costs as little as that
// allows; at 2,000 endpoints (4,400 links, 200 bridges) it took 176 ms of a 256 ms pass:
// - Few processes, all at once: links, the bridges' addresses, `iptables-save` and
//   `ip6tables-save` (every table in one process per family, not one per table), and nft's table;
//   then route_localnet of the bridges. Starting a process blocks the daemon ~2 ms, more under
//   load.
// - Qdiscs from the kernel's dump in this process (netlink.ts), named from the links read: `tc`
//   dumps every link once more to name devices (~25 of its 40 ms of CPU at 2,000 endpoints).
// - Addresses of bridges only (`ip addr show type bridge`): a plan looks at no others, and
//   listing every link's addresses cost `ip` 45 ms of CPU against 8 ms.
// - The main table's routes in the same netlink trip (a dump of that table per family, filtered
//   by the kernel and again as read, parse-route-dump.ts): a network's subnet route is drift like
//   the rest. ~4 ms at 2,300 routes (1,000 veth pairs up, each with an IPv6 link-local route).
// - The ingress filters of our devices that have an ingress qdisc (an endpoint's egress rate)
//   from a filter dump per device (parse-filter-dump.ts), `tc -batch` only without netlink.
// - Large outputs are read from a file, not a pipe (spawn-lean.ts).
// - The firewall is read only when the nf_tables generation moved (nf-generation.ts): asked
//   first, it is the same as at the last read unless something committed rules since, and then
//   that read is the answer (iptables-save, ip6tables-save and our nft table: two processes and
//   ~20 ms of their CPU at 2,000 endpoints). Only while both iptables-saves have said they are
//   iptables-nft (`(nf_tables)` in their header): the legacy backend's tables are not nf_tables'.
//   When the generation moved, the kernel's notices (nf-changes.ts, the daemon's) say which
//   tables: a part none of them touched is not read again (a Docker network of the bridge driver
//   created or removed changes `ip filter` and `ip nat`, not our nft table: ~185 ms of `nft -j
//   list table` at 200 networks; our own nft apply leaves iptables-save's output as it was).
//   A commit to our table by this process's own libnftables thread (the notices name the
//   committing thread) is not read back either: the kernel answers with the table its
//   transactions made (run-kernel.ts, evolve.ts), for 30 s after a real read.
// - A read whose text is the same as the last time is not parsed again: the parsers are pure and
//   nothing changes what they return (the model is built from new objects), so the last result is
//   the answer. `iptables-save` prints a time stamp in its comments, left out of the comparison.
import { readBridgeNf } from './bridge-nf.ts';
import { parseIptablesSaveAll } from './iptables/parse.ts';
import type { Netlink } from './netlink.ts';
import { netlinkInterfaces, netlinkRedirects } from './observe-netlink.ts';
import { processInterfaces, reusing } from './observe-processes.ts';
import { parseIngressRedirects } from './parse-tc.ts';
import { failOnExit, type Outcome, type Runner } from './runner.ts';
import type { NfChanges } from './nf-changes.ts';
import { NFT_TABLE_LABEL } from './nftables/table.ts';
import type { KernelSnapshot, Link, NftTable, Qdisc } from './types.ts';

export interface ObserveDeps {
  /** Runs the reads (output through a file: `createRunner(…, 'file')`). */
  readonly run: Runner;
  readonly netns: string | undefined;
  /** Devices whose ingress filters are read (by name prefix): the caller's veths. */
  readonly prefixes: readonly string[];
  /**
   * Our nft table. `'ours'`: since the last call only this process's own transactions changed it
   * (as the notices tell), so the kernel may answer with the table those transactions made.
   */
  readonly readNftables: (since?: 'ours') => Promise<NftTable | null | undefined>;
  /** Whether a commit's thread (nf-changes.ts) is this process's libnftables thread. */
  readonly ours?: (pid: number) => boolean;
  /** rtnetlink in the namespace (netlink.ts); null: the interfaces are read with processes. */
  readonly netlink: () => Promise<Netlink | null>;
  /** The nf_tables generation (nf-generation.ts); absent or null: the firewall is read every time. */
  readonly nfGeneration?: () => Promise<number | null>;
  /** The nf_tables changes since the last call (nf-changes.ts); absent or null: every part is read when the generation moved. */
  readonly nfChanges?: () => Promise<NfChanges | null>;
}

/** A firewall part since its last read: changed by someone, unchanged, or changed by this process's transactions only. */
type Change = boolean | 'ours';
const worse = (a: Change, b: Change): Change => (a === true || b === true ? true : a === 'ours' || b === 'ours' ? 'ours' : false);

/** The firewall's reads: iptables-save, ip6tables-save (null: cannot run), our nft table. */
type FirewallReads = readonly [Outcome, Outcome | null, NftTable | null | undefined];

/** The backend an iptables-save header names: true for iptables-nft, false for legacy, null when the output has no header (no table yet). */
export function savedFromNfTables(o: Outcome): boolean | null {
  const header = /^# Generated by \S+ v\S+ \((\w+)\)/m.exec(o.stdout);
  return header === null ? null : header[1] === 'nf_tables';
}

const TABLES = ['filter', 'nat', 'mangle'] as const;

/** `iptables-save` output without its `# Generated by … on <time>` and `# Completed on <time>` lines. */
const withoutComments = (text: string) => text.replace(/^#.*\n/gm, '');

/** The full observe of a kernel (run-kernel.ts): a new snapshot each call. */
export function createObserve(deps: ObserveDeps): () => Promise<KernelSnapshot> {
  const { run, netns, prefixes } = deps;
  const nsArgs = (...args: string[]): string[] => (netns === undefined ? args : ['-n', netns, ...args]);
  // iptables has no namespace flag; `ip netns exec` enters the namespace first.
  const inNetns = (cmd: string, ...args: string[]): [string, string[]] => (netns === undefined ? [cmd, args] : ['ip', ['netns', 'exec', netns, cmd, ...args]]);
  const tables4 = reusing((text) => parseIptablesSaveAll(text, TABLES));
  const tables6 = reusing((text) => parseIptablesSaveAll(text, TABLES));
  const byProcesses = processInterfaces(run, netns);
  const readInterfaces = async () => {
    const nl = await deps.netlink();
    // A dump that fails (the kernel refused it, a read timed out) is read again with processes.
    return nl === null ? byProcesses() : netlinkInterfaces(nl).catch(() => byProcesses());
  };

  // The filters of every device of ours that has an ingress qdisc: a filter dump each through
  // rtnetlink, else (no netlink, a filter kind it does not read, a dump that failed) one `tc -batch`.
  const readRedirects = async (all: readonly Qdisc[], links: readonly Link[]): Promise<Record<string, string[]>> => {
    const devs = all.filter((q) => q.kind === 'ingress' && prefixes.some((p) => q.dev.startsWith(p))).map((q) => q.dev);
    if (devs.length === 0) return {};
    const nl = await deps.netlink();
    const read = nl === null ? null : await netlinkRedirects(nl, devs, links).catch(() => null);
    if (read !== null) return read;
    const input = devs.map((d) => `filter show dev ${d} ingress\n`).join('');
    const o = await run('read ingress filters', 'tc', nsArgs('-j', '-batch', '-'), input);
    failOnExit(o);
    return parseIngressRedirects(o.stdout, devs);
  };
  // What each iptables-save said its backend is (the last header seen), and the last reads with
  // the generation asked before them.
  let nf4: boolean | null = null;
  let nf6: boolean | null = null;
  let last: { readonly generation: number; readonly reads: FirewallReads } | null = null;
  // Per part (iptables-save, ip6tables-save, our nft table): changed since its last read, as the
  // notices tell: by someone (true), by nobody (false), or by this process's own transactions only
  // ('ours': our nft table, which the kernel keeps a model of); and the generation of the last
  // NEWGEN read.
  const changed: Change[] = [true, true, true];
  let noticed: number | null = null;
  const note = (c: NfChanges | null) => {
    if (c === null || c.unknown) changed.fill(true);
    else {
      for (const [t, by] of c.tables) {
        const i = t.startsWith('ip ') ? 0 : t.startsWith('ip6 ') ? 1 : t === NFT_TABLE_LABEL ? 2 : -1;
        const ours = i === 2 && deps.ours !== undefined && [...by].every((pid) => pid !== null && deps.ours?.(pid) === true);
        if (i >= 0) changed[i] = worse(changed[i] ?? true, ours ? 'ours' : true);
      }
    }
    if (c !== null) noticed = c.generation ?? noticed;
  };
  const readFirewall = async (): Promise<FirewallReads> => {
    // Asked only once iptables-save has named nf_tables: on a legacy host there is nothing to
    // ask (and asking would have the kernel try to load nf_tables' module every pass). The
    // notices first, then the generation: a commit between the two moves the generation past
    // the last NEWGEN read, and everything is read.
    if (nf4 === true) note(deps.nfChanges === undefined ? null : await deps.nfChanges());
    const generation = nf4 === true ? ((await deps.nfGeneration?.()) ?? null) : null;
    if (generation !== null && last?.generation === generation) return last.reads;
    // A part is kept when every notice up to this generation has been read and none touched it.
    const before = generation !== null && noticed === generation ? last?.reads : undefined;
    const keep = changed.map((c) => before !== undefined && c === false);
    const nftMode = before !== undefined && changed[2] === 'ours' ? 'ours' : undefined;
    // Cleared now: a change from here on is told at the next call, and read then.
    changed.fill(false);
    const kept = <T>(i: number, old: T | undefined, read: () => Promise<T>): Promise<T> => (keep[i] === true && old !== undefined ? Promise.resolve(old) : read());
    const reads = await Promise.all([
      kept(0, before?.[0], () => run('read the iptables tables', ...inNetns('iptables-save'))),
      // IPv6 may be disabled or ip6tables missing: then there is no IPv6 table to converge,
      // and the IPv4 work goes on without it.
      kept(1, before?.[1], () => run('read the ip6tables tables', ...inNetns('ip6tables-save')).catch(() => null)),
      kept(2, before?.[2], () => deps.readNftables(nftMode)),
    ] as const).catch((e: unknown) => {
      changed.fill(true);
      throw e;
    });
    const [v4, v6] = reads;
    if (v4.exitCode === 0) nf4 = savedFromNfTables(v4) ?? nf4;
    if (v6 !== null && v6.exitCode === 0) nf6 = savedFromNfTables(v6) ?? nf6;
    // ip6tables that cannot run (IPv6 disabled, not installed) stays so: nothing to miss there.
    const v6Nf = v6 === null || v6.exitCode !== 0 ? true : nf6 === true;
    last = generation !== null && v4.exitCode === 0 && nf4 === true && v6Nf ? { generation, reads } : null;
    if (last === null) changed.fill(true);
    return reads;
  };
  // One at a time: a second read decided while the first is reading would take the first's last
  // answer for a part the notices had already told it to read (and cleared).
  let reading: Promise<unknown> = Promise.resolve();
  const readFirewallInTurn = (): Promise<FirewallReads> => {
    const next = reading.then(readFirewall, readFirewall);
    reading = next.catch(() => undefined);
    return next;
  };
  return async () => {
    const [ifs, [v4, v6, nftables], bridgeNf] = await Promise.all([readInterfaces(), readFirewallInTurn(), readBridgeNf(run, netns)]);
    failOnExit(v4);
    const t4 = tables4(withoutComments(v4.stdout));
    const t6 = v6 === null || v6.exitCode !== 0 ? null : tables6(withoutComments(v6.stdout));
    return {
      links: ifs.links,
      addrs: ifs.addrs,
      filter: t4.filter,
      nat: t4.nat,
      filter6: t6?.filter ?? null,
      nat6: t6?.nat ?? null,
      mangle: t4.mangle,
      mangle6: t6?.mangle ?? null,
      qdiscs: ifs.qdiscs,
      ingressRedirects: await readRedirects(ifs.qdiscs, ifs.links),
      routeLocalnet: ifs.routeLocalnet,
      routes: ifs.routes,
      ...(ifs.forwardingOff === undefined ? {} : { forwardingOff: ifs.forwardingOff }),
      ...(ifs.ipv6Forwarding === undefined ? {} : { ipv6Forwarding: ifs.ipv6Forwarding }),
      ...(ifs.acceptRa === undefined ? {} : { acceptRa: ifs.acceptRa }),
      ...(bridgeNf === undefined ? {} : { bridgeNf }),
      ...(nftables === undefined ? {} : { nftables }),
    };
  };
}
