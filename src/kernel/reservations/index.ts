// The reservations' holder: the sockets the daemon keeps on the host ports its containers publish,
// bound and released by the reconciler (reconciler/reservations.ts). A TCP socket listens, as
// Docker's placeholder does: bound but not listening, it would not stop a program that binds with
// SO_REUSEADDR (Node's servers, most daemons). Nothing is served: the DNAT rules take the traffic
// before it reaches the socket, and a connection that still arrives (no rule: a port on a host
// address the kernel does not DNAT, or rules removed by hand) is reset at once, never left
// hanging in the backlog. A UDP socket is bound; what it receives is read and dropped.
import { createSocket } from 'node:dgram';
import { createServer, type Socket } from 'node:net';
import { reservationName, reserveError, type Reservation, type ReserveChange, type ReservePort, type ReserveSpec } from './types.ts';

/** What the holder logs through (the daemon's pino child). */
export interface ReserveLog {
  debug(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface ReserveHost extends ReservePort {
  /** Releases every reservation (shutdown). */
  releaseAll(): Promise<void>;
}

type Release = () => Promise<void>;

/** Listens on the spec's address; resolves once listening, rejects with what the kernel said (EADDRINUSE…). */
function holdTcp(spec: ReserveSpec, log: ReserveLog): Promise<Release> {
  const name = reservationName(spec);
  const server = createServer({ pauseOnConnect: true }, (s: Socket) => {
    log.debug({ reservation: name, from: s.remoteAddress }, 'a connection reached a held port (no DNAT rule took it): reset');
    s.resetAndDestroy();
  });
  return new Promise((resolve, reject) => {
    const early = (e: Error) => reject(reserveError(spec, e));
    server.once('error', early);
    server.listen({ host: spec.hostIp, port: spec.hostPort, ipv6Only: spec.hostIp.includes(':'), exclusive: true }, () => {
      server.off('error', early);
      server.on('error', (e) => log.warn({ err: e, reservation: name }, 'held port error'));
      resolve(() => new Promise<void>((done) => server.close(() => done())));
    });
  });
}

/** Binds the spec's address; resolves once bound. Datagrams are read (the queue never fills) and dropped. */
function holdUdp(spec: ReserveSpec, log: ReserveLog): Promise<Release> {
  const socket = createSocket({ type: spec.hostIp.includes(':') ? 'udp6' : 'udp4', ipv6Only: spec.hostIp.includes(':') });
  socket.on('message', () => undefined);
  return new Promise((resolve, reject) => {
    const early = (e: Error) => {
      socket.close();
      reject(reserveError(spec, e));
    };
    socket.once('error', early);
    socket.bind({ address: spec.hostIp, port: spec.hostPort, exclusive: true }, () => {
      socket.off('error', early);
      socket.on('error', (e) => log.warn({ err: e, reservation: reservationName(spec) }, 'held port error'));
      resolve(() => new Promise<void>((done) => socket.close(() => done())));
    });
  });
}

export function createReserveHost(log: ReserveLog): ReserveHost {
  const held = new Map<string, { reservation: Reservation; release: Release }>();
  // Being bound or released: its socket may be among the host's listeners already, or still.
  const busy = new Map<string, Reservation>();
  const release = async (name: string) => {
    const h = held.get(name);
    if (!h) return;
    held.delete(name);
    busy.set(name, h.reservation);
    try {
      await h.release();
    } finally {
      busy.delete(name);
    }
  };
  const reserve = async ({ name, spec, owner }: Extract<ReserveChange, { kind: 'port.reserve' }>) => {
    const reservation: Reservation = { ...spec, name, owner };
    const h = held.get(name);
    if (h) return void held.set(name, { ...h, reservation });
    busy.set(name, reservation);
    try {
      held.set(name, { reservation, release: await (spec.proto === 'tcp' ? holdTcp(spec, log) : holdUdp(spec, log)) });
    } finally {
      busy.delete(name);
    }
  };
  return {
    list: () => [...held.values()].map((h) => h.reservation),
    find: (name) => held.get(name)?.reservation ?? busy.get(name),
    names: () => new Set([...held.keys(), ...busy.keys()]),
    async apply(changes) {
      const failures: { index: number; message: string }[] = [];
      const failed = (index: number) => (e: unknown) => void failures.push({ index, message: (e as Error).message });
      // Releases first: a port given up by one endpoint is free again before another is bound.
      await Promise.all(changes.map((c, index) => (c.kind === 'port.release' ? release(c.name).catch(failed(index)) : Promise.resolve())));
      await Promise.all(changes.map((c, index) => (c.kind === 'port.reserve' ? reserve(c).catch(failed(index)) : Promise.resolve())));
      return { failures: failures.sort((a, b) => a.index - b.index) };
    },
    async releaseAll() {
      await Promise.all([...held.keys()].map(release));
    },
  };
}
