// `ledgernet install` / `ledgernet uninstall`: put the systemd unit in place (or remove it) and,
// when systemd runs this machine, load, enable and start it (or stop, disable and unload it).
// Like the CLI commands, this sits at the edge; it runs `systemctl` only (argument arrays, never a
// shell). Both commands are idempotent: running one twice changes nothing the second time.
// Settings belong in drop-ins (ledgernet.service.d/*.conf), which install never touches: a unit
// changed since install wrote it (its stamp line no longer matches) is refused, not overwritten.
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readlinkSync } from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { SERVE_NODE_FLAGS } from '../config.ts';
import { DriverError } from '../errors.ts';

const UNIT_NAME = 'ledgernet.service';
/** The plugin socket, held by systemd across the service's restarts and crashes (socket activation). */
const SOCKET_UNIT = 'ledgernet.socket';
const UNITS = [SOCKET_UNIT, UNIT_NAME] as const;
/** Where the unit goes, relative to --root. */
const UNIT_DIR = 'etc/systemd/system';
/** The template shipped with the package: packaging/systemd/ledgernet.service. */
export const UNIT_TEMPLATE = fileURLToPath(new URL('../../packaging/systemd/ledgernet.service', import.meta.url));
/** Installed as it is: packaging/systemd/ledgernet.socket. */
export const SOCKET_UNIT_FILE = fileURLToPath(new URL('../../packaging/systemd/ledgernet.socket', import.meta.url));
/** This checkout's entry point; the same path from src/ (tsx) and dist/. */
const CHECKOUT_CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface InstallOptions {
  /** Install into this tree instead of `/` (a package build, a test). Nothing is started then. */
  readonly root: string;
  /** Write and enable the unit, but do not start it. */
  readonly noStart: boolean;
  /** Overwrite a unit that was changed since install wrote it (an operator's edit is lost). */
  readonly force?: boolean;
  /** Run `<prefix>/bin/ledgernet serve` (an `npm install -g --prefix` install) instead of this checkout. */
  readonly prefix?: string;
  /** Where the report goes, one line per call. Default: stdout. */
  readonly say?: (line: string) => void;
  /** Runs systemctl; replaceable in tests. Default: the real one. */
  readonly systemctl?: Systemctl;
  /** Whether systemd is PID 1 here. Default: `/run/systemd/system` exists and root is `/`. */
  readonly systemdRunning?: boolean;
}

export type Systemctl = (args: readonly string[]) => Promise<{ exitCode: number; output: string }>;

const realSystemctl: Systemctl = async (args) => {
  const r = await execa('systemctl', args, { reject: false, stdin: 'ignore', all: true, timeout: 120_000 });
  const output = (r.all ?? '').trim();
  return { exitCode: r.exitCode ?? -1, output: r.exitCode === undefined ? [output, r.shortMessage].filter(Boolean).join('\n') : output };
};

/** The command line the unit runs, as an argument vector. */
function serveCommand(prefix: string | undefined, root: string): string[] {
  if (prefix !== undefined) {
    if (!isAbsolute(prefix)) throw new DriverError('LN_ERR_CONFIG', `--prefix must be an absolute path, got ${prefix}`);
    // A unit whose ExecStart is missing only fails at start (restarted for ever); say it now.
    const bin = join(root, prefix, 'bin', 'ledgernet');
    if (!existsSync(bin)) {
      const dangling = lstatSync(bin, { throwIfNoEntry: false }) !== undefined;
      throw new DriverError(
        'LN_ERR_INSTALL',
        `${bin} ${dangling ? `is a link to a missing file (${readlinkSync(bin)}; the package without its built dist/?)` : 'does not exist'}: ` +
          `install ledgernet there first (npm install -g --prefix ${prefix} <ledgernet package>); nothing was installed`,
      );
    }
    // The node its shebang (`#!/usr/bin/env node`) would run, with the supervisor's V8 flags.
    return ['/usr/bin/env', 'node', ...SERVE_NODE_FLAGS, join(prefix, 'bin', 'ledgernet'), 'serve'];
  }
  if (!existsSync(CHECKOUT_CLI)) throw new DriverError('LN_ERR_INSTALL', `${CHECKOUT_CLI} does not exist: run \`npm run build\` first`);
  return [process.execPath, ...SERVE_NODE_FLAGS, CHECKOUT_CLI, 'serve'];
}

/**
 * One argument as systemd reads it in `ExecStart=`: plain when it holds only safe characters,
 * otherwise double-quoted with C escapes. `%` (specifiers) and `$` (variables) are doubled.
 */
export function quoteExecArg(arg: string): string {
  if (/[\0-\x1f\x7f]/.test(arg)) throw new DriverError('LN_ERR_CONFIG', `cannot put a control character in ExecStart: ${JSON.stringify(arg)}`);
  const escaped = arg.replaceAll('%', '%%').replaceAll('$', '$$$$');
  if (arg !== '' && /^[A-Za-z0-9_@%$+=:,./-]+$/.test(arg)) return escaped;
  return `"${escaped.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/** The unit file: the template's `ExecStart=@EXEC_START@` line set to the quoted command line. */
export function renderUnit(template: string, argv: readonly string[]): string {
  const line = /^ExecStart=@EXEC_START@$/m;
  if (!line.test(template)) throw new DriverError('LN_ERR_INSTALL', 'the unit template has no `ExecStart=@EXEC_START@` line');
  const execStart = `ExecStart=${argv.map(quoteExecArg).join(' ')}`;
  return template.replace(line, () => execStart);
}

function unitPath(root: string, name: string = UNIT_NAME): string {
  return join(resolve(root), UNIT_DIR, name);
}

/** The first line stampUnit writes: a unit whose rest no longer has this hash was changed since. */
const STAMP = /^# Written by `ledgernet install` \(sha256 ([0-9a-f]{64}) of the lines below\)[^\n]*\n/;

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** `text` under a first line holding its hash: what install writes for the unit `name`. */
export function stampUnit(name: string, text: string): string {
  return `# Written by \`ledgernet install\` (sha256 ${sha256(text)} of the lines below); do not edit: put settings in a drop-in, ${name}.d/*.conf\n${text}`;
}

/** One unit install is about to write: what is there now, and whether someone changed it since. */
interface UnitWrite {
  readonly path: string;
  readonly text: string;
  readonly before: string | null;
  readonly edited: boolean;
}

async function planUnit(root: string, name: string, text: string): Promise<UnitWrite> {
  const path = unitPath(root, name);
  const before = await readFile(path, 'utf8').catch(() => null);
  const stamp = before === null ? null : STAMP.exec(before);
  // Unstamped and equal to the template: written by an install from before the stamp.
  const ours = before === null || before === text || (stamp !== null && sha256(before.slice(stamp[0].length)) === stamp[1]);
  return { path, text: stampUnit(name, text), before, edited: !ours };
}

function refusal(edited: readonly UnitWrite[]): string {
  const paths = edited.map((u) => u.path);
  const [were, them] = paths.length > 1 ? ['were', 'them'] : ['was', 'it'];
  return (
    `${paths.join(' and ')} ${were} changed since \`ledgernet install\` wrote ${them}: nothing was installed. ` +
    `Move your settings into a drop-in, which install never touches (${paths.map((p) => `${p}.d/override.conf`).join(', ')}; ` +
    `\`systemctl edit <unit>\` makes one), then run install again with --force to overwrite ${them}`
  );
}

/** Writes the unit atomically unless it holds it already; says so; true when it changed. */
async function writeUnit(u: UnitWrite, say: (l: string) => void): Promise<boolean> {
  if (u.before === u.text) {
    say(`${u.path} is already up to date`);
    return false;
  }
  await mkdir(dirname(u.path), { recursive: true });
  const tmp = `${u.path}.tmp-${process.pid}`;
  await writeFile(tmp, u.text, { mode: 0o644 });
  await rename(tmp, u.path);
  say(`${u.before === null ? 'wrote' : u.edited ? 'overwrote (--force; the changes made in it are gone)' : 'updated'} ${u.path}`);
  return true;
}

function context(o: InstallOptions) {
  const root = resolve(o.root);
  const live = o.systemdRunning ?? (root === '/' && existsSync('/run/systemd/system'));
  return {
    root,
    live,
    say: o.say ?? ((l: string) => void process.stdout.write(`${l}\n`)),
    systemctl: o.systemctl ?? realSystemctl,
    offlineArgs: root === '/' ? [] : ['--root', root],
    why: root === '/' ? 'systemd is not running on this machine (no /run/systemd/system)' : `--root ${root} is not the running system`,
  };
}

async function must(ctl: Systemctl, args: readonly string[]): Promise<void> {
  const r = await ctl(args);
  if (r.exitCode !== 0) throw new DriverError('LN_ERR_INSTALL', `systemctl ${args.join(' ')} failed (exit ${r.exitCode})${r.output ? `: ${r.output}` : ''}`);
}

async function hasSystemctl(ctl: Systemctl): Promise<boolean> {
  return (await ctl(['--version']).catch(() => ({ exitCode: -1, output: '' }))).exitCode === 0;
}

/** Writes the unit, then enables (and unless noStart, starts) it. Returns the exit code. */
export async function install(o: InstallOptions): Promise<number> {
  const c = context(o);
  const argv = serveCommand(o.prefix, c.root);
  const socket = await planUnit(c.root, SOCKET_UNIT, await readFile(SOCKET_UNIT_FILE, 'utf8'));
  const service = await planUnit(c.root, UNIT_NAME, renderUnit(await readFile(UNIT_TEMPLATE, 'utf8'), argv));
  // Checked before anything is written: a refusal leaves both units as they were.
  const edited = [socket, service].filter((u) => u.edited);
  if (edited.length > 0 && o.force !== true) throw new DriverError('LN_ERR_INSTALL', refusal(edited));
  const socketChanged = await writeUnit(socket, c.say);
  const changed = (await writeUnit(service, c.say)) || socketChanged;
  c.say(`  ExecStart=${argv.map(quoteExecArg).join(' ')}`);

  if (c.live) {
    await must(c.systemctl, ['daemon-reload']);
    await must(c.systemctl, ['enable', ...UNITS]);
    if (o.noStart) {
      c.say(`enabled ${UNITS.join(' and ')} (starts with docker.service and at boot); not started (--no-start)`);
    } else if (socketChanged) {
      // A new socket unit binds the path: the service must not hold (or, stopping, remove) its own.
      await must(c.systemctl, ['stop', UNIT_NAME]);
      await must(c.systemctl, ['restart', SOCKET_UNIT]);
      await must(c.systemctl, ['start', UNIT_NAME]);
      c.say(`enabled and (re)started ${UNITS.join(' and ')}; systemd holds the plugin socket and ledgernet starts before docker.service from now on`);
    } else {
      // A changed service must restart to take effect; the socket (and calls waiting in it) stays.
      await must(c.systemctl, [changed ? 'restart' : 'start', UNIT_NAME]);
      c.say(`enabled and ${changed ? '(re)started' : 'started'} ${UNIT_NAME}; it starts before docker.service from now on`);
    }
    return 0;
  }

  c.say(`${c.why}: nothing was loaded or started.`);
  if (await hasSystemctl(c.systemctl)) {
    await must(c.systemctl, [...c.offlineArgs, 'enable', ...UNITS]);
    c.say(`enabled ${UNITS.join(' and ')} offline (symlinks in ${join(c.root, UNIT_DIR)}/{sockets.target,multi-user.target,docker.service}.wants): systemd starts them at the next boot`);
  } else {
    c.say(`systemctl is not installed: enable them yourself with \`systemctl enable ${UNITS.join(' ')}\` once systemd runs`);
  }
  if (!o.noStart && c.root === '/') c.say(`to run ledgernet now without systemd: ${argv.join(' ')}`);
  return 0;
}

/** Stops and disables the service (when systemd runs), then removes the unit. Keeps the state dir. */
export async function uninstall(o: Omit<InstallOptions, 'noStart' | 'prefix'>): Promise<number> {
  const c = context({ ...o, noStart: true });
  const path = unitPath(c.root);
  if (!existsSync(path)) {
    c.say(`${path} does not exist: ledgernet is not installed there; nothing to do`);
    return 0;
  }
  // An install from before socket activation has no socket unit: leave systemctl out of it.
  const units = existsSync(unitPath(c.root, SOCKET_UNIT)) ? UNITS : [UNIT_NAME];
  if (c.live) {
    // The service first: stopped with the socket still there, it finishes the calls in flight.
    await must(c.systemctl, ['disable', '--now', ...[...units].reverse()]);
    c.say(`stopped and disabled ${units.join(' and ')}`);
  } else if (await hasSystemctl(c.systemctl)) {
    await must(c.systemctl, [...c.offlineArgs, 'disable', ...units]);
    c.say(`${c.why}: disabled ${units.join(' and ')} offline (removed their .wants symlinks); nothing was stopped`);
  } else {
    c.say(`${c.why} and systemctl is not installed: nothing was stopped or disabled`);
  }
  for (const p of [path, unitPath(c.root, SOCKET_UNIT)].filter((p) => existsSync(p))) {
    await rm(p, { force: true });
    c.say(`removed ${p}`);
    if (existsSync(`${p}.d`)) c.say(`kept ${p}.d (drop-ins: your settings); remove it yourself if you no longer need it`);
  }
  if (c.live) {
    await must(c.systemctl, ['daemon-reload']);
    await c.systemctl(['reset-failed', ...units]);
  }
  c.say('the state directory (/var/lib/ledgernet) was kept; remove it yourself if you no longer need the log');
  return 0;
}
