import { access, constants } from 'node:fs/promises';
import { request } from 'node:http';
import { controlSocket } from '../config.ts';
import { deniedError, isDenied } from './denied.ts';
import { socketAnswers } from './socket.ts';

/** How long a GET may take before the daemon is taken as stopped or hung (SIGSTOP: its socket still accepts). */
const GET_TIMEOUT_MS = 5_000;
/** A POST runs a pass or a release (kernel work, up to --apply-timeout per call). */
const POST_TIMEOUT_MS = 120_000;

/**
 * Calls the running daemon's control socket; null when no daemon accepts the connection. A daemon
 * that accepts but does not answer in time (stopped, hung), or a socket this user may not use, is
 * an error naming the socket.
 */
export async function callDaemon(stateDir: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
  const socketPath = controlSocket(stateDir);
  if (!(await socketAnswers(socketPath))) {
    // A socket (or state dir) this user may not use is not a stopped daemon.
    await access(socketPath, constants.W_OK).catch((e: unknown) => {
      if (isDenied(e)) throw deniedError(socketPath, e, "root, the state dir's owner or the control socket's group");
    });
    return null;
  }
  const timeoutMs = method === 'GET' ? GET_TIMEOUT_MS : POST_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const headers = body === undefined ? { 'content-length': 0 } : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) };
    const req = request({ socketPath, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        try {
          const body: unknown = JSON.parse(text);
          const err = (body as { error?: unknown } | null)?.error;
          if ((res.statusCode ?? 500) >= 400) reject(new Error(typeof err === 'string' ? err : `daemon answered ${res.statusCode}: ${text}`));
          else resolve(body);
        } catch (e) {
          reject(e);
        }
      });
    });
    req.setTimeout(timeoutMs, () => {
      req.destroy(new Error(`the daemon on ${socketPath} does not answer within ${timeoutMs / 1000} s (stopped, e.g. SIGSTOP, or hung?)`));
    });
    req.on('error', reject);
    req.end(payload);
  });
}
