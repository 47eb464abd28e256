// One error type crosses folder boundaries. `message` is for the user (Docker shows it): a fixed
// phrase of the code's row plus context (ids, names), never raw stderr. Detail that is not for
// the user (stderr, stacks) goes in `cause`, the logs and the recorded events.

/**
 * How a failure behaves over time. `retryable`: it may pass on its own (a race with the kernel,
 * a timeout); the reconcile loop tries again with backoff. `terminal`: it stays until something
 * changes (the desired state, the operator's host); the loop does not retry it until then.
 */
type ErrorKind = 'terminal' | 'retryable';

interface ErrorRow {
  /** What the code means (documentation, once). */
  readonly means: string;
  readonly kind: ErrorKind;
  /** The fixed phrase a user-facing message starts from or carries. */
  readonly phrase: string;
}

function row(kind: ErrorKind, phrase: string, means: string): ErrorRow {
  return { means, kind, phrase };
}

/** Every error code, one row each. */
export const ERRORS = {
  LN_ERR_BAD_REQUEST: row('terminal', 'the request is malformed', 'the request body is missing, not JSON, or lacks a required field'),
  LN_ERR_UNKNOWN_NETWORK: row('terminal', 'the network is not known to ledgernet', 'the call names a network ledgernet does not know'),
  LN_ERR_UNKNOWN_ENDPOINT: row('terminal', 'the endpoint is not known to ledgernet', 'the call names an endpoint ledgernet does not know'),
  LN_ERR_CONFLICT: row('terminal', 'the call contradicts the log', 'the call contradicts what the log already holds (same id, other data)'),
  LN_ERR_INVALID_OPTION: row('terminal', 'an option is invalid', 'a network or endpoint option is unknown or malformed'),
  LN_ERR_IPAM_OVERLAP: row('terminal', 'the subnet overlaps another', 'a subnet overlaps one that another ledgernet network or pool already holds'),
  LN_ERR_IPAM_EXHAUSTED: row('terminal', 'no address or prefix is left', 'a pool (or the default range for automatic pools) has no free address or prefix left'),
  LN_ERR_IPAM_ADDRESS: row('terminal', 'the address cannot be used', 'a requested address is malformed, outside its pool, or already in use'),
  LN_ERR_IPAM_UNKNOWN_POOL: row('terminal', 'the pool is not known to ledgernet', 'the call names a PoolID ledgernet does not hold'),
  LN_ERR_LINK_CONFLICT: row(
    'terminal',
    'a link that is not ledgernet\'s holds the name',
    'a foreign link holds a name ledgernet needs; it is left alone until the operator removes it',
  ),
  LN_ERR_KERNEL_REFUSED: row(
    'terminal',
    'the kernel refused the change',
    'a kernel command failed in a way that trying again does not fix (no permission, an invalid or unsupported argument)',
  ),
  LN_ERR_KERNEL_EXEC: row('retryable', 'a kernel command failed', 'a kernel command (ip, iptables, tc) failed; the next pass tries again'),
  LN_ERR_KERNEL_PARSE: row('retryable', 'the output of a kernel command could not be read', 'the output of a kernel command could not be parsed'),
  LN_ERR_LOG_CORRUPT: row('terminal', 'the event log is damaged', 'the event log holds a damaged record before its end'),
  LN_ERR_LOG_NEWER: row(
    'terminal',
    'the event log was written by a newer ledgernet',
    'the event log, an archive or the snapshot holds what only a newer ledgernet writes (an event type or version, a snapshot format, a network option this version does not know): run that version or a newer one; nothing is damaged',
  ),
  LN_ERR_LOG_IO: row('retryable', 'the event log could not be read or written', 'the event log could not be read or written'),
  LN_ERR_LOCKED: row('terminal', 'another ledgernet process holds the state directory', 'another ledgernet process holds the state directory'),
  LN_ERR_SOCKET_IN_USE: row('terminal', 'another process answers on the socket', 'another process answers on the plugin socket'),
  LN_ERR_HOST_IN_USE: row('terminal', 'another ledgernet instance runs on this host', 'another ledgernet instance runs on this host (the host-wide guard)'),
  LN_ERR_CLUSTER_SUBNET: row(
    'terminal',
    'the cluster network has another subnet',
    'a cluster network was created with a --subnet other than the one the cluster\'s KV bucket holds for it',
  ),
  LN_ERR_CLUSTER_RECORD: row(
    'terminal',
    'a cluster record is in a format this ledgernet does not read',
    'a record in the cluster\'s KV bucket (a network\'s record) was written by a newer ledgernet or edited by hand: joining or creating that network is refused, naming the key; other networks are not affected',
  ),
  LN_ERR_CLUSTER_UNAVAILABLE: row(
    'retryable',
    'the cluster\'s KV bucket cannot be reached',
    'joining a cluster network or claiming an address block needs NATS, and NATS did not answer',
  ),
  LN_ERR_CLUSTER_FORGOTTEN: row(
    'terminal',
    'this host was forgotten by the cluster',
    'an operator forgot this host (ledgernet cluster forget) and its log still has cluster networks, whose address blocks other hosts may hold now: it stays out of the cluster until they are removed or it starts afresh',
  ),
  LN_ERR_CLUSTER_HOST_TAKEN: row(
    'terminal',
    'another machine is in the cluster under this host name',
    'another ledgernet instance (another state directory: another machine under the same --host, e.g. a cloned VM sharing the hostname) wrote this host\'s record within the host timeout: this one stays out of the cluster until it runs under its own --host or that record times out',
  ),
  LN_ERR_PORT_IN_USE: row(
    'retryable',
    'another program already listens on that host address and port',
    'a published port\'s host address and port are held by a program on the host: ProgramExternalConnectivity refuses it (the host\'s listeners, read through sock_diag; SCTP endpoints from /proc/net/sctp/eps), ' +
      'or the daemon could not hold it (its placeholder socket, or the userland proxy\'s listener on ::1, could not bind) and the next pass tries again',
  ),
  LN_ERR_NO_DESCRIPTORS: row(
    'retryable',
    'the daemon has no file descriptor left (raise its open-file limit: LimitNOFILE, ulimit -n): it holds one per published host address and port',
    'the daemon could not hold a published port (or open a proxy listener) because its open-file limit is reached (EMFILE) or the system\'s (ENFILE); the next pass tries again',
  ),
  LN_ERR_APPLY: row('retryable', 'the kernel did not reach the desired state', 'the kernel did not reach the desired state'),
  LN_ERR_TIMEOUT: row('retryable', 'the kernel did not converge in time', 'an operation did not finish in time'),
  LN_ERR_DAEMON_UNREACHABLE: row('retryable', 'the ledgernet daemon does not answer', 'the ledgernet daemon does not answer on its control socket'),
  LN_ERR_DOCKER_HOLDS: row('terminal', 'Docker still holds it', 'an operator command would take away what Docker still holds (a network, endpoint, pool or address)'),
  LN_ERR_DOCKER_UNAVAILABLE: row('retryable', "Docker's API does not answer", "an operator command that must ask Docker's API first could not reach it"),
  LN_ERR_CONFIG: row('terminal', 'the configuration is invalid', 'a flag, an environment variable or an installation step is invalid'),
  LN_ERR_INSTALL: row('terminal', 'the installation step failed', 'ledgernet install could not write or load the systemd unit'),
  LN_ERR_INTERNAL: row('terminal', 'internal error', 'a bug: an unexpected error'),
} as const satisfies Record<string, ErrorRow>;

export type ErrorCode = keyof typeof ERRORS;

/** Whether failures with this code may pass on their own (the loop retries them with backoff). */
export function isRetryable(code: ErrorCode): boolean {
  return ERRORS[code].kind === 'retryable';
}

/** The fixed user-facing phrase of a code. */
export function phraseOf(code: ErrorCode): string {
  return ERRORS[code].phrase;
}

export class DriverError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, opts: { cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'DriverError';
    this.code = code;
  }

  /** From the code's row: whether trying again may succeed. */
  get retryable(): boolean {
    return isRetryable(this.code);
  }
}

export function isDriverError(e: unknown): e is DriverError {
  return e instanceof DriverError;
}

/**
 * The Err of Docker's empty-body retry (moby/moby#39331) that ledgernet cannot match to the call
 * it repeats: `why` says what stands in the way; `unchanged`: nothing was done for this call.
 */
export function cutOffRetryErr(why: string, o: { recorded?: boolean; unchanged?: boolean } = {}): string {
  const cut = o.recorded === false ? 'cut off by a ledgernet restart before it was recorded' : 'cut off by a ledgernet restart';
  const tail = o.unchanged === false ? 'run the docker command again' : 'nothing was changed for this call, run the docker command again';
  return `the request body is empty (Docker's retry of a call ${cut}, moby/moby#39331)${why}; ${tail}`;
}


/**
 * The largest request body a plugin call may have (fastify's default; Docker's biggest calls are
 * a few KiB): the worker's limit, and the supervisor's, which refuses a larger body as soon as its
 * declared or decoded length passes it.
 */
export const BODY_LIMIT = 1024 * 1024;

/** The Err of a body over `limit` (BODY_LIMIT); `size` e.g. "2000000 bytes" or "at least 1048577 bytes". */
export function bodyTooLargeErr(size: string, limit: number): string {
  return `the request body is ${size}, over the limit of ${limit} bytes; nothing was changed`;
}
