// Plays systemd's part of socket activation (packaging/systemd/ledgernet.socket) on a machine
// without systemd: a holder process binds the plugin socket once (mode 0660, as SocketMode=) and
// keeps it listening; each daemon start gets it as fd 3 with LISTEN_FDS=1 and LISTEN_PID=<the
// daemon's own pid>, the way systemd execs a service. Calls Docker makes while no daemon runs wait
// in the socket's backlog, across any number of SIGKILLs of the daemon.
//
// The holder hands the fd over a private control socket (SCM_RIGHTS) to a small launcher that
// puts it on fd 3, sets the variables and execs the command, so the daemon's pid is the
// launcher's: the test's ChildProcess is the daemon itself.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const HOLD = String.raw`
import os, select, socket, sys
path, ctl = sys.argv[1], sys.argv[2]
if os.path.exists(path):
    os.unlink(path)
old = os.umask(0o177)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o660)
s.listen(4096)
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.bind(ctl)
c.listen(16)
os.umask(old)
print("ready", flush=True)
try:
    while True:
        r, _, _ = select.select([sys.stdin, c], [], [])
        if sys.stdin in r and not sys.stdin.readline():
            break
        if c in r:
            conn, _ = c.accept()
            socket.send_fds(conn, [b"3"], [s.fileno()])
            conn.close()
finally:
    for p in (path, ctl):
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
`;

const LAUNCH = String.raw`
import os, socket, sys
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
c.connect(sys.argv[1])
_, fds, _, _ = socket.recv_fds(c, 16, 1)
c.close()
os.dup2(fds[0], 3, inheritable=True)
if fds[0] != 3:
    os.close(fds[0])
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ.pop("LISTEN_FDNAMES", None)
os.execvp(sys.argv[2], sys.argv[2:])
`;

export interface SocketHolder {
  /** The socket path the holder listens on. */
  readonly path: string;
  /** Prefix for a command line: runs it with the held socket as fd 3 and LISTEN_FDS/LISTEN_PID set. */
  readonly launcher: readonly string[];
  /** Closes the socket (calls still waiting in its backlog are refused) and removes its file. */
  close(): Promise<void>;
}

/** Binds `path` (replacing a stale socket file) and keeps it listening until close(). */
export async function holdSocket(path: string): Promise<SocketHolder> {
  const dir = await mkdtemp(join(tmpdir(), 'ledgernet-holder-'));
  const ctl = join(dir, 'ctl.sock');
  const proc: ChildProcess = spawn('python3', ['-c', HOLD, path, ctl], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  await new Promise<void>((resolve, reject) => {
    proc.once('error', reject);
    void exited.then(() => reject(new Error(`the socket holder for ${path} exited before it was ready`)));
    proc.stdout?.once('data', () => resolve());
  });
  proc.unref();
  let closed: Promise<void> | null = null;
  return {
    path,
    launcher: ['python3', '-c', LAUNCH, ctl],
    close: () =>
      (closed ??= (async () => {
        proc.stdin?.end();
        const late = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(late);
        await rm(dir, { recursive: true, force: true });
      })()),
  };
}
