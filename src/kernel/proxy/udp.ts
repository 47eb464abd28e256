// A UDP listener of the userland proxy: each client (address and port) gets its own flow socket
// towards the container, so replies find their way back to the client that asked; a flow idle
// for `idleMs` is closed (docker-proxy keeps UDP flows 90 s). At most MAX_FLOWS flows per
// listener: a datagram from a new client beyond that is dropped (logged once). A flow socket is
// connected to the target, so the kernel hands it only the target's datagrams: anyone else who
// reaches its ephemeral port cannot inject datagrams into the client's flow. The connect is
// asynchronous: what the client sends before it is done waits, MAX_PENDING datagrams at most.
import { createSocket, type Socket } from 'node:dgram';
import type { ProxyLog, Running } from './running.ts';
import { listenError, type ProxySpec } from './types.ts';

const MAX_FLOWS = 4096;
const MAX_PENDING = 64;

interface Flow {
  readonly socket: Socket;
  readonly timer: NodeJS.Timeout;
  /** The client's datagrams that came before the socket was connected; null once it is. */
  pending: Buffer[] | null;
}

export function openUdp(spec: ProxySpec, log: ProxyLog, idleMs: number): Promise<Running> {
  const listener = createSocket({ type: spec.hostIp.includes(':') ? 'udp6' : 'udp4', ipv6Only: true });
  const flows = new Map<string, Flow>();
  let warned = false;
  const drop = (key: string) => {
    const f = flows.get(key);
    if (!f) return;
    flows.delete(key);
    clearTimeout(f.timer);
    f.socket.close();
  };
  const forward = (flow: Flow, msg: Buffer) => {
    if (flow.pending === null) {
      flow.socket.send(msg, (e) => {
        if (e) log.debug({ err: e }, 'proxy UDP send failed');
      });
    } else if (flow.pending.length < MAX_PENDING) flow.pending.push(msg);
    else log.debug({ listener: spec.hostPort }, 'proxy: UDP flow not connected yet, datagram dropped');
  };
  const flowOf = (address: string, port: number): Flow | null => {
    const key = `${address} ${port}`;
    const found = flows.get(key);
    if (found) {
      found.timer.refresh();
      return found;
    }
    if (flows.size >= MAX_FLOWS) {
      if (!warned) log.warn({ listener: spec.hostPort, flows: flows.size }, 'proxy: too many UDP flows, dropping datagrams of new clients');
      warned = true;
      return null;
    }
    const socket = createSocket(spec.targetIp.includes(':') ? 'udp6' : 'udp4');
    const timer = setTimeout(() => drop(key), idleMs);
    timer.unref();
    const flow: Flow = { socket, timer, pending: [] };
    socket.on('message', (msg) => {
      timer.refresh();
      listener.send(msg, port, address);
    });
    socket.once('connect', () => {
      const waiting = flow.pending ?? [];
      flow.pending = null;
      for (const msg of waiting) forward(flow, msg);
    });
    socket.on('error', (e) => {
      log.debug({ err: e }, 'proxy UDP flow failed');
      drop(key);
    });
    // A failed connect is an 'error' (no callback given): the flow is dropped, as on any error.
    socket.connect(spec.targetPort, spec.targetIp);
    flows.set(key, flow);
    return flow;
  };
  return new Promise((resolve, reject) => {
    const early = (e: Error) => {
      listener.close();
      reject(listenError(spec, e));
    };
    listener.once('error', early);
    listener.on('message', (msg, from) => {
      const flow = flowOf(from.address, from.port);
      if (flow) forward(flow, msg);
    });
    listener.bind({ address: spec.hostIp, port: spec.hostPort, exclusive: true }, () => {
      listener.off('error', early);
      listener.on('error', (e) => log.warn({ err: e }, 'proxy UDP listener error'));
      resolve({
        connections: () => flows.size,
        close: () =>
          new Promise<void>((done) => {
            for (const key of [...flows.keys()]) drop(key);
            listener.close(() => done());
          }),
      });
    });
  });
}
