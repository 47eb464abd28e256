// How a failed plugin call is answered and logged, the same over HTTP (fastify's error handler)
// and over the supervisor's framed link (createPlugin's `call`).
import type { FastifyBaseLogger } from 'fastify';
import { bodyTooLargeErr, isDriverError, phraseOf } from '../errors.ts';

/** A call's answer: the HTTP status and the JSON body Docker gets. */
export interface CallReply {
  readonly status: number;
  readonly body: string;
}

/** One plugin call by method name and raw body, without HTTP (the supervisor's framed link). */
export type PluginCall = (method: string, raw: string) => Promise<CallReply>;

/**
 * An Err text without the method name in front: Docker puts `NetworkDriver.CreateEndpoint: ` (or
 * `IpamDriver.…`) before every Err it shows, so a text that starts with the method (full or short,
 * `CreateEndpoint: `) would name it twice. The log line keeps the text as thrown.
 */
function withoutMethod(url: string, text: string): string {
  const method = url.replace(/^\//, '');
  let out = text;
  for (const prefix of [`${method}: `, `${method.slice(method.indexOf('.') + 1)}: `]) {
    if (out.startsWith(prefix)) out = out.slice(prefix.length);
  }
  return out;
}

/** The fields of a request body that name what the call is about, as Docker spells them (network, endpoint, IPAM). */
const ID_FIELDS = ['NetworkID', 'EndpointID', 'PoolID', 'Pool', 'Address'] as const;
/** Longer values are cut: the line stays small whatever the body holds. */
const ID_MAX = 100;

/**
 * The ids a call's raw body names (NetworkID, EndpointID; PoolID, Pool, Address for IPAM), for
 * its failure's log line: only these fields, only strings, each cut to ID_MAX; never the body
 * (nor its options). Empty when the body is not a JSON object.
 */
export function callIds(raw: string): Record<string, string> {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    return {};
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return {};
  const ids: Record<string, string> = {};
  for (const f of ID_FIELDS) {
    const v = (body as Record<string, unknown>)[f];
    if (typeof v === 'string' && v !== '') ids[f] = v.length > ID_MAX ? `${v.slice(0, ID_MAX)}…` : v;
  }
  return ids;
}

/** The status and `{Err}` of a failed call, logged the way the HTTP path logs it, with the ids the call named (callIds). */
export function failure(err: unknown, url: string, log: FastifyBaseLogger, refused: string | null, ids: Record<string, string> = {}): { status: number; body: { Err: string } } {
  if (isDriverError(err)) {
    // A kernel command's own error (its stderr) goes to the log; Docker gets the fixed phrase.
    const kernel = err.code.startsWith('LN_ERR_KERNEL_');
    const told = kernel ? `${phraseOf(err.code)}; see the ledgernet log` : withoutMethod(url, err.message);
    log.warn({ code: err.code, url, ...ids, err: err.cause ?? undefined, ...(kernel ? { detail: err.message } : {}) }, kernel ? told : err.message);
    return { status: err.code === 'LN_ERR_BAD_REQUEST' ? 400 : 500, body: { Err: told } };
  }
  if (refused) {
    log.warn({ url, ...ids }, refused);
    return { status: 400, body: { Err: withoutMethod(url, refused) } };
  }
  log.error({ err, url, ...ids }, 'unexpected error in a plugin call');
  return { status: 500, body: { Err: 'internal error (LN_ERR_INTERNAL); see the ledgernet log' } };
}

/**
 * The Err for a request fastify refused before any handler ran (too large, a bad
 * Content-Length, a body that is not text): what was wrong, never "internal error".
 */
export function requestError(err: unknown, url: string, contentLength: string | undefined, limit: number): string | null {
  const e = err as { code?: unknown; statusCode?: unknown; message?: unknown };
  if (typeof e.code !== 'string' || !e.code.startsWith('FST_') || typeof e.statusCode !== 'number' || e.statusCode >= 500) return null;
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    const n = Number(contentLength);
    const size = Number.isFinite(n) && n > 0 ? `${n} bytes` : 'more bytes than that';
    return bodyTooLargeErr(size, limit);
  }
  return `the request was refused (${String(e.message)}); nothing was changed`;
}

