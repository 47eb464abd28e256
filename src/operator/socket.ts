import { spawn } from 'node:child_process';
import { mkdir, stat, unlink } from 'node:fs/promises';
import { connect, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { DriverError } from '../errors.ts';

/** True when something accepts connections on the unix socket at `path`. */
export function socketAnswers(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ path });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/**
 * Makes `path` free for listening: creates its folder, refuses when a live process answers on
 * it, removes a stale socket file left by a crash.
 */
export async function prepareSocketPath(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const st = await stat(path).catch(() => null);
  if (!st) return;
  if (!st.isSocket()) {
    throw new DriverError('LN_ERR_SOCKET_IN_USE', `${path} exists and is not a socket; remove it or choose another --socket`);
  }
  if (await socketAnswers(path)) {
    throw new DriverError(
      'LN_ERR_SOCKET_IN_USE',
      `another process already answers on ${path}; is ledgernet already running? Stop it first or choose another --socket`,
    );
  }
  await unlink(path);
}

interface Listenable {
  readonly server: Server;
  listen(o: { path: string }): Promise<string>;
}

/**
 * Listens on the unix socket `path` created with `mode` from the start: the bind runs under the
 * umask that gives exactly that mode, so there is no moment (as with a chmod after listen) when
 * another user may connect. The umask is process-wide: it is set only for the synchronous bind
 * inside net.Server.listen and restored at once.
 */
export async function listenPrivately(app: Listenable, path: string, mode: 0o600 | 0o660): Promise<void> {
  const server = app.server;
  const listen = server.listen;
  server.listen = function (this: Server, ...args: unknown[]) {
    server.listen = listen;
    const old = process.umask(~mode & 0o777);
    try {
      return (listen as (...a: unknown[]) => Server).apply(this, args);
    } finally {
      process.umask(old);
    }
  } as Server['listen'];
  try {
    await app.listen({ path });
  } finally {
    server.listen = listen;
  }
  const got = (await stat(path)).mode & 0o777;
  if (got !== mode) throw new DriverError('LN_ERR_SOCKET_IN_USE', `${path} was created with mode ${got.toString(8)}, not ${mode.toString(8)}`);
}

interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

// SO_PEERCRED (SOL_SOCKET 1, SO_PEERCRED 17 on Linux) of the socket on fd 0: Node has no
// getsockopt, and a native addon is not worth one call; perl (perl-base, Essential in Debian)
// makes it without loading a module.
const PEERCRED_SCRIPT = 'my $c = getsockopt(STDIN, 1, 17) or die "getsockopt: $!\\n"; print join(" ", unpack("iII", $c)), "\\n";';

/** The kernel's record of who connected the unix socket `socket` (SO_PEERCRED). */
function peerCredentials(socket: Socket): Promise<PeerCredentials> {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return Promise.reject(new Error('the connection has no file descriptor'));
  return new Promise((resolve, reject) => {
    const child = spawn('perl', ['-e', PEERCRED_SCRIPT], { stdio: [fd, 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr?.setEncoding('utf8').on('data', (c: string) => (err += c));
    child.once('error', reject);
    child.once('close', (code) => {
      const [pid, uid, gid] = out.trim().split(' ').map(Number);
      if (code === 0 && [pid, uid, gid].every((n) => Number.isInteger(n))) resolve({ pid: pid!, uid: uid!, gid: gid! });
      else reject(new Error(`cannot read the peer's credentials: ${err.trim() || `perl exited with ${code}`}`));
    });
  });
}

/** Who connected each socket (SO_PEERCRED), read once per connection however often it is asked. */
export function peerReader(): (socket: Socket) => Promise<PeerCredentials> {
  const read = new WeakMap<Socket, Promise<PeerCredentials>>();
  return (socket) => {
    let p = read.get(socket);
    if (!p) read.set(socket, (p = peerCredentials(socket)));
    return p;
  };
}

/**
 * The control socket's door: root, this daemon's own user, or a process whose group is the
 * socket file's group (`chgrp` it to let a group in; its mode is 0600 until then). `peer` reads
 * the connection's credentials (share one peerReader with what records them).
 */
export function controlPeerCheck(path: string, peer: (socket: Socket) => Promise<PeerCredentials> = peerCredentials): (socket: Socket) => Promise<string | null> {
  const me = process.geteuid?.() ?? 0;
  return async (socket) => {
    const [who, st] = await Promise.all([peer(socket), stat(path)]);
    if (who.uid === 0 || who.uid === me || who.gid === st.gid) return null;
    return `uid ${who.uid} (gid ${who.gid}) may not use ${path}: only root or group ${st.gid}`;
  };
}
