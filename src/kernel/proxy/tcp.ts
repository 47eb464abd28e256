// A TCP listener of the userland proxy: each accepted connection gets its own connection to the
// container, and bytes are piped both ways. Half-close is kept (allowHalfOpen on both sides, so a
// FIN from one side ends only that direction, as docker-proxy does); an error or reset on one side
// resets the other. The container sees the host's address on its bridge as the source.
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { ProxyLog, Running } from './running.ts';
import { listenError, type ProxySpec } from './types.ts';

/** Pipes `client` to a new connection to the target; returns that connection. */
function relay(client: Socket, spec: ProxySpec, log: ProxyLog, onClose: () => void): Socket {
  const upstream = connect({ host: spec.targetIp, port: spec.targetPort, allowHalfOpen: true });
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  client.pipe(upstream);
  upstream.pipe(client);
  // A failing side takes the other down with a reset, so the peer learns of it at once.
  const fail = (side: string, other: Socket) => (e: Error) => {
    log.debug({ err: e, side, target: `${spec.targetIp}:${spec.targetPort}` }, 'proxy connection failed');
    if (!other.destroyed) other.resetAndDestroy();
  };
  client.on('error', fail('client', upstream));
  upstream.on('error', fail('container', client));
  let open = 2;
  const closed = () => {
    if (--open === 0) onClose();
  };
  client.on('close', closed);
  upstream.on('close', closed);
  return upstream;
}

/** Listens on the spec's host address; resolves once listening, rejects with what the kernel said (EADDRINUSE…). */
export function openTcp(spec: ProxySpec, log: ProxyLog): Promise<Running> {
  // Each connection: the client's socket and the one to the container.
  const pairs = new Map<Socket, Socket>();
  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, (client) => {
    pairs.set(client, relay(client, spec, log, () => pairs.delete(client)));
  });
  return new Promise((resolve, reject) => {
    const early = (e: Error) => reject(listenError(spec, e));
    server.once('error', early);
    server.listen({ host: spec.hostIp, port: spec.hostPort, ipv6Only: true, exclusive: true }, () => {
      server.off('error', early);
      server.on('error', (e) => log.warn({ err: e }, 'proxy listener error'));
      resolve({
        connections: () => pairs.size,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            for (const [client, upstream] of pairs) {
              client.destroy();
              upstream.destroy();
            }
          }),
      });
    });
  });
}
