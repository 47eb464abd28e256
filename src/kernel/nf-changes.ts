// Which nf_tables tables changed, from the kernel's own notices (what `nft monitor` prints). The
// generation (nf-generation.ts) moves with every commit to any table: Docker's iptables-nft
// rules for one of its bridge networks, ours, anyone's. A full observe whose generation moved
// read every firewall part again, our nft table included (`nft -j list table`: ~185 ms at 200
// networks) when only Docker's rules had changed. With the notices it reads again only the parts
// whose tables changed (observe.ts).
//
// The kernel sends, at each commit, a notice per object changed (table, chain, rule, set,
// element, object, flowtable: its family in the nfgenmsg, its table's name in attribute 1) and
// then NFT_MSG_NEWGEN with the new generation, in that order, to every socket bound to
// NFNLGRP_NFTABLES. So once the NEWGEN of generation G has been read, every change up to G has
// been read too, and a part none of them touched is as it was. Anything less than that (no NEWGEN
// of the current generation yet, notices dropped because the socket's buffer was full, a notice
// without a table) and the caller reads everything, as without notices.
import { cString, find, valueEnd } from './netlink-attrs.ts';
import { NETLINK_NETFILTER, openNotices, type NetlinkMessage, type NetlinkNotices } from './netlink.ts';
import { generationOf } from './nf-generation.ts';

const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_NEWGEN = 15;
/** NFNLGRP_NFTABLES (7) as a bind mask. */
const GROUP_NFTABLES = 1 << (7 - 1);
/** The table's name: attribute 1 of every object's notice (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, …). */
const NFTA_TABLE = 1;
/** NFT_MSG_NEWGEN's committer: the id of the thread that sent the batch (big-endian). */
const NFTA_GEN_PROC_PID = 2;
/** nfgenmsg's family, as nft names it. */
const FAMILIES: Readonly<Record<number, string>> = { 1: 'inet', 2: 'ip', 3: 'arp', 5: 'netdev', 7: 'bridge', 10: 'ip6' };

/** What changed in nf_tables since the last look. */
export interface NfChanges {
  /**
   * The tables changed, as nft names them (`ip filter`, `inet ledgernet`), each with the threads
   * whose commits changed it (NFT_MSG_NEWGEN's pid: the committing thread's id; null for notices
   * whose NEWGEN has not come yet).
   */
  readonly tables: ReadonlyMap<string, ReadonlySet<number | null>>;
  /** Some change may be missing from `tables` (notices dropped, a notice naming no table, the first look). */
  readonly unknown: boolean;
  /** The generation the last NEWGEN named; null when none came. */
  readonly generation: number | null;
}

/** Notices read, in order: the tables of the commit whose NEWGEN is still to come, and what the NEWGENs closed. */
export interface NoticesRead {
  readonly tables: Map<string, Set<number | null>>;
  readonly pending: Set<string>;
  generation: number | null;
}

export const noticesRead = (): NoticesRead => ({ tables: new Map(), pending: new Set(), generation: null });

/** Adds what one notice says to `into`: its table, or the commit's end (NEWGEN); false for a notice that names no table. */
export function noteNotice(m: NetlinkMessage, into: NoticesRead): boolean {
  if (m.type >> 8 !== NFNL_SUBSYS_NFTABLES) return true;
  if ((m.type & 0xff) === NFT_MSG_NEWGEN) {
    into.generation = generationOf([m]) ?? into.generation;
    const at = find(m.payload, 4, m.payload.length, NFTA_GEN_PROC_PID);
    const pid = at >= 0 && at + 4 <= m.payload.length ? m.payload.readUInt32BE(at) : null;
    for (const t of into.pending) into.tables.set(t, (into.tables.get(t) ?? new Set()).add(pid));
    into.pending.clear();
    return true;
  }
  // nfgenmsg (family, version, resource id: 4 bytes), then the attributes.
  const family = FAMILIES[m.payload[0] ?? -1];
  const at = m.payload.length >= 4 ? find(m.payload, 4, m.payload.length, NFTA_TABLE) : -1;
  if (family === undefined || at < 0) return false;
  into.pending.add(`${family} ${cString(m.payload, at, valueEnd(m.payload, at))}`);
  return true;
}

/** The tables of notices read so far: those whose commit has not ended (no NEWGEN yet) with committer null. */
export function changedTables(read: NoticesRead): Map<string, Set<number | null>> {
  const out = new Map([...read.tables].map(([t, pids]) => [t, new Set(pids)]));
  for (const t of read.pending) out.set(t, (out.get(t) ?? new Set()).add(null));
  return out;
}

export interface NfChangeWatch {
  /**
   * The changes since the last call. The first call subscribes (nothing before it is known:
   * `unknown`); null when no socket can be had (no koffi or libc, the kernel refused): then
   * nothing is known, ever.
   */
  changes(): Promise<NfChanges | null>;
  /** Closes the socket (a later `changes` is null). */
  close(): void;
}

/**
 * The nf_tables notices of `netns` (a name under /run/netns; undefined: ours). Subscribes at the
 * first `changes()`, not before: on a host whose firewall is not nf_tables nobody asks, and
 * subscribing would load nf_tables' module. The socket pins the namespace: `close` it before
 * the namespace is deleted.
 */
export function watchNfTables(netns?: string): NfChangeWatch {
  let socket: Promise<NetlinkNotices | null> | null = null;
  let closed = false;
  return {
    async changes() {
      if (closed) return null;
      if (socket === null) {
        socket = openNotices(netns, NETLINK_NETFILTER, GROUP_NFTABLES, 'follow nf_tables changes').catch(() => null);
        const s = await socket;
        if (closed) s?.close();
        return s === null || closed ? null : { tables: new Map(), unknown: true, generation: null };
      }
      const s = await socket;
      if (s === null || closed) return null;
      const seen = noticesRead();
      let named = true;
      const whole = s.drain((m) => {
        if (!noteNotice(m, seen)) named = false;
      });
      return { tables: changedTables(seen), unknown: !whole || !named, generation: seen.generation };
    },
    close() {
      closed = true;
      void socket?.then((s) => s?.close());
    },
  };
}
