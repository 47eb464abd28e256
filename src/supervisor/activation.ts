// systemd socket activation (sd_listen_fds(3)): the service manager binds the plugin socket
// (packaging/systemd/ledgernet.socket) and passes it, listening, as fd 3 with LISTEN_FDS=1 and
// LISTEN_PID=<our pid>. The socket then outlives the daemon: calls Docker makes while ledgernet is
// down or restarting after a crash wait in its backlog instead of being refused or cut off.
//
// Node has no getsockopt; /proc/net/unix names every unix socket of this network namespace with
// its inode (fstat of the fd), type, "listening" flag and bound path, which is all there is to check.
import { fstatSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { DriverError } from '../errors.ts';

/** The first fd the service manager passes (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;

const VARS = ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES'] as const;
/** __SO_ACCEPTCON in /proc/net/unix's Flags: the socket is listening. */
const ACCEPTCON = 0x10000;
const SOCK_STREAM = 1;

const UNIT_HINT = 'ledgernet.socket must have one ListenStream= with the plugin socket\'s path and Accept=no';

function refuse(what: string): never {
  throw new DriverError('LN_ERR_CONFIG', `socket activation: ${what}; ${UNIT_HINT}`);
}

/**
 * The fd the service manager passed, or null when ledgernet was not socket-activated (neither
 * LISTEN_FDS nor LISTEN_PID is set). The variables are removed from `env` whatever the outcome
 * (sd_listen_fds' unset_environment), so the worker and the commands it runs never see them.
 * Throws a clear LN_ERR_CONFIG when they are set but do not hand this process exactly one fd.
 */
export function listenFdFromEnv(env: NodeJS.ProcessEnv, pid: number): number | null {
  const fds = env['LISTEN_FDS'];
  const owner = env['LISTEN_PID'];
  if (fds === undefined && owner === undefined) return null;
  for (const v of VARS) delete env[v];
  if (owner === undefined || !/^[1-9]\d*$/.test(owner)) refuse(`LISTEN_FDS=${fds ?? ''} is set but LISTEN_PID is ${owner === undefined ? 'not set' : `"${owner}", not a pid`}`);
  if (Number(owner) !== pid) {
    refuse(`LISTEN_PID=${owner} names another process, not this one (pid ${pid}): the inherited sockets are not meant for it (a wrapper that forks must exec ledgernet, or set LISTEN_PID to its pid)`);
  }
  if (fds !== '1') refuse(`LISTEN_FDS=${fds ?? '(unset)'}: ledgernet takes exactly one socket, the plugin socket`);
  return LISTEN_FDS_START;
}

interface UnixSocketRow {
  readonly flags: number;
  readonly type: number;
  readonly inode: number;
  readonly path: string | null;
}

/** The rows of /proc/net/unix ("Num RefCount Protocol Flags Type St Inode Path"). */
export function parseProcNetUnix(text: string): UnixSocketRow[] {
  const rows: UnixSocketRow[] = [];
  for (const line of text.split('\n').slice(1)) {
    const m = /^\s*[0-9a-f]+:\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+(\d+)(?: (.*))?$/i.exec(line);
    if (m) rows.push({ flags: Number.parseInt(m[1]!, 16), type: Number.parseInt(m[2]!, 16), inode: Number(m[3]), path: m[4] ?? null });
  }
  return rows;
}

/** `p` with its folder's symlinks resolved (/var/run → /run), or just absolute when it does not exist. */
function canonical(p: string): string {
  try {
    return resolve(realpathSync(dirname(resolve(p))), basename(p));
  } catch {
    return resolve(p);
  }
}

/**
 * Checks that `fd` is a listening unix stream socket bound to `path`, and throws a clear
 * LN_ERR_CONFIG naming what it is instead.
 */
export function checkListeningSocket(fd: number, path: string, procNetUnix = '/proc/net/unix'): void {
  let ino: number;
  try {
    const st = fstatSync(fd);
    if (!st.isSocket()) refuse(`fd ${fd} (LISTEN_FDS=1) is not a socket`);
    ino = st.ino;
  } catch (e) {
    if (e instanceof DriverError) throw e;
    refuse(`fd ${fd} (LISTEN_FDS=1) is not open (${(e as Error).message})`);
  }
  const row = parseProcNetUnix(readFileSync(procNetUnix, 'utf8')).find((r) => r.inode === ino);
  if (!row) refuse(`fd ${fd} is a socket, but not a unix socket of this network namespace (not in ${procNetUnix}); Docker calls plugins on a unix socket`);
  if (row.type !== SOCK_STREAM) refuse(`fd ${fd} is a unix socket of type ${row.type}, not a stream socket (ListenStream=, not ListenDatagram= or ListenSequentialPacket=)`);
  if ((row.flags & ACCEPTCON) === 0) refuse(`fd ${fd} is a unix stream socket that is not listening (Accept=yes passes one connection; ledgernet needs the listening socket)`);
  if (row.path === null || canonical(row.path) !== canonical(path)) {
    refuse(`fd ${fd} listens on ${row.path === null ? 'no path' : row.path}, not on the plugin socket ${path} (--socket or LEDGERNET_SOCKET must name ListenStream='s path)`);
  }
}

/** The plugin socket the service manager passed, checked; null when ledgernet was not socket-activated. */
export function inheritedPluginSocket(env: NodeJS.ProcessEnv, path: string): number | null {
  const fd = listenFdFromEnv(env, process.pid);
  if (fd !== null) checkListeningSocket(fd, path);
  return fd;
}
