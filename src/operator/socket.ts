import { execFile, spawn } from 'node:child_process';
import { mkdir, stat, unlink } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import type { FastifyInstance } from 'fastify';
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

/** How long closing a lazily served socket waits for the requests in flight before it cuts them. */
const LAZY_CLOSE_MS = 10_000;

/**
 * Serves the unix socket `path` (created with `mode`, as listenPrivately) with the fastify app
 * that `build` makes at the first connection, so the process loads fastify (and the module that
 * builds the app) only once someone connects: the control socket of a worker nobody asks (~14 MB
 * of RSS; bench row 9). Connections are accepted paused and handed to the app's HTTP server as
 * soon as it is built; a build that fails destroys the connections that waited for it, is
 * reported to `onError`, and is tried again at the next connection. Returns the cleanup: stop
 * accepting, let the requests in flight finish (at most LAZY_CLOSE_MS), remove the socket file.
 */
export async function listenLazily(
  path: string,
  mode: 0o600 | 0o660,
  build: () => Promise<FastifyInstance>,
  onError: (e: unknown) => void,
): Promise<() => Promise<void>> {
  await prepareSocketPath(path);
  // Each connection, with the requests it has in flight: an HTTP server that was never told to
  // listen does not track its connections, so closing cannot ask it to end the idle ones.
  const conns = new Map<Socket, number>();
  let closing = false;
  const settle = (socket: Socket) => {
    if (closing && conns.get(socket) === 0) socket.destroy();
  };
  let app: Promise<FastifyInstance> | null = null;
  const server = createServer({ pauseOnConnect: true }, (socket) => {
    conns.set(socket, 0);
    socket.once('close', () => conns.delete(socket));
    const built = (app ??= build().then(async (a) => {
      await a.ready();
      a.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
        const s = req.socket as Socket;
        conns.set(s, (conns.get(s) ?? 0) + 1);
        res.once('close', () => {
          if (conns.has(s)) conns.set(s, (conns.get(s) ?? 1) - 1);
          settle(s);
        });
      });
      return a;
    }));
    built.then(
      (a) => {
        if (socket.destroyed) return; // the client left while the app was being built
        a.server.emit('connection', socket);
        socket.resume();
      },
      (e: unknown) => {
        if (app === built) {
          app = null;
          onError(e);
        }
        socket.destroy();
      },
    );
  });
  await listenPrivately({ server, listen: ({ path: p }) => new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(p, () => resolve(p));
  }) }, path, mode);
  return async () => {
    closing = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of conns.keys()) settle(s);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, LAZY_CLOSE_MS)));
    await Promise.race([closed, late]);
    clearTimeout(timer);
    for (const s of conns.keys()) s.destroy();
    await closed;
    const a = app ? await app.catch(() => null) : null;
    await a?.close();
    await unlink(path).catch(() => undefined);
  };
}

interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  /** Its supplementary groups (SO_PEERGROUPS), or null when they could not be read. */
  readonly groups: readonly number[] | null;
}

// SO_PEERCRED (SOL_SOCKET 1, SO_PEERCRED 17 on Linux) and SO_PEERGROUPS (59, Linux 4.13) of the
// socket on fd 0: Node has no getsockopt, and a native addon is not worth one call; perl
// (perl-base, Essential in Debian) makes it without loading a module. Both are what the peer had
// when it connected, so no pid is looked up (one could be reused). perl's getsockopt buffer holds
// 64 groups: a peer in more gets `!` and its error, and only its primary group counts.
const PEERCRED_SCRIPT =
  'my $c = getsockopt(STDIN, 1, 17) or die "getsockopt: $!\\n"; print join(" ", unpack("iII", $c)), "\\n"; ' +
  'my $g = getsockopt(STDIN, 1, 59); print defined $g ? join(" ", unpack("I*", $g)) : "! $!", "\\n";';

/** The kernel's record of who connected the unix socket `socket` (SO_PEERCRED, SO_PEERGROUPS). */
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
      const [cred = '', groupLine = '!'] = out.split('\n');
      const [pid, uid, gid] = cred.trim().split(' ').map(Number);
      const groups = groupLine.startsWith('!') ? null : groupLine.split(' ').filter((g) => g !== '').map(Number);
      if (code === 0 && [pid, uid, gid].every((n) => Number.isInteger(n))) resolve({ pid: pid!, uid: uid!, gid: gid!, groups });
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
 * The control socket's door: root, this daemon's own user, or a member of the socket file's group,
 * as its primary or a supplementary group (`serve --control-group` makes that group the socket's
 * at every start; without it the socket is root's, 0600). `peer` reads the connection's
 * credentials (share one peerReader with what records them).
 */
export function controlPeerCheck(path: string, peer: (socket: Socket) => Promise<PeerCredentials> = peerCredentials): (socket: Socket) => Promise<string | null> {
  const me = process.geteuid?.() ?? 0;
  return async (socket) => {
    const [who, st] = await Promise.all([peer(socket), stat(path)]);
    if (who.uid === 0 || who.uid === me || who.gid === st.gid || who.groups?.includes(st.gid)) return null;
    const unread = who.groups === null ? '; its supplementary groups could not be read (SO_PEERGROUPS: Linux 4.13 or later, at most 64 groups)' : '';
    return `uid ${who.uid} (gid ${who.gid}) may not use ${path}: only root or group ${st.gid}${unread}`;
  };
}

/**
 * The gid of `--control-group` (a group's name or number), or null when it is not set. A name is
 * looked up through NSS (getent), so LDAP groups count; one that is not found is refused by name.
 */
export function controlGroupId(value: string | undefined): Promise<number | null> {
  if (value === undefined || value === '') return Promise.resolve(null);
  if (/^\d+$/.test(value) && Number(value) < 2 ** 32 - 1) return Promise.resolve(Number(value));
  return new Promise((resolve, reject) => {
    execFile('getent', ['group', '--', value], { encoding: 'utf8' }, (e, stdout) => {
      const gid = Number.parseInt(stdout.split(':')[2] ?? '', 10);
      if (!e && Number.isInteger(gid)) resolve(gid);
      else if (e?.code === 2) reject(new DriverError('LN_ERR_CONFIG', `--control-group ${value}: no such group (getent group ${value} finds none)`));
      else reject(new DriverError('LN_ERR_CONFIG', `--control-group ${value}: cannot look the group up (${e?.message ?? stdout}); give its number instead`, { cause: e }));
    });
  });
}
