// Socket activation's inputs (src/supervisor/activation.ts): LISTEN_FDS/LISTEN_PID as
// sd_listen_fds(3) defines them, and the fd it names checked against the kernel's own record
// (/proc/net/unix) with real sockets made here: only a listening unix stream socket bound to
// the plugin socket's path is served; everything else is refused with a message naming it.
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkListeningSocket, LISTEN_FDS_START, listenFdFromEnv, parseProcNetUnix } from '../../../src/supervisor/activation.ts';

const dir = mkdtempSync(join(tmpdir(), 'ledgernet-activation-'));
const servers: Server[] = [];
const sockets: Socket[] = [];
after(async () => {
  for (const s of sockets) s.destroy();
  for (const s of servers) await new Promise((r) => s.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const fdOf = (h: Server | Socket): number => (h as unknown as { _handle: { fd: number } })._handle.fd;

async function listening(o: { path: string } | { port: number; host: string }): Promise<Server> {
  const s = createServer(() => undefined);
  servers.push(s);
  await new Promise<void>((resolve) => s.listen(o, resolve));
  return s;
}

describe('LISTEN_FDS / LISTEN_PID', () => {
  it('neither set: not socket-activated', () => {
    assert.equal(listenFdFromEnv({ PATH: '/bin' }, 42), null);
  });

  it('LISTEN_PID is this process and LISTEN_FDS=1: fd 3, and the variables are removed', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_FDS: '1', LISTEN_PID: '42', LISTEN_FDNAMES: 'ledgernet.socket', PATH: '/bin' };
    assert.equal(listenFdFromEnv(env, 42), LISTEN_FDS_START);
    assert.deepEqual(env, { PATH: '/bin' });
  });

  const refused: [string, NodeJS.ProcessEnv, RegExp][] = [
    ['another pid', { LISTEN_FDS: '1', LISTEN_PID: '43' }, /LISTEN_PID=43 names another process, not this one \(pid 42\)/],
    ['no LISTEN_PID', { LISTEN_FDS: '1' }, /LISTEN_FDS=1 is set but LISTEN_PID is not set/],
    ['LISTEN_PID not a pid', { LISTEN_FDS: '1', LISTEN_PID: '42x' }, /LISTEN_PID is "42x", not a pid/],
    ['two sockets', { LISTEN_FDS: '2', LISTEN_PID: '42' }, /LISTEN_FDS=2: ledgernet takes exactly one socket/],
    ['zero sockets', { LISTEN_FDS: '0', LISTEN_PID: '42' }, /LISTEN_FDS=0: ledgernet takes exactly one socket/],
  ];
  for (const [name, env, msg] of refused) {
    it(`refused: ${name}; the variables are removed all the same`, () => {
      assert.throws(() => listenFdFromEnv(env, 42), (e: Error & { code?: string }) => e.code === 'LN_ERR_CONFIG' && msg.test(e.message) && /ListenStream=/.test(e.message));
      assert.deepEqual(env, {});
    });
  }
});

describe('the inherited fd', () => {
  it('reads /proc/net/unix rows (captured): flags, type, inode, path', () => {
    const text = [
      'Num       RefCount Protocol Flags    Type St Inode Path',
      '00000000a4bd4f82: 00000002 00000000 00010000 0001 01 17963528 /var/run/docker.sock',
      '00000000113b1b2d: 00000002 00000000 00000000 0002 01 17963526 @e97ee',
      '00000000c5d906ff: 00000003 00000000 00000000 0001 03 18057044',
    ].join('\n');
    assert.deepEqual(parseProcNetUnix(text), [
      { flags: 0x10000, type: 1, inode: 17963528, path: '/var/run/docker.sock' },
      { flags: 0, type: 2, inode: 17963526, path: '@e97ee' },
      { flags: 0, type: 1, inode: 18057044, path: null },
    ]);
  });

  it('a listening unix stream socket bound to the plugin socket path is accepted', async () => {
    const path = join(dir, 'ok.sock');
    const s = await listening({ path });
    checkListeningSocket(fdOf(s), path);
  });

  const refusal = (msg: RegExp) => (e: Error & { code?: string }) => e.code === 'LN_ERR_CONFIG' && msg.test(e.message);

  it('refused: listening on another path', async () => {
    const path = join(dir, 'other.sock');
    const s = await listening({ path });
    assert.throws(() => checkListeningSocket(fdOf(s), join(dir, 'plugin.sock')), refusal(/listens on .*other\.sock, not on the plugin socket .*plugin\.sock/));
  });

  it('refused: a connected unix stream socket (not listening)', async () => {
    const path = join(dir, 'conn.sock');
    await listening({ path });
    const c = connect({ path });
    sockets.push(c);
    await new Promise((r) => c.once('connect', r));
    assert.throws(() => checkListeningSocket(fdOf(c), path), refusal(/is a unix stream socket that is not listening/));
  });

  it('refused: a TCP socket (not a unix socket)', async () => {
    const s = await listening({ port: 0, host: '127.0.0.1' });
    assert.throws(() => checkListeningSocket(fdOf(s), join(dir, 'x.sock')), refusal(/is a socket, but not a unix socket/));
  });

  it('refused: a regular file, and an fd that is not open', () => {
    const f = join(dir, 'file');
    const fd = openSync(f, 'w');
    try {
      assert.throws(() => checkListeningSocket(fd, f), refusal(/fd \d+ \(LISTEN_FDS=1\) is not a socket/));
    } finally {
      closeSync(fd);
    }
    assert.throws(() => checkListeningSocket(fd, f), refusal(/is not open/));
  });
});
