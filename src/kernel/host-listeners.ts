// The host's own listening sockets, read from /proc/net/{tcp,tcp6,udp,udp6} (no process spawned,
// a few KiB read): a published port must not take a host port a program already listens on,
// which Docker's bridge driver refuses too (its docker-proxy cannot bind it). The files list the
// sockets of the reader's network namespace, the host's for the daemon.
import { readFile } from 'node:fs/promises';

/** A socket that listens (TCP, state LISTEN) or is bound and unconnected (UDP) on the host. */
export interface HostListener {
  readonly proto: 'tcp' | 'udp';
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

/** Eight 16-bit groups, `::` for the longest run of two or more zero groups (RFC 5952). */
function formatV6(groups: readonly number[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = (gs: readonly number[]) => gs.map((g) => g.toString(16)).join(':');
  return best < 0 ? hex(groups) : `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
}

/** The 32 hex digits of tcp6/udp6 (four host-order 32-bit words) → canonical text. */
function ipv6(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (let b = 3; b >= 0; b--) bytes.push(Number.parseInt(word.slice(b * 2, b * 2 + 2), 16));
  }
  // ::ffff:a.b.c.d: an IPv4 socket opened through an IPv6 one.
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12).join('.');
  const groups = Array.from({ length: 8 }, (_, i) => ((bytes[2 * i] ?? 0) << 8) | (bytes[2 * i + 1] ?? 0));
  return formatV6(groups);
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

/** Every listener of the host (a file that cannot be read, e.g. no IPv6: none from it). */
export async function readHostListeners(procNet = '/proc/net'): Promise<HostListener[]> {
  const files = [
    ['tcp', 'tcp'],
    ['tcp6', 'tcp'],
    ['udp', 'udp'],
    ['udp6', 'udp'],
  ] as const;
  const texts = await Promise.all(files.map(([f]) => readFile(`${procNet}/${f}`, 'utf8').catch(() => '')));
  return files.flatMap(([, proto], i) => parseProcNet(texts[i] ?? '', proto));
}
