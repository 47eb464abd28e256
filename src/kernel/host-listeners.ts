// The host's own listening sockets: a published port must not take a host port a program already
// listens on, which Docker's bridge driver refuses too (its docker-proxy cannot bind it). Read on
// Docker's call path (ProgramExternalConnectivity with published ports), so the cost must not grow
// with the host's connections: asked of the kernel through sock_diag (what `ss -lntu` reads), in
// four dumps that hold only TCP sockets in LISTEN (the kernel walks its listening table alone) and
// unconnected UDP sockets. /proc/net/{tcp,tcp6,udp,udp6}, the fallback when netlink cannot be used,
// print every socket of the host: 85-240 ms a call with 18,000 TCP connections open, against
// well under a millisecond (BENCHMARKS.md). Both list the sockets of the reader's network
// namespace, the host's for the daemon.
import { readFile } from 'node:fs/promises';
import { AF_INET, AF_INET6 } from './netlink-attrs.ts';
import { NETLINK_SOCK_DIAG, openNetlink, type Dump, type Netlink } from './netlink.ts';
import { ipv6Text as canonicalV6 } from './parse-link-dump.ts';

/** A socket that listens (TCP, state LISTEN), is bound and unconnected (UDP) or is a bound endpoint (SCTP) on the host. */
export interface HostListener {
  readonly proto: 'tcp' | 'udp' | 'sctp';
  /** Canonical: `0.0.0.0`, `127.0.0.1`, `::`, `::1`; an IPv4-mapped IPv6 address as its IPv4 address. */
  readonly address: string;
  readonly port: number;
}

/** TCP_LISTEN in the `st` column. */
const TCP_LISTEN = '0A';
/** TCP_CLOSE: what an unconnected UDP socket shows (a connected one is 01, a client's). */
const UDP_UNCONNECTED = '07';

/** `0100007F` (IPv4, one host-order 32-bit word) → `127.0.0.1`. */
function ipv4(word: string): string {
  const n = Number.parseInt(word, 16);
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24].join('.');
}

/** The 32 hex digits of tcp6/udp6 (four host-order 32-bit words) → canonical text. */
function ipv6(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (let b = 3; b >= 0; b--) bytes.push(Number.parseInt(word.slice(b * 2, b * 2 + 2), 16));
  }
  return ipv6Text(bytes);
}

/** Sixteen bytes in network order → canonical text; an IPv4-mapped address (`::ffff:a.b.c.d`, an IPv4 socket opened through an IPv6 one) as its IPv4 address. */
function ipv6Text(bytes: readonly number[]): string {
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12).join('.');
  return canonicalV6(Buffer.from(bytes));
}

/**
 * The listeners in the text of one /proc/net file: `proto` says which (tcp or udp), the width of
 * its addresses which family. Lines that are not socket lines (the header) are skipped.
 */
export function parseProcNet(text: string, proto: 'tcp' | 'udp'): HostListener[] {
  const out: HostListener[] = [];
  const want = proto === 'tcp' ? TCP_LISTEN : UDP_UNCONNECTED;
  for (const line of text.split('\n')) {
    const m = /^\s*\d+:\s+([0-9A-Fa-f]{8}|[0-9A-Fa-f]{32}):([0-9A-Fa-f]{4})\s+\S+\s+([0-9A-Fa-f]{2})\s/.exec(line);
    if (!m || m[3]?.toUpperCase() !== want) continue;
    const [addr = '', port = ''] = [m[1], m[2]];
    out.push({ proto, address: addr.length === 8 ? ipv4(addr) : ipv6(addr), port: Number.parseInt(port, 16) });
  }
  return out;
}

/** Every listener in /proc/net's files (a file that cannot be read, e.g. no IPv6: none from it). */
export async function readProcNetListeners(procNet = '/proc/net'): Promise<HostListener[]> {
  const files = [
    ['tcp', 'tcp'],
    ['tcp6', 'tcp'],
    ['udp', 'udp'],
    ['udp6', 'udp'],
  ] as const;
  const texts = await Promise.all(files.map(([f]) => readFile(`${procNet}/${f}`, 'utf8').catch(() => '')));
  return files.flatMap(([, proto], i) => parseProcNet(texts[i] ?? '', proto));
}

/** `0000:0000:0000:0000:0000:0000:0000:0001` (the kernel's %pI6: eight groups, every digit) → canonical text. */
function ipv6Groups(text: string): string | null {
  const groups = text.split(':');
  if (groups.length !== 8 || !groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return null;
  return ipv6Text(groups.flatMap((g) => {
    const n = Number.parseInt(g, 16);
    return [n >> 8, n & 0xff];
  }));
}

/**
 * The SCTP endpoints of /proc/net/sctp/eps (net/sctp/proc.c: ENDPT SOCK STY SST HBKT LPORT UID
 * INODE, then the endpoint's bound addresses, IPv4 as %pI4 and IPv6 as %pI6, each followed by a
 * space; a wildcard bind shows 0.0.0.0 or the all-zero IPv6 address): one listener per bound
 * address. Every endpoint with a port is one, listening or not: docker-proxy's bind(2) of that
 * port would fail as well. Lines that are not endpoint lines (the header) are skipped.
 */
export function parseSctpEps(text: string): HostListener[] {
  const out: HostListener[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 9 || !/^\d+$/.test(f[5] ?? '')) continue;
    const port = Number(f[5]);
    if (port === 0) continue;
    for (const raw of f.slice(8)) {
      const a = raw.replace(/^\*/, '');
      const address = a.includes(':') ? ipv6Groups(a) : /^\d{1,3}(\.\d{1,3}){3}$/.test(a) ? a : null;
      if (address !== null) out.push({ proto: 'sctp', address, port });
    }
  }
  return out;
}

/**
 * The host's SCTP endpoints. /proc/net/sctp/eps exists only while the kernel's sctp module is
 * loaded; without it no program can hold an SCTP port, so a missing file is none. Its size grows
 * with the SCTP endpoints only (not with TCP or UDP sockets).
 */
export async function readSctpListeners(procNet = '/proc/net'): Promise<HostListener[]> {
  const text = await readFile(`${procNet}/sctp/eps`, 'utf8').catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return '';
    throw e;
  });
  return parseSctpEps(text);
}

/** SOCK_DIAG_BY_FAMILY: a dump of one family's sockets of one protocol. */
const SOCK_DIAG_BY_FAMILY = 20;
/** struct inet_diag_req_v2: family, protocol, extensions, pad, the states wanted, a socket id (48 bytes, zero: any). */
const REQ_BYTES = 56;
/** struct inet_diag_msg: family, state, timer, retrans, the socket id, expires, rqueue, wqueue, uid, inode. */
const MSG_BYTES = 72;
/** The states as bits: TCP_LISTEN (10) for TCP; TCP_CLOSE (7), an unconnected socket, for UDP. */
const STATES = { tcp: 1 << 10, udp: 1 << 7 } as const;
const PROTOCOL = { tcp: 6, udp: 17 } as const;

/** The request of one dump: one family, one protocol, only the states a listener is in. */
export function diagRequest(family: 4 | 6, proto: 'tcp' | 'udp'): Buffer {
  const b = Buffer.alloc(REQ_BYTES);
  b.writeUInt8(family === 4 ? AF_INET : AF_INET6, 0);
  b.writeUInt8(PROTOCOL[proto], 1);
  b.writeUInt32LE(STATES[proto], 4);
  return b;
}

/**
 * One answer of a dump (an inet_diag_msg) → the listener, or null for a message too short or of
 * another family. The socket id holds the port and the address in network order.
 */
export function parseDiagMessage(payload: Buffer, proto: 'tcp' | 'udp'): HostListener | null {
  if (payload.length < MSG_BYTES) return null;
  const family = payload.readUInt8(0);
  const port = payload.readUInt16BE(4);
  const src = [...payload.subarray(8, 24)];
  if (family === AF_INET) return { proto, address: src.slice(0, 4).join('.'), port };
  if (family === AF_INET6) return { proto, address: ipv6Text(src), port };
  return null;
}

const DIAG_TIMEOUT_MS = 5_000;
const diagOf = new Map<string, Promise<Netlink | null>>();

/**
 * Every listener of `netns` (undefined: this process's namespace) through sock_diag, or null when
 * netlink cannot be used here (no libc through koffi).
 * @throws DriverError `LN_ERR_KERNEL_EXEC` when the kernel refuses a dump (e.g. no inet_diag module).
 */
export async function readDiagListeners(netns?: string): Promise<HostListener[] | null> {
  const key = netns ?? '';
  let nl = diagOf.get(key);
  if (nl === undefined) diagOf.set(key, (nl = openNetlink(netns, DIAG_TIMEOUT_MS, NETLINK_SOCK_DIAG)));
  const netlink = await nl;
  if (netlink === null) return null;
  const out: HostListener[] = [];
  const dump = (family: 4 | 6, proto: 'tcp' | 'udp'): Dump => ({
    what: `list the ${proto}${family === 6 ? '6' : ''} sockets`,
    type: SOCK_DIAG_BY_FAMILY,
    body: diagRequest(family, proto),
    each: (m) => {
      if (m.type !== SOCK_DIAG_BY_FAMILY) return;
      const l = parseDiagMessage(m.payload, proto);
      if (l !== null) out.push(l);
    },
  });
  await netlink.dump([dump(4, 'tcp'), dump(6, 'tcp'), dump(4, 'udp'), dump(6, 'udp')]);
  return out;
}

/**
 * Every listener of the host: through sock_diag, or from /proc/net when netlink cannot be used
 * or the kernel refuses the dump (the same sockets, at a cost that grows with all of them);
 * `onFallback` hears why, each time.
 */
export async function readHostListeners(onFallback?: (why: string) => void): Promise<HostListener[]> {
  const [diag, sctp] = await Promise.all([
    readDiagListeners().catch((e: unknown) => {
      onFallback?.((e as Error).message);
      return undefined;
    }),
    readSctpListeners(),
  ]);
  if (diag === null) onFallback?.('netlink cannot be used here (libc through koffi did not load)');
  return [...(diag ?? (await readProcNetListeners())), ...sctp];
}
