// One error type crosses folder boundaries. `message` is for the user (Docker shows it);
// detail that is not for the user (stderr, stacks) goes in `cause` and the logs.
export const ErrorCodes = {
  LN_ERR_BAD_REQUEST: 'the request body is missing, not JSON, or lacks a required field',
  LN_ERR_UNKNOWN_NETWORK: 'the call names a network ledgernet does not know',
  LN_ERR_UNKNOWN_ENDPOINT: 'the call names an endpoint ledgernet does not know',
  LN_ERR_CONFLICT: 'the call contradicts what the log already holds (same id, other data)',
  LN_ERR_INVALID_OPTION: 'a network or endpoint option is unknown or malformed',
  LN_ERR_IPAM_OVERLAP: 'a subnet overlaps one that another ledgernet network or pool already holds',
  LN_ERR_IPAM_EXHAUSTED: 'a pool (or the default range for automatic pools) has no free address or prefix left',
  LN_ERR_IPAM_ADDRESS: 'a requested address is malformed, outside its pool, or already in use',
  LN_ERR_IPAM_UNKNOWN_POOL: 'the call names a PoolID ledgernet does not hold',
  LN_ERR_KERNEL_EXEC: 'a kernel command (ip, iptables) failed',
  LN_ERR_KERNEL_PARSE: 'the output of a kernel command could not be parsed',
  LN_ERR_LOG_CORRUPT: 'the event log holds a damaged record before its end',
  LN_ERR_LOG_IO: 'the event log could not be read or written',
  LN_ERR_LOCKED: 'another ledgernet process holds the state directory',
  LN_ERR_SOCKET_IN_USE: 'another process answers on the plugin socket',
  LN_ERR_HOST_IN_USE: 'another ledgernet instance runs on this host (the host-wide guard)',
  LN_ERR_APPLY: 'the kernel did not reach the desired state',
  LN_ERR_TIMEOUT: 'an operation did not finish in time',
  LN_ERR_DAEMON_UNREACHABLE: 'the ledgernet daemon does not answer on its control socket',
  LN_ERR_INTERNAL: 'a bug: an unexpected error',
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export class DriverError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  constructor(code: ErrorCode, message: string, opts: { retryable?: boolean; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = 'DriverError';
    this.code = code;
    this.retryable = opts.retryable ?? false;
  }
}

export function isDriverError(e: unknown): e is DriverError {
  return e instanceof DriverError;
}
