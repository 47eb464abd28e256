// The userland proxy's host: the listeners the daemon holds, opened and closed by the reconciler
// (reconciler/proxies.ts plans them from the log like any kernel object). Opening resolves once
// the socket listens, so a Docker call waits for it; a port another program holds fails the open.
import type { ProxyLog, Running } from './running.ts';
import { openTcp } from './tcp.ts';
import { openUdp } from './udp.ts';
import type { ProxyChange, ProxyListener, ProxyPort, ProxySpec } from './types.ts';

/** How long a UDP flow may stay idle before it is closed (docker-proxy: 90 s). */
const UDP_IDLE_MS = 90_000;

export interface ProxyHost extends ProxyPort {
  /** Closes every listener (shutdown). */
  closeAll(): Promise<void>;
}

export function createProxyHost(log: ProxyLog, opts: { readonly udpIdleMs?: number } = {}): ProxyHost {
  const running = new Map<string, { spec: ProxySpec; owner: ProxyListener['owner']; run: Running }>();
  const close = async (name: string) => {
    const r = running.get(name);
    if (!r) return;
    running.delete(name);
    await r.run.close();
  };
  const open = async ({ name, spec, owner }: Extract<ProxyChange, { kind: 'proxy.open' }>) => {
    await close(name);
    const run = spec.proto === 'tcp' ? await openTcp(spec, log) : await openUdp(spec, log, opts.udpIdleMs ?? UDP_IDLE_MS);
    running.set(name, { spec, owner, run });
  };
  return {
    list: (): ProxyListener[] => [...running].map(([name, r]) => ({ ...r.spec, name, owner: r.owner, connections: r.run.connections() })),
    async apply(changes: readonly ProxyChange[]) {
      const failures: { index: number; message: string }[] = [];
      const indexed = changes.map((c, index) => ({ c, index }));
      // Closes first: a port moved from one endpoint to another is free again before it is opened.
      for (const { c, index } of indexed.filter((x) => x.c.kind === 'proxy.close')) {
        await close(c.name).catch((e: unknown) => failures.push({ index, message: (e as Error).message }));
      }
      await Promise.all(
        indexed.map(async ({ c, index }) => {
          if (c.kind !== 'proxy.open') return;
          await open(c).catch((e: unknown) => failures.push({ index, message: (e as Error).message }));
        }),
      );
      return { failures: failures.sort((a, b) => a.index - b.index) };
    },
    async closeAll() {
      await Promise.all([...running.keys()].map(close));
    },
  };
}
