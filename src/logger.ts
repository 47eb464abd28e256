// The logger of `ledgernet serve` (supervisor and worker) and the CLI. Apart from main.ts, so that
// the supervisor process, which loads only what it needs, does not load the daemon with it.
import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';
import { DriverError } from './errors.ts';

/** pino-pretty (and what it loads) only for a terminal: a service's processes never need it (memory, bench row 9). */
const pretty = (o: import('pino-pretty').PrettyOptions) => (createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty'))(o);

/** JSON lines for machines; human-readable lines when stdout is a terminal. */
export function createLogger(level: string): Logger {
  if (!(level in pino.levels.values) && level !== 'silent') {
    throw new DriverError('LN_ERR_BAD_REQUEST', `--log-level must be one of ${Object.keys(pino.levels.values).join(', ')}, silent; got ${level}`);
  }
  const opts = { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (process.stdout.isTTY) return pino(opts, pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid' }));
  return pino(opts);
}
