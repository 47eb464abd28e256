// The `ledgernet` command line: one option table per command. An option or argument the command
// does not take is refused by name (a usage error, exit 1, nothing done): ignored, `reconcile
// --dryrun` or `release --dry-run` would act for real.
import { parseArgs } from 'node:util';
import { DriverError } from './errors.ts';

const str = { type: 'string' } as const;
const bool = { type: 'boolean' } as const;

/** Taken by every command. */
const COMMON = { 'state-dir': str, help: { type: 'boolean', short: 'h' } } as const;

/** Where NATS is and how to authenticate (serve publishes, audit reads). */
const NATS = {
  nats: str,
  'nats-token': str,
  'nats-creds': str,
  'nats-tls-ca': str,
  'nats-tls-cert': str,
  'nats-tls-key': str,
  'nats-stream': str,
} as const;

/**
 * Each command: its options, and the positional arguments it takes (`args`: their names for the
 * usage message, `optional`: how many of them may be left out).
 */
const COMMANDS = {
  serve: {
    options: {
      socket: str,
      'reconcile-interval': str,
      'abandoned-grace': str,
      'archive-log-size': str,
      'log-level': str,
      'in-process': bool,
      'worker-watchdog': str,
      'worker-start-timeout': str,
      'apply-timeout': str,
      metrics: str,
      'docker-socket': str,
      firewall: str,
      'allow-direct-routing': bool,
      'ipv6-forwarding': bool,
      'control-group': str,
      'default-pool': str,
      'default-pool-size': str,
      'default-pool6': str,
      'default-pool6-size': str,
      ...NATS,
      'nats-retention': str,
      'nats-max-age': str,
      'nats-dup-window': str,
      host: str,
      vtep: str,
      'cluster-host-timeout': str,
    },
    args: [],
  },
  reconcile: { options: { 'dry-run': bool, json: bool, firewall: str, 'allow-direct-routing': bool }, args: [] },
  status: { options: { json: bool, firewall: str }, args: [] },
  events: { options: { json: bool, follow: bool, since: str, network: str, container: str, address: str }, args: ['verify|archive'], optional: 1 },
  release: { options: { 'dry-run': bool, reason: str, force: bool, 'docker-socket': str }, args: ['ID|CIDR|IP'] },
  repair: { options: { 'dry-run': bool, 'docker-socket': str, reason: str }, args: [] },
  install: { options: { root: str, 'no-start': bool, prefix: str, force: bool }, args: [] },
  uninstall: { options: { root: str }, args: [] },
  audit: { options: { ...NATS, host: str, since: str, follow: bool, json: bool, verify: bool, network: str, container: str, address: str }, args: [] },
  cluster: { options: { 'dry-run': bool, reason: str }, args: ['forget', 'HOST'] },
} as const;

type Command = keyof typeof COMMANDS;
type Table = typeof COMMON & { [C in Command]: (typeof COMMANDS)[C]['options'] }[Command];
type AllOptions = typeof COMMON & UnionToIntersection<(typeof COMMANDS)[Command]['options']>;
type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;

/** The values of every option any command takes (each command sets only its own). */
export type Values = { [K in keyof AllOptions]?: AllOptions[K] extends { type: 'string' } ? string : boolean };

export interface ParsedCli {
  /** undefined: no command (print the usage). */
  readonly cmd: Command | undefined;
  readonly values: Values;
  /** The command's positional arguments (without the command). */
  readonly args: readonly string[];
}

/** Every option any command takes, by name (the usage text must name each: test/unit/operator/cli-args.test.ts). */
export function optionNames(): string[] {
  return [...new Set([...Object.keys(COMMON), ...Object.values(COMMANDS).flatMap((c) => Object.keys(c.options))])];
}

const usageError = (msg: string) => new DriverError('LN_ERR_CONFIG', `${msg} (see ledgernet --help)`);

const isCommand = (c: string): c is Command => Object.hasOwn(COMMANDS, c);

/** Parses `argv` against the command's own table; throws a usage error naming what it does not take. */
export function parseCli(argv: readonly string[]): ParsedCli {
  // All the tables at once first, to find the command whatever options come before it.
  const all = { ...COMMON } as Record<string, { type: 'string' | 'boolean'; short?: string }>;
  for (const c of Object.values(COMMANDS)) Object.assign(all, c.options);
  // (Not strict: an option no command takes is refused below, naming the command.)
  const [first] = parseArgs({ args: [...argv], options: all, allowPositionals: true, strict: false }).positionals;
  if (first === undefined || !isCommand(first)) {
    const { values, positionals } = parseOrRefuse(argv, all, 'ledgernet');
    if (positionals[0] !== undefined) throw usageError(`unknown command '${positionals[0]}'`);
    return { cmd: undefined, values: values as Values, args: [] };
  }
  const cmd = first;
  const spec = COMMANDS[cmd];
  const { values, positionals } = parseOrRefuse(argv, { ...COMMON, ...spec.options } satisfies Table, `ledgernet ${cmd}`);
  const args = positionals.slice(1);
  const optional = 'optional' in spec ? spec.optional : 0;
  if (args.length > spec.args.length) {
    const extra = args.slice(spec.args.length).join(' ');
    throw usageError(spec.args.length === 0 ? `ledgernet ${cmd} takes no arguments, got ${extra}` : `ledgernet ${cmd} takes ${spec.args.join(' ')}, got also ${extra}`);
  }
  if (args.length < spec.args.length - optional) throw usageError(`ledgernet ${cmd} needs ${spec.args.join(' ')}`);
  // A fixed word (events verify) must be that word: `events verfy` would print the log instead.
  spec.args.forEach((name, i) => {
    const words = name.split('|');
    if (/^[a-z|]+$/.test(name) && args[i] !== undefined && !words.includes(args[i] as string)) {
      const orNothing = i >= spec.args.length - optional ? ' or nothing' : '';
      throw usageError(`ledgernet ${cmd} takes ${words.map((w) => `'${w}'`).join(', ')}${orNothing}, got '${args[i]}'`);
    }
  });
  return { cmd, values: values as Values, args };
}

function parseOrRefuse(argv: readonly string[], options: Record<string, { type: 'string' | 'boolean'; short?: string }>, who: string) {
  try {
    return parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const name = /'([^']+)'/.exec((e as Error).message)?.[1] ?? '?';
      throw usageError(`${who} does not take the option ${name}`);
    }
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') throw usageError(`${who}: ${(e as Error).message}`);
    throw e;
  }
}
