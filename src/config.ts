import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { DriverError } from './errors.ts';

export const DEFAULTS = {
  socket: '/run/docker/plugins/ledgernet.sock',
  stateDir: '/var/lib/ledgernet',
  reconcileIntervalS: 10,
  abandonedGraceS: 60,
  applyTimeoutMs: 20_000,
  /** Seconds a ready worker may leave the supervisor's pings unanswered (supervisor/watchdog.ts); below the 25 s a call may wait, so a call made to a stuck worker is answered by the next one. */
  workerWatchdogS: 15,
  /**
   * Seconds a starting worker may leave the pings unanswered before it is killed and replaced. Its
   * event loop can be held up by a synchronous replay of the log (≤5 s for 1,000,000 events, issue
   * 11 row 5, more on a slow disk) but answers between steps; a worker that does keep answering is
   * never killed for being slow.
   */
  workerStartTimeoutS: 60,
  logLevel: 'info',
  natsStream: 'LEDGERNET',
  natsRetention: 'limits',
  natsMaxAge: '0',
  natsDupWindow: '2m',
  clusterHostTimeout: '30s',
} as const;

/**
 * V8 flags of the supervisor process (`ledgernet serve`), on every command line that starts it:
 * the systemd unit (operator/install.ts), the plugin's entrypoint (scripts/build-plugin.sh),
 * `npm start`. A 1 MB young generation (16 by default) and an old generation that grows by 20 %
 * (up to 4× by default) between full collections: the supervisor keeps ~9 MB live, and without
 * them its RSS grew 55 → 68–80 MB over 2,200 calls (bench row 9), at no measurable CPU per call
 * (row 6). Not --optimize-for-size (the same memory, +50 % CPU per call) nor --lite-mode (−5 MB,
 * 3× the CPU). Its worker gets its own (supervisor/worker-process.ts).
 */
export const SERVE_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1', '--heap-growing-percent=20'];

export interface DefaultPools {
  readonly v4: { readonly range: string; readonly size: number };
  readonly v6: { readonly range: string; readonly size: number };
}

/** How to reach NATS. Token, password (also inside URLs) and creds are secrets: never log them. */
export interface NatsConfig {
  /** One URL or a comma-separated list; each may carry `user:password@` or `token@`. */
  readonly url: string;
  readonly token: string | undefined;
  /** LEDGERNET_NATS_USER / LEDGERNET_NATS_PASSWORD (an empty value means unset). */
  readonly user?: string | undefined;
  readonly password?: string | undefined;
  readonly credsFile: string | undefined;
  readonly tlsCa: string | undefined;
  readonly tlsCert: string | undefined;
  readonly tlsKey: string | undefined;
}

export interface NatsStreamConfig {
  readonly name: string;
  readonly retention: 'limits' | 'interest' | 'workqueue';
  readonly maxAgeMs: number;
  readonly duplicateWindowMs: number;
}

export interface ServeConfig {
  /** Docker's plugin socket. */
  readonly socket: string;
  /** Where the plugin API listens when it is not `socket` (a worker behind the supervisor). */
  readonly listenSocket?: string;
  readonly stateDir: string;
  readonly reconcileIntervalS: number;
  /** `--abandoned-grace S`: an endpoint Docker does not hold for this long is released (default 60). */
  readonly abandonedGraceS?: number;
  /** `--archive-log-size SIZE`: archive events.log once it holds this many bytes (off when unset or 0). */
  readonly archiveLogBytes?: number;
  readonly applyTimeoutMs: number;
  readonly logLevel: string;
  readonly host: string;
  /** HOST:PORT for Prometheus metrics, or null (off). */
  readonly metrics: string | null;
  /** Where IPAM carves automatic pools from (`--default-pool`, `--default-pool-size`, and the v6 twins). */
  readonly defaultPools: DefaultPools;
  /** Docker's API socket, asked for networks removed and containers given up on while ledgernet
   * was down (`--docker-socket`, `LEDGERNET_DOCKER_SOCKET`; empty: never ask), or null. */
  readonly dockerSocket: string | null;
  /** The name Docker knows this driver by (`LEDGERNET_DRIVER_NAME`; default: the plugin socket's
   * base name, `ledgernet`); read from Docker's lists once it holds a network of this driver. */
  readonly driverName?: string;
  /** `--firewall` (LEDGERNET_FIREWALL): the firewall backend, or `auto` (Docker's); default auto. */
  readonly firewall?: 'iptables' | 'nftables' | 'auto';
  /** `--allow-direct-routing` (LEDGERNET_ALLOW_DIRECT_ROUTING): no direct-access protection on any network; default off. */
  readonly allowDirectRouting?: boolean;
  /** `--control-group` (LEDGERNET_CONTROL_GROUP): the gid whose members may use the control socket
   * (it is made root:G 0660 in a 0710 root:G state dir at every start); unset: root only. */
  readonly controlGroup?: number;
  /** `--ipv6-forwarding` (LEDGERNET_IPV6_FORWARDING): IPv6 forwarding turned on for networks with IPv6, as Docker's bridge driver does; default off (named only). */
  readonly ipv6Forwarding?: boolean;
  /** This host's underlay address for cluster networks (`--vtep`, `LEDGERNET_VTEP`); null: the
   * source address towards the first NATS server. */
  readonly vtep: string | null;
  /** `--cluster-host-timeout` (LEDGERNET_CLUSTER_HOST_TIMEOUT): a cluster host not heard of for this
   * long has its entries removed (default 30 s). */
  readonly clusterHostTimeoutMs?: number;
  /** null: publishing to NATS is off. */
  readonly nats: (NatsConfig & { readonly stream: NatsStreamConfig }) | null;
}

/**
 * The environment as settings: an empty LEDGERNET_* value is not set (its default applies), as
 * for the NATS credentials; `Environment=LEDGERNET_RECONCILE_INTERVAL=` or an unset plugin
 * setting must not turn repair off (''→0) or move the state dir. Only LEDGERNET_DOCKER_SOCKET
 * keeps '', its documented "never ask Docker".
 */
export function settingsEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const [k, v] of Object.entries(env)) if (v === '' && k.startsWith('LEDGERNET_') && k !== 'LEDGERNET_DOCKER_SOCKET') delete out[k];
  return out;
}

/**
 * A serve switch: its flag (given: on), else its environment variable `name` (`1`/`true`,
 * `0`/`false`; '' is not set); undefined when neither is given.
 */
export function parseSwitch(flag: boolean | undefined, name: string, env: string | undefined): boolean | undefined {
  if (flag === true) return true;
  if (env === undefined || env === '') return undefined; // empty: not set (settingsEnv)
  if (env === '0' || env === 'false') return false;
  if (env === '1' || env === 'true') return true;
  throw new DriverError('LN_ERR_CONFIG', `${name} must be true, false, 1 or 0, got ${JSON.stringify(env)}`);
}

/** The name Docker knows this driver by: LEDGERNET_DRIVER_NAME, or the plugin socket's base name. */
export function driverNameOf(cfg: Pick<ServeConfig, 'socket' | 'driverName'>): string {
  return cfg.driverName || basename(cfg.socket, '.sock');
}

export function controlSocket(stateDir: string): string {
  return join(stateDir, 'control.sock');
}

export function defaultHost(): string {
  return hostname();
}

/** A serve setting in seconds: its flag, its environment variable (if any), its default and least value. */
export interface SecondsSetting {
  readonly flag: string;
  readonly env?: string;
  readonly fallback: number;
  /** The least value taken, other than 0. */
  readonly min: number;
  /** What 0 means, where 0 is taken. */
  readonly zero?: string;
}

/** serve's settings in seconds. */
export const SECONDS = {
  reconcileInterval: { flag: 'reconcile-interval', env: 'LEDGERNET_RECONCILE_INTERVAL', fallback: DEFAULTS.reconcileIntervalS, min: 1, zero: 'no background repair' },
  // 0 released an endpoint at the first look that missed it: one between CreateEndpoint and Join is in neither of Docker's lists for a moment.
  abandonedGrace: { flag: 'abandoned-grace', env: 'LEDGERNET_ABANDONED_GRACE', fallback: DEFAULTS.abandonedGraceS, min: 1 },
  // 0 failed every Docker call that needs the kernel (`did not converge within 0 ms`).
  applyTimeout: { flag: 'apply-timeout', fallback: DEFAULTS.applyTimeoutMs / 1000, min: 1 },
  // The supervisor pings once a second (watchdog.ts): under 2 s a worker that answers every ping is killed when one comes late.
  workerWatchdog: { flag: 'worker-watchdog', env: 'LEDGERNET_WORKER_WATCHDOG', fallback: DEFAULTS.workerWatchdogS, min: 2, zero: 'never' },
  workerStartTimeout: { flag: 'worker-start-timeout', env: 'LEDGERNET_WORKER_START_TIMEOUT', fallback: DEFAULTS.workerStartTimeoutS, min: 2, zero: 'never' },
} as const satisfies Record<string, SecondsSetting>;

/**
 * A setting in seconds: its flag, else its environment variable (empty: not set, as settingsEnv),
 * else its default. Plain decimals only (`10`, `2.5`), `setting.min` and up or a documented 0:
 * Number() took an empty flag as 0 (background repair off), `0x10` as 16 and `1e-3` as 1 ms.
 */
export function parseSeconds(setting: SecondsSetting, flag: string | undefined, env: NodeJS.ProcessEnv): number {
  const fromEnv = flag === undefined && setting.env !== undefined ? env[setting.env] || undefined : undefined;
  const v = flag ?? fromEnv;
  if (v === undefined) return setting.fallback;
  const n = /^\d+(?:\.\d+)?$/.test(v) ? Number(v) : NaN;
  if (n >= setting.min || (n === 0 && setting.zero !== undefined)) return n;
  const name = flag === undefined ? `${setting.env} (--${setting.flag})` : `--${setting.flag}`;
  const zero = setting.zero === undefined ? '' : `, or 0 (${setting.zero})`;
  throw new DriverError('LN_ERR_CONFIG', `${name} must be a number of seconds of at least ${setting.min}${zero}, such as ${setting.fallback}; got ${JSON.stringify(v)}`);
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** `4096`, `64k`, `256M`, `1G` (binary units; a trailing `B`/`iB` is allowed) → bytes; `0` is off. */
export function parseSize(name: string, v: string): number {
  const m = /^(\d+)\s*([kmg]?)(?:i?b)?$/i.exec(v.trim());
  if (!m) throw new DriverError('LN_ERR_BAD_REQUEST', `--${name} must be a size like 4096, 64K, 256M or 1G, got ${JSON.stringify(v)}`);
  return Number(m[1]) * (SIZE_UNITS[(m[2] ?? '').toLowerCase()] ?? 1);
}

/** `500ms`, `1s`, `2m`, `1h`, `7d` (or a bare number of seconds) → milliseconds. */
export function parseDuration(name: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(v.trim());
  if (!m) throw new DriverError('LN_ERR_BAD_REQUEST', `--${name} must be a duration like 500ms, 1s, 2m, 1h or 7d, got ${v}`);
  return Math.round(Number(m[1]) * (UNITS[m[2] ?? 's'] ?? 1000));
}

/** `--cluster-host-timeout`: a duration of at least 1 s (hosts write a heartbeat every sixth of it). */
export function parseHostTimeout(v: string): number {
  const ms = parseDuration('cluster-host-timeout', v);
  if (ms < 1000) throw new DriverError('LN_ERR_BAD_REQUEST', `--cluster-host-timeout must be at least 1s (hosts write a heartbeat every sixth of it), got ${v}`);
  return ms;
}

export function parseRetention(v: string): NatsStreamConfig['retention'] {
  if (v === 'limits' || v === 'interest' || v === 'workqueue') return v;
  throw new DriverError('LN_ERR_BAD_REQUEST', `--nats-retention must be limits, interest or workqueue, got ${v}`);
}

/** One server of a `--nats` list, with its credentials taken out. */
export interface NatsServer {
  /** What the client is given: `[scheme://]host[:port]`, no credentials. */
  readonly server: string;
  /** For logs: the server with `***@` where the URL had credentials. */
  readonly masked: string;
  /** `user:password@` (the password may be empty), or `token@` (no colon). */
  readonly auth: { readonly user: string; readonly pass: string } | { readonly token: string } | null;
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s; // a bare `%` that is not an escape: taken as written
  }
}

/** `host`, `host:port`, `[v6]` or `[v6]:port`: what may follow the userinfo of a server URL. */
const NATS_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d{1,5}))?$/;
const COMMA_HINT = " (did a password contain ','? escape it as %2C)";

/**
 * Splits `--nats` into servers: a comma-separated list of `[scheme://][userinfo@]host[:port]`.
 * The userinfo ends at the LAST `@` (a password may hold `@`), the user at its first `:`;
 * percent escapes are decoded. A `,` inside a password splits the list there, so an entry that is
 * not a server URL, or credentials that begin in a later entry than the first, are refused: the
 * error names the entry by number and never quotes it (its text may be part of a password).
 */
export function parseNatsServers(url: string): NatsServer[] {
  const parts = url.split(',').map((p) => p.trim());
  const servers = parts.map((part, i) => {
    const where = parts.length > 1 ? `NATS URL ${i + 1} of ${parts.length} in --nats` : '--nats';
    const server = parseNatsServer(part);
    if (!server) throw new DriverError('LN_ERR_BAD_REQUEST', `${where} is not a server URL: it must be [nats://][user:password@]host[:port]${COMMA_HINT}`);
    return server;
  });
  const late = servers.findIndex((s, i) => i > 0 && s.auth !== null && servers[i - 1]?.auth === null);
  if (late > 0) {
    const why = `NATS URL ${late + 1} of ${servers.length} in --nats has credentials and URL ${late} before it has none`;
    throw new DriverError('LN_ERR_BAD_REQUEST', `${why}${COMMA_HINT}; credentials given once go in the first URL`);
  }
  return servers;
}

/** One entry of the list, or null when it is not a server URL. */
function parseNatsServer(part: string): NatsServer | null {
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(part)?.[0] ?? '';
  const rest = part.slice(scheme.length);
  const at = rest.lastIndexOf('@');
  const host = rest.slice(at + 1);
  const m = NATS_HOST.exec(host);
  if (!m || (m[1] !== undefined && !(Number(m[1]) >= 1 && Number(m[1]) <= 65535))) return null;
  // The one place a URL is masked: describeNats, status and every log line show `masked`.
  const masked = `${scheme}${at >= 0 ? '***@' : ''}${host}`;
  if (at < 0) return { server: `${scheme}${host}`, masked, auth: null };
  const info = rest.slice(0, at);
  const colon = info.indexOf(':');
  const auth = colon < 0 ? { token: decode(info) } : { user: decode(info.slice(0, colon)), pass: decode(info.slice(colon + 1)) };
  return { server: `${scheme}${host}`, masked, auth };
}

/** How the client authenticates: at most one way, from the URLs or the settings. */
type NatsAuth =
  | { readonly kind: 'none' }
  | { readonly kind: 'token'; readonly token: string }
  | { readonly kind: 'user'; readonly user: string; readonly pass: string }
  | { readonly kind: 'creds'; readonly file: string };

export interface ResolvedNats {
  readonly servers: readonly NatsServer[];
  readonly auth: NatsAuth;
}

/**
 * The servers without credentials and the one way to authenticate. Refused: URLs with different
 * credentials (the client has one set for all servers), credentials in a URL that differ from
 * the settings, and two ways at once (say a token and a password).
 */
export function resolveNats(cfg: NatsConfig): ResolvedNats {
  const servers = parseNatsServers(cfg.url);
  const inUrls = servers.filter((s) => s.auth !== null).map((s) => s.auth!);
  const same = (a: NatsServer['auth'], b: NatsServer['auth']) => JSON.stringify(a) === JSON.stringify(b);
  if (inUrls.some((a) => !same(a, inUrls[0] ?? null))) {
    throw new DriverError('LN_ERR_BAD_REQUEST', 'the --nats URLs carry different credentials; the client uses one set for all servers');
  }
  const fromUrl = inUrls[0] ?? null;
  const user = cfg.user || undefined;
  const password = cfg.password || undefined;
  const token = cfg.token || undefined;
  if (password !== undefined && user === undefined) throw new DriverError('LN_ERR_BAD_REQUEST', 'LEDGERNET_NATS_PASSWORD needs LEDGERNET_NATS_USER');
  const ways: NatsAuth[] = [];
  if (fromUrl && 'token' in fromUrl) ways.push({ kind: 'token', token: fromUrl.token });
  if (fromUrl && 'user' in fromUrl) ways.push({ kind: 'user', user: fromUrl.user, pass: fromUrl.pass });
  if (token !== undefined) ways.push({ kind: 'token', token });
  if (user !== undefined) ways.push({ kind: 'user', user, pass: password ?? '' });
  if (cfg.credsFile) ways.push({ kind: 'creds', file: cfg.credsFile });
  const distinct = ways.filter((w, i) => ways.findIndex((x) => JSON.stringify(x) === JSON.stringify(w)) === i);
  if (distinct.length > 1) {
    const kinds = [...new Set(distinct.map((w) => w.kind))];
    const label = { none: '', token: 'a token', user: 'a user and password', creds: 'a creds file' };
    throw new DriverError(
      'LN_ERR_BAD_REQUEST',
      kinds.length === 1
        ? `NATS is given two different ${kinds[0] === 'token' ? 'tokens' : 'users or passwords'} (in a URL and in the settings); give one`
        : `NATS is given ${kinds.map((k) => label[k]).join(' and ')}; give one way to authenticate: credentials in the URL, ` +
            'a token (--nats-token), a user and password (LEDGERNET_NATS_USER, LEDGERNET_NATS_PASSWORD) or a creds file (--nats-creds)',
    );
  }
  return { servers, auth: distinct[0] ?? { kind: 'none' } };
}

/** The NATS servers for logs, status and errors: credentials masked, from the parsed URLs. */
export function describeNats(cfg: NatsConfig): string {
  const { servers, auth } = resolveNats(cfg);
  const how = auth.kind === 'user' ? `user ${auth.user}` : auth.kind;
  return `${servers.map((s) => s.masked).join(',')} (auth ${how}${cfg.tlsCa || cfg.tlsCert ? ', tls' : ''})`;
}

/**
 * Checks the text of a NATS creds file (a user JWT block, then a user nkey seed block) and says
 * what is wrong with it, naming the file and never quoting its secrets. Null when it looks right.
 */
export function credsProblem(text: string, file: string): string | null {
  const where = `the NATS creds file ${file} (--nats-creds, LEDGERNET_NATS_CREDS)`;
  // The client's own parse: a block is a dashed line, one line of content, a dashed line.
  const blocks = [...text.matchAll(/\s*(?:(?:-{3,}[^\n]*-{3,}\n)(.+)(?:\n\s*-{3,}[^\n]*-{3,}\n))/g)].map((m) => (m[1] ?? '').trim());
  if (text.trim() === '') return `${where} is empty`;
  const [jwt, seed] = blocks;
  if (jwt === undefined) return `${where} is not a creds file: it has no -----BEGIN NATS USER JWT----- block (each block: a dashed BEGIN line, one line, a dashed END line)`;
  const parts = jwt.split('.');
  const header = (() => {
    try {
      return JSON.parse(Buffer.from(parts[0] ?? '', 'base64url').toString('utf8')) as unknown;
    } catch {
      return null;
    }
  })();
  if (parts.length !== 3 || typeof header !== 'object' || header === null) return `${where} is malformed: its first block is not a JWT (three base64url parts with a JSON header)`;
  if (seed === undefined) return `${where} is malformed: it has a JWT but no -----BEGIN USER NKEY SEED----- block after it`;
  if (!/^SU[A-Z2-7]{56}$/.test(seed)) return `${where} is malformed: its second block is not a user nkey seed (58 characters starting with SU)`;
  return null;
}

/**
 * A failed NATS connect: said plainly, naming the servers (masked), when the server refused the
 * credentials (never quoting them). Any other failure (`connection refused`, a timeout, a TLS
 * failure) names the servers only when `nameServers` (the audit CLI; the daemon's status and log
 * lines name them beside the error already).
 */
export function natsConnectError(e: unknown, cfg: NatsConfig, nameServers: boolean): unknown {
  const msg = e instanceof Error ? e.message : String(e);
  if (e instanceof Error && (e.name === 'AuthorizationError' || /authorization violation/i.test(msg))) {
    return new Error(`NATS ${describeNats(cfg)} refused the credentials: ${msg}`, { cause: e });
  }
  return nameServers ? new Error(`cannot connect to NATS ${describeNats(cfg)}: ${msg}`, { cause: e }) : e;
}
