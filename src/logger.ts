// The logger of `ledgernet serve` (supervisor and worker) and the CLI. Apart from main.ts, so that
// the supervisor process, which loads only what it needs, does not load the daemon with it.
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import { DriverError } from './errors.ts';

/** JSON lines for machines; human-readable lines when stdout is a terminal. */
export function createLogger(level: string): Logger {
  if (!(level in pino.levels.values) && level !== 'silent') {
    throw new DriverError('LN_ERR_BAD_REQUEST', `--log-level must be one of ${Object.keys(pino.levels.values).join(', ')}, silent; got ${level}`);
  }
  const opts = { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  if (process.stdout.isTTY) return pino(opts, pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid' }));
  return pino(opts);
}
