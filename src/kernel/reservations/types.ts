// Port reservations as plain data. A container port published through DNAT needs no socket to
// work, but without one nothing keeps another program (or a container of Docker's bridge driver,
// whose docker-proxy or placeholder socket binds the port) from binding the same host port and
// taking part of its traffic. Docker's bridge driver always holds the port (docker-proxy; with
// `userland-proxy: false` a placeholder socket of its port mapper); so does ledgernet: one socket
// per published host address and port, held by the daemon (index.ts), planned from the log like
// any kernel object (reconciler/reservations.ts), so after a restart the first pass holds them again.

/** One host address and port to hold. */
export interface ReserveSpec {
  readonly proto: 'tcp' | 'udp';
  /** Canonical: `0.0.0.0` or `::` for every address of the family (`::` holds IPv6 only), else one address. */
  readonly hostIp: string;
  readonly hostPort: number;
}

/** A reservation as the daemon holds it. */
export interface Reservation extends ReserveSpec {
  readonly name: string;
  /** Who it was made for. */
  readonly owner: ReserveBase['owner'];
}

interface ReserveBase {
  /** `tcp 0.0.0.0:8080`: the held address, the object's name in plans and errors. */
  readonly name: string;
  readonly owner: { readonly networkId: string | null; readonly endpointId: string | null };
  readonly reason: 'missing' | 'orphan';
  readonly detail?: string;
}

/** Reservation work: a port bound (TCP: listening) before the change counts as applied, or released. */
export type ReserveChange = (ReserveBase & { readonly kind: 'port.reserve'; readonly spec: ReserveSpec }) | (ReserveBase & { readonly kind: 'port.release' });

/** The reservations' holder: what it holds, and the door to reserve and release. */
export interface ReservePort {
  list(): readonly Reservation[];
  /**
   * The reservation named `name` while it is held, being bound or being released: a listener of
   * the host by that name is ledgernet's own then, not a program's.
   */
  find(name: string): Reservation | undefined;
  /**
   * The names find() knows now (held, being bound or being released): a reading of the host's
   * listeners takes them before it reads, as a socket it sees may be closed and forgotten by the
   * time the reading is done.
   */
  names(): ReadonlySet<string>;
  /** Releases first, then reserves; reports the changes that failed, by index. */
  apply(changes: readonly ReserveChange[]): Promise<{ readonly failures: readonly { readonly index: number; readonly message: string }[] }>;
}

/** The name of a reservation: protocol and address, `tcp 0.0.0.0:8080`, `udp [::]:53`. */
export function reservationName(p: Pick<ReserveSpec, 'proto' | 'hostIp' | 'hostPort'>): string {
  const host = p.hostIp.includes(':') ? `[${p.hostIp}]` : p.hostIp;
  return `${p.proto} ${host}:${p.hostPort}`;
}

export function isReserveChange(a: { readonly kind: string }): a is ReserveChange {
  return a.kind === 'port.reserve' || a.kind === 'port.release';
}

/** A bind that failed, naming the address and port (`EADDRINUSE`: another program holds them). */
export function reserveError(spec: ReserveSpec, e: Error): Error {
  const code = (e as NodeJS.ErrnoException).code ?? 'error';
  const why = code === 'EADDRINUSE' ? 'address already in use' : code === 'EADDRNOTAVAIL' ? 'address not available on this host' : e.message;
  return new Error(`${code}: cannot hold ${reservationName(spec)}: ${why}`, { cause: e });
}
