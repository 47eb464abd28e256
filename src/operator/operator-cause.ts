// Who an operator's command is (the envelope's `cause` of what it records, see Cause in
// src/events/domain/types.ts): what the command states of itself, checked, and the uid and pid
// the kernel gives for it.
import { userInfo } from 'node:os';
import { DriverError } from '../errors.ts';
import { checkReason } from '../events/domain/cause.ts';
import type { Cause } from '../events/domain/types.ts';

/** A login name as an operator's command states it. */
const LOGIN_NAME = /^[\p{L}\p{N}._@-]{1,64}$/u;

/** The commands that record what they do, with the operator who ran them. */
const OPERATOR_COMMANDS = ['release', 'repair', 'events archive', 'cluster forget'] as const;
type OperatorCommand = (typeof OPERATOR_COMMANDS)[number];
const isOperatorCommand = (c: unknown): c is OperatorCommand => OPERATOR_COMMANDS.some((k) => k === c);

/** What an operator's command states of itself: its name and the operator's `--reason`. */
export interface OperatorNote {
  readonly command: OperatorCommand;
  readonly reason?: string;
}

/** The body a command sends with its request to the daemon: its note and the login name it runs for. */
export function statedBody(note: OperatorNote): Record<string, string> {
  const user = statedUser();
  return { command: note.command, ...(user === undefined ? {} : { user }), ...(note.reason === undefined ? {} : { reason: note.reason }) };
}

/** The operator's login name: the one `sudo` ran the command for, else the command's own user. */
function statedUser(): string | undefined {
  const sudo = process.env['SUDO_USER'];
  if (sudo && LOGIN_NAME.test(sudo)) return sudo;
  try {
    const name = userInfo().username;
    return LOGIN_NAME.test(name) ? name : undefined;
  } catch {
    return undefined; // a uid without a passwd entry (a container)
  }
}

/**
 * The cause of what an operator's command records: what the command stated (its name, the login
 * name, the `--reason`; the request's body, checked) and the uid and pid the kernel gave for the
 * connection (pid 0: the peer is in another pid namespace, unknown here).
 */
export function operatorCause(body: unknown, peer: { readonly uid: number; readonly pid: number } | null): Cause {
  const b = body === undefined || body === null || body === '' ? {} : body;
  if (typeof b !== 'object' || Array.isArray(b)) throw new DriverError('LN_ERR_BAD_REQUEST', 'the request body must be a JSON object');
  const { command = 'release', user, reason, ...rest } = b as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length > 0) throw new DriverError('LN_ERR_BAD_REQUEST', `the request body has unknown field(s) ${extra.join(', ')}`);
  if (!isOperatorCommand(command)) {
    throw new DriverError('LN_ERR_BAD_REQUEST', `command must be one of ${OPERATOR_COMMANDS.join(', ')}, got ${JSON.stringify(command)?.slice(0, 64)}`);
  }
  if (user !== undefined && (typeof user !== 'string' || !LOGIN_NAME.test(user))) {
    throw new DriverError('LN_ERR_BAD_REQUEST', `user must be a login name (letters, digits, . _ @ -, at most 64), got ${JSON.stringify(user)?.slice(0, 80)}`);
  }
  if (reason !== undefined) {
    const problem = typeof reason === 'string' ? checkReason(reason) : 'the reason must be a string';
    if (problem) throw new DriverError('LN_ERR_BAD_REQUEST', problem);
  }
  return {
    by: 'operator',
    command,
    ...(peer ? { uid: peer.uid, ...(peer.pid > 0 ? { pid: peer.pid } : {}) } : {}),
    ...(typeof user === 'string' ? { user } : {}),
    ...(typeof reason === 'string' ? { reason } : {}),
  };
}
