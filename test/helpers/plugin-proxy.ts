// A stand-in on the plugin socket Docker calls, in front of a daemon served on another socket: it
// passes every call on, except the methods it is told to refuse, which it answers with an Err at
// once. Docker never retries an Err (observed-docker.md §1), so a refused teardown call is given
// up in milliseconds where a daemon that is down makes Docker try for ~15 s per call: the state
// a long outage leaves (Docker forgot an endpoint ledgernet still holds) without the wait.
import { createServer, request, type Server } from 'node:http';
import { rm } from 'node:fs/promises';

export interface PluginProxy {
  /** Methods (`NetworkDriver.Leave`, …) answered with an Err from now on; empty: pass everything. */
  refuse(methods: readonly string[]): void;
  /** The refused calls so far, by method. */
  readonly refused: string[];
  close(): Promise<void>;
}

/** Serves `front` (Docker's plugin socket) and passes calls on to the daemon at `back`. */
export async function startPluginProxy(front: string, back: string): Promise<PluginProxy> {
  let refusing = new Set<string>();
  const refused: string[] = [];
  const server: Server = createServer((req, res) => {
    const method = (req.url ?? '').replace(/^\//, '');
    if (refusing.has(method)) {
      refused.push(method);
      req.resume();
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ Err: 'refused by the test proxy (ledgernet is down)' }));
      return;
    }
    const out = request({ socketPath: back, method: req.method, path: req.url, headers: req.headers, agent: false }, (r) => {
      res.writeHead(r.statusCode ?? 500, r.headers);
      r.pipe(res);
    });
    out.on('error', (e) => res.writeHead(500).end(JSON.stringify({ Err: `test proxy: ${e.message}` })));
    req.pipe(out);
  });
  await rm(front, { force: true });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(front, resolve));
  return {
    refuse(methods) {
      refusing = new Set(methods);
    },
    refused,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(front, { force: true });
    },
  };
}
