// The userland proxy's objects as plain data: a listener on a host address the kernel cannot DNAT
// from (the IPv6 loopback: IPv6 has no route_localnet), forwarding to a container's address. The
// reconciler plans them like kernel objects (open the missing, close the unwanted); the running
// listeners are the daemon's (index.ts), so they come back from the log after a restart.

/** One published port served by the proxy. */
export interface ProxySpec {
  readonly proto: 'tcp' | 'udp';
  /** The host address it listens on (canonical, e.g. `::1`). */
  readonly hostIp: string;
  readonly hostPort: number;
  /** The container's address (IPv6 when it has one, else IPv4: 6→4 as docker-proxy) and port. */
  readonly targetIp: string;
  readonly targetPort: number;
}

/** A listener as the daemon holds it. */
export interface ProxyListener extends ProxySpec {
  readonly name: string;
  /** Open TCP connections, or live UDP flows. */
  readonly connections: number;
  /** Who it was opened for. */
  readonly owner: ProxyBase['owner'];
}

interface ProxyBase {
  /** `tcp [::1]:8080`: the listening address, the object's name in plans and errors. */
  readonly name: string;
  readonly owner: { readonly networkId: string | null; readonly endpointId: string | null };
  readonly reason: 'missing' | 'orphan' | 'drifted';
  readonly detail?: string;
}

/** Proxy work: a listener opened (it listens before the change counts as applied) or closed with its connections. */
export type ProxyChange = (ProxyBase & { readonly kind: 'proxy.open'; readonly spec: ProxySpec }) | (ProxyBase & { readonly kind: 'proxy.close' });

/** The proxy host: what listens, and the door to open and close listeners. */
export interface ProxyPort {
  list(): readonly ProxyListener[];
  /** Closes first, then opens; reports the changes that failed, by index. */
  apply(changes: readonly ProxyChange[]): Promise<{ readonly failures: readonly { readonly index: number; readonly message: string }[] }>;
}

/** The name of a listener: protocol and listening address, `tcp [::1]:8080`. */
export function proxyName(p: Pick<ProxySpec, 'proto' | 'hostIp' | 'hostPort'>): string {
  const host = p.hostIp.includes(':') ? `[${p.hostIp}]` : p.hostIp;
  return `${p.proto} ${host}:${p.hostPort}`;
}

/** What a listener forwards to, `[fd00::2]:80`. */
export function proxyTarget(p: Pick<ProxySpec, 'targetIp' | 'targetPort'>): string {
  return `${p.targetIp.includes(':') ? `[${p.targetIp}]` : p.targetIp}:${p.targetPort}`;
}

export function isProxyChange(a: { readonly kind: string }): a is ProxyChange {
  return a.kind === 'proxy.open' || a.kind === 'proxy.close';
}

/** A listen that failed, naming the address and port (`EADDRINUSE` says another program holds them). */
export function listenError(spec: ProxySpec, e: Error): Error {
  const code = (e as NodeJS.ErrnoException).code ?? 'error';
  const why = code === 'EADDRINUSE' ? 'address already in use' : code === 'EADDRNOTAVAIL' ? 'address not available on this host' : e.message;
  return new Error(`${code}: cannot listen on ${proxyName(spec)}: ${why}`, { cause: e });
}
