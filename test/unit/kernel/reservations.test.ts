// The reservations' holder with real sockets on loopback: while a port is held, a second bind of
// it fails with EADDRINUSE, from Node (whose TCP servers set SO_REUSEADDR) and from python3 with
// SO_REUSEADDR, TCP and UDP, on the same address and on the family's wildcard; a held `::` is
// IPv6 only. A TCP connection that reaches the socket is reset, a datagram is dropped. A port
// another program holds fails the reservation naming it; a release frees the port. And the
// control: a TCP socket bound without listening does not keep an SO_REUSEADDR bind out.
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { execa } from 'execa';
import { createReserveHost, reservationName, type ReserveChange, type ReserveSpec } from '../../../src/kernel/index.ts';

const quiet = { debug: () => undefined, warn: () => undefined };
const owner = { networkId: 'n', endpointId: 'e' };
const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A port free for both TCP and UDP on `host` right now. */
async function freePort(host = '127.0.0.1'): Promise<number> {
  for (;;) {
    const s = createServer().listen(0, host);
    await once(s, 'listening');
    const port = (s.address() as AddressInfo).port;
    await new Promise((r) => s.close(r));
    if ((await nodeBind('udp', host, port)) === 'ok') return port;
  }
}

const reserveChange = (spec: ReserveSpec): ReserveChange => ({ kind: 'port.reserve', name: reservationName(spec), spec, owner, reason: 'missing' });

async function held(...specs: ReserveSpec[]) {
  const host = createReserveHost(quiet);
  cleanups.push(() => host.releaseAll());
  assert.deepEqual((await host.apply(specs.map(reserveChange))).failures, []);
  return host;
}

/** A bind (TCP: and listen) of `host`:`port` by this process: 'ok' (closed again) or the error's code. */
async function nodeBind(proto: 'tcp' | 'udp', host: string, port: number): Promise<string> {
  if (proto === 'tcp') {
    const server = createServer();
    return new Promise((resolve) => {
      server.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
      server.listen({ host, port, ipv6Only: host.includes(':') }, () => server.close(() => resolve('ok')));
    });
  }
  const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', ipv6Only: host.includes(':') });
  return new Promise((resolve) => {
    socket.once('error', (e: NodeJS.ErrnoException) => {
      socket.close();
      resolve(e.code ?? e.message);
    });
    socket.bind({ address: host, port }, () => socket.close(() => resolve('ok')));
  });
}

/** The same from python3 with SO_REUSEADDR (TCP: bound, then listening unless `listen` is false): 'ok' or the errno's name. */
async function pythonBind(proto: 'tcp' | 'udp', host: string, port: number, listen = true): Promise<string> {
  const family = host.includes(':') ? 'AF_INET6' : 'AF_INET';
  const script = [
    'import errno, socket',
    `s = socket.socket(socket.${family}, socket.${proto === 'tcp' ? 'SOCK_STREAM' : 'SOCK_DGRAM'})`,
    's.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
    'try:',
    `    s.bind((${JSON.stringify(host)}, ${port}))`,
    ...(proto === 'tcp' && listen ? ['    s.listen(16)'] : []),
    "    print('ok')",
    'except OSError as e:',
    '    print(errno.errorcode.get(e.errno, str(e)))',
  ].join('\n');
  return (await execa('python3', ['-c', script], { stdin: 'ignore' })).stdout.trim();
}

describe('port reservations: a held port cannot be bound again', () => {
  for (const proto of ['tcp', 'udp'] as const) {
    it(`${proto}: a second bind fails with EADDRINUSE, from Node and from python3 (SO_REUSEADDR), on the address and on 0.0.0.0; free again once released`, async () => {
      const port = await freePort();
      const spec: ReserveSpec = { proto, hostIp: '127.0.0.1', hostPort: port };
      const host = await held(spec);
      assert.deepEqual(host.list().map((r) => r.name), [`${proto} 127.0.0.1:${port}`]);
      assert.deepEqual(host.find(`${proto} 127.0.0.1:${port}`)?.owner, owner);
      const tries = async () => [
        await nodeBind(proto, '127.0.0.1', port),
        await pythonBind(proto, '127.0.0.1', port),
        await nodeBind(proto, '0.0.0.0', port),
        await pythonBind(proto, '0.0.0.0', port),
      ];
      assert.deepEqual(await tries(), ['EADDRINUSE', 'EADDRINUSE', 'EADDRINUSE', 'EADDRINUSE']);
      assert.deepEqual([...host.names()], [reservationName(spec)]);
      const released = host.apply([{ kind: 'port.release', name: reservationName(spec), owner, reason: 'orphan' }]);
      // Being released (its socket may still be among the host's listeners): still ledgernet's own.
      assert.deepEqual([...host.names()], [reservationName(spec)]);
      assert.deepEqual((await released).failures, []);
      assert.deepEqual([...host.names()], []);
      assert.deepEqual(host.list(), []);
      assert.equal(host.find(reservationName(spec)), undefined);
      assert.deepEqual(await tries(), ['ok', 'ok', 'ok', 'ok']);
    });
  }

  it('`::` holds IPv6 only (as a DNAT rule of that family): [::] cannot be bound again, 0.0.0.0 can', async () => {
    const port = await freePort('::');
    await held({ proto: 'tcp', hostIp: '::', hostPort: port }, { proto: 'udp', hostIp: '::', hostPort: port });
    for (const proto of ['tcp', 'udp'] as const) {
      assert.deepEqual([await nodeBind(proto, '::', port), await pythonBind(proto, '::', port)], ['EADDRINUSE', 'EADDRINUSE'], proto);
      assert.equal(await nodeBind(proto, '0.0.0.0', port), 'ok', `${proto}: the IPv4 side is not held`);
    }
  });

  it('a held port another program took first fails naming it; the others are held', async () => {
    const [taken, free] = [await freePort(), await freePort()];
    const program = createServer().listen(taken, '127.0.0.1');
    await once(program, 'listening');
    cleanups.push(() => new Promise((r) => program.close(r)));
    const host = createReserveHost(quiet);
    cleanups.push(() => host.releaseAll());
    const specs: ReserveSpec[] = [{ proto: 'tcp', hostIp: '127.0.0.1', hostPort: taken }, { proto: 'tcp', hostIp: '127.0.0.1', hostPort: free }];
    const r = await host.apply(specs.map(reserveChange));
    assert.deepEqual(r.failures, [{ index: 0, message: `EADDRINUSE: cannot hold tcp 127.0.0.1:${taken}: address already in use` }]);
    assert.deepEqual(host.list().map((x) => x.hostPort), [free]);
  });

  it('a TCP connection that reaches a held port is reset at once; a datagram is dropped', async () => {
    const port = await freePort();
    await held({ proto: 'tcp', hostIp: '127.0.0.1', hostPort: port }, { proto: 'udp', hostIp: '127.0.0.1', hostPort: port });
    const client = connect({ host: '127.0.0.1', port });
    const got = await Promise.race([
      once(client, 'error').then(([e]) => (e as NodeJS.ErrnoException).code),
      once(client, 'close').then(() => 'closed'),
      new Promise((r) => setTimeout(() => r('still open after 3 s'), 3_000).unref()),
    ]);
    client.destroy();
    assert.ok(got === 'ECONNRESET' || got === 'closed', String(got));
    const udp = createSocket('udp4');
    await new Promise<void>((resolve, reject) => udp.send('x', port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
    udp.close();
    assert.equal(await nodeBind('udp', '127.0.0.1', port), 'EADDRINUSE', 'still held after a datagram');
  });

  it('control: a TCP socket bound but not listening does not keep an SO_REUSEADDR bind out (why a reservation listens)', async () => {
    const port = await freePort();
    const script = [
      'import socket',
      'a = socket.socket(); a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
      `a.bind(('127.0.0.1', ${port}))`,
      'b = socket.socket(); b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
      `b.bind(('127.0.0.1', ${port})); b.listen(1)`,
      "print('bound twice')",
    ].join('\n');
    assert.equal((await execa('python3', ['-c', script], { stdin: 'ignore' })).stdout.trim(), 'bound twice');
  });
});
