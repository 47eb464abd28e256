// The userland proxy's listeners with real sockets on loopback: a TCP connection through [::1]
// reaches the target (IPv4: 6→4) with both half-closes kept, a port another program holds fails
// the open naming address and port, closing drops the connections, a refused target does not take
// the proxy down, and UDP clients get their own flows, closed when idle, that take datagrams from
// the target only.
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { createProxyHost, type ProxyChange, type ProxySpec } from '../../../src/kernel/index.ts';
import { proxyName } from '../../../src/kernel/proxy/types.ts';

const quiet = { debug: () => undefined, warn: () => undefined };
const owner = { networkId: 'n', endpointId: 'e' };
const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function listenTcp(host: string, onConn: (s: Socket) => void, opts: { allowHalfOpen?: boolean } = {}): Promise<Server> {
  const server = createServer({ allowHalfOpen: opts.allowHalfOpen ?? false }, onConn);
  server.listen(0, host);
  await once(server, 'listening');
  cleanups.push(() => new Promise((r) => server.close(r)));
  return server;
}

/** A port free on ::1 right now. */
async function freePort(): Promise<number> {
  const s = createServer().listen(0, '::1');
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function openChange(spec: ProxySpec): ProxyChange {
  return { kind: 'proxy.open', name: proxyName(spec), spec, owner, reason: 'missing' };
}

async function opened(spec: ProxySpec, udpIdleMs?: number) {
  const host = createProxyHost(quiet, udpIdleMs === undefined ? {} : { udpIdleMs });
  cleanups.push(() => host.closeAll());
  assert.deepEqual((await host.apply([openChange(spec)])).failures, []);
  return host;
}

function collect(s: Socket): Promise<string> {
  let text = '';
  s.setEncoding('utf8');
  s.on('data', (c: string) => (text += c));
  return new Promise((resolve, reject) => {
    s.on('end', () => resolve(text));
    s.on('error', reject);
  });
}

describe('userland proxy, TCP', () => {
  it('forwards [::1] to an IPv4 target, keeps both half-closes, the target sees the host as source', async () => {
    let source = '';
    // The target reads until the client's FIN, then answers and closes: only a kept half-close lets the answer through.
    const target = await listenTcp('127.0.0.1', (s) => {
      source = s.remoteAddress ?? '';
      void collect(s).then((got) => s.end(`got ${got}`));
    }, { allowHalfOpen: true });
    const port = await freePort();
    const host = await opened({ proto: 'tcp', hostIp: '::1', hostPort: port, targetIp: '127.0.0.1', targetPort: (target.address() as AddressInfo).port });
    assert.deepEqual(host.list().map((l) => [l.name, l.targetIp, l.connections]), [[`tcp [::1]:${port}`, '127.0.0.1', 0]]);
    const client = connect({ host: '::1', port, allowHalfOpen: true });
    await once(client, 'connect');
    const reply = collect(client);
    client.end('hello');
    assert.equal(await reply, 'got hello');
    assert.equal(source, '127.0.0.1', 'the target sees a connection from the host');
  });

  it('the other half-close: the target ends first, the client still sends after it and the target reads it', async () => {
    let got: Promise<string> = Promise.resolve('');
    const target = await listenTcp('::1', (s) => {
      got = collect(s);
      s.end('bye');
    }, { allowHalfOpen: true });
    const port = await freePort();
    await opened({ proto: 'tcp', hostIp: '::1', hostPort: port, targetIp: '::1', targetPort: (target.address() as AddressInfo).port });
    const client = connect({ host: '::1', port, allowHalfOpen: true });
    assert.equal(await collect(client), 'bye', 'the target\'s FIN reaches the client');
    client.end('late words');
    assert.equal(await got, 'late words', 'the client\'s data after the target\'s FIN still arrives');
  });

  it('a port another program holds: the open fails naming address and port, nothing listens', async () => {
    const taken = await listenTcp('::1', (s) => s.destroy());
    const port = (taken.address() as AddressInfo).port;
    const host = createProxyHost(quiet);
    const r = await host.apply([openChange({ proto: 'tcp', hostIp: '::1', hostPort: port, targetIp: '127.0.0.1', targetPort: 9 })]);
    assert.equal(r.failures.length, 1);
    assert.equal(r.failures[0]?.message, `EADDRINUSE: cannot listen on tcp [::1]:${port}: address already in use`);
    assert.deepEqual(host.list(), []);
  });

  it('closing drops open connections and stops listening; a refused target resets the client, the proxy lives on', async () => {
    const target = await listenTcp('::1', (s) => s.on('error', () => undefined));
    const port = await freePort();
    const host = await opened({ proto: 'tcp', hostIp: '::1', hostPort: port, targetIp: '::1', targetPort: (target.address() as AddressInfo).port });
    const client = connect({ host: '::1', port });
    client.on('error', () => undefined);
    await once(client, 'connect');
    await waitUntil(() => host.list()[0]?.connections === 1);
    const closed = closedOf(client);
    assert.deepEqual((await host.apply([{ kind: 'proxy.close', name: `tcp [::1]:${port}`, owner, reason: 'orphan' }])).failures, []);
    await closed;
    assert.deepEqual(host.list(), []);
    const again = connect({ host: '::1', port });
    const [err] = (await once(again, 'error')) as [NodeJS.ErrnoException];
    assert.equal(err.code, 'ECONNREFUSED');

    // A target nobody listens on: the client is reset, the listener stays.
    const dead = await freePort();
    const host2 = await opened({ proto: 'tcp', hostIp: '::1', hostPort: port, targetIp: '::1', targetPort: dead });
    const c2 = connect({ host: '::1', port });
    await closedOf(c2);
    assert.equal(host2.list().length, 1);
  });
});

/** Resolves when the socket closes, whether by FIN or by reset (events.once would reject on the reset). */
function closedOf(s: Socket): Promise<void> {
  s.on('error', () => undefined);
  return new Promise((resolve) => s.on('close', () => resolve()));
}

async function waitUntil(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(ok());
}

describe('userland proxy, UDP', () => {
  it('one flow per client, replies to the right client, flows closed when idle', async () => {
    const target = createSocket('udp4');
    target.on('message', (m, from) => target.send(`echo ${m.toString()}`, from.port, from.address));
    target.bind(0, '127.0.0.1');
    await once(target, 'listening');
    cleanups.push(() => target.close());
    const port = await freePort();
    const host = await opened({ proto: 'udp', hostIp: '::1', hostPort: port, targetIp: '127.0.0.1', targetPort: target.address().port }, 300);
    const ask = async (c: UdpSocket, text: string) => {
      const reply = once(c, 'message');
      c.send(text, port, '::1');
      return String(((await reply) as [Buffer])[0]);
    };
    const a = createSocket('udp6');
    const b = createSocket('udp6');
    cleanups.push(() => a.close(), () => b.close());
    assert.equal(await ask(a, 'a1'), 'echo a1');
    assert.equal(await ask(b, 'b1'), 'echo b1');
    assert.equal(await ask(a, 'a2'), 'echo a2');
    assert.equal(host.list()[0]?.connections, 2, 'two clients, two flows');
    await waitUntil(() => host.list()[0]?.connections === 0);
    assert.equal(await ask(a, 'a3'), 'echo a3', 'a new flow after the idle one was closed');
  });
  it('a flow takes datagrams from the target only: one sent to its socket from another address does not reach the client, the reply does', async () => {
    const target = createSocket('udp4');
    let flowPort = 0;
    target.on('message', (m, from) => {
      flowPort = from.port;
      target.send(`echo ${m.toString()}`, from.port, from.address);
    });
    target.bind(0, '127.0.0.1');
    await once(target, 'listening');
    const stranger = createSocket('udp4');
    stranger.bind(0, '127.0.0.9');
    await once(stranger, 'listening');
    const client = createSocket('udp6');
    cleanups.push(() => target.close(), () => stranger.close(), () => client.close());
    const port = await freePort();
    await opened({ proto: 'udp', hostIp: '::1', hostPort: port, targetIp: '127.0.0.1', targetPort: target.address().port });
    const got: string[] = [];
    client.on('message', (m) => got.push(m.toString()));
    // Three at once: they come before the flow's socket is connected, wait for it, and go in order.
    for (const text of ['first', 'then', 'more']) client.send(text, port, '::1');
    await waitUntil(() => got.length === 3);
    // The flow's socket is where the target saw the datagram come from: on loopback, 127.0.0.1.
    stranger.send('INJECTED', flowPort, '127.0.0.1');
    client.send('second', port, '::1');
    await waitUntil(() => got.includes('echo second'));
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(got, ['echo first', 'echo then', 'echo more', 'echo second']);
  });
});
