// The supervisor's log: the JSON lines pino writes (level, time, pid, bindings, fields, msg; an
// Error as pino's `{type, message, stack}`), without loading pino: with its dependencies it cost
// the supervisor process ~7 MB of its ~55 (bench row 9). A terminal gets pino and pino-pretty
// instead (cli.ts). pino's Logger fits `Log`, so the supervisor's code takes either.
import { DriverError } from '../errors.ts';

interface LogFn {
  (obj: object, msg?: string): void;
  (msg: string): void;
}

export interface Log {
  readonly error: LogFn;
  readonly warn: LogFn;
  readonly info: LogFn;
  readonly debug: LogFn;
  child(bindings: Record<string, unknown>): Log;
}

/** pino's levels, in pino's order. */
const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;

/** The level's number, or null for `silent`. @throws DriverError for a level pino does not know. */
function levelOf(level: string): number | null {
  if (level === 'silent') return null;
  const n = (LEVELS as Record<string, number>)[level];
  if (n === undefined) throw new DriverError('LN_ERR_BAD_REQUEST', `--log-level must be one of ${Object.keys(LEVELS).join(', ')}, silent; got ${level}`);
  return n;
}

const errorJson = (e: Error): object => ({ type: e.constructor.name, message: e.message, stack: e.stack, ...(e as { code?: unknown }).code === undefined ? {} : { code: (e as { code?: unknown }).code } });

const replacer = (_key: string, v: unknown): unknown => (v instanceof Error ? errorJson(v) : typeof v === 'bigint' ? v.toString() : v);

/** A logger that writes pino's JSON lines to `write` (stdout) for `level` and above. */
export function jsonLog(level: string, write: (line: string) => void = (l) => process.stdout.write(l)): Log {
  const min = levelOf(level);
  const make = (bindings: Record<string, unknown>): Log => {
    const at =
      (n: number): LogFn =>
      (a: object | string, msg?: string) => {
        if (min === null || n < min) return;
        const fields = typeof a === 'string' ? {} : a;
        const text = typeof a === 'string' ? a : msg;
        const head = { level: n, time: new Date().toISOString(), pid: process.pid, ...bindings, ...fields };
        write(`${JSON.stringify(text === undefined ? head : { ...head, msg: text }, replacer)}\n`);
      };
    return { error: at(LEVELS.error), warn: at(LEVELS.warn), info: at(LEVELS.info), debug: at(LEVELS.debug), child: (more) => make({ ...bindings, ...more }) };
  };
  return make({});
}
