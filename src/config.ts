import { hostname } from 'node:os';
import { join } from 'node:path';
import { DriverError } from './errors.ts';

export const DEFAULTS = {
  socket: '/run/docker/plugins/ledgernet.sock',
  stateDir: '/var/lib/ledgernet',
  reconcileIntervalS: 10,
  applyTimeoutMs: 20_000,
  logLevel: 'info',
  natsStream: 'LEDGERNET',
  natsRetention: 'limits',
  natsMaxAge: '0',
  natsDupWindow: '2m',
} as const;

export interface DefaultPools {
  readonly v4: { readonly range: string; readonly size: number };
  readonly v6: { readonly range: string; readonly size: number };
}

/** How to reach NATS. The token and the creds file are secrets: never log them. */
export interface NatsConfig {
  /** One URL or a comma-separated list. */
  readonly url: string;
  readonly token: string | undefined;
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
  readonly applyTimeoutMs: number;
  readonly logLevel: string;
  readonly host: string;
  /** HOST:PORT for Prometheus metrics, or null (off). */
  readonly metrics: string | null;
  /** Where IPAM carves automatic pools from (`--default-pool`, `--default-pool-size`, and the v6 twins). */
  readonly defaultPools: DefaultPools;
  /** null: publishing to NATS is off. */
  readonly nats: (NatsConfig & { readonly stream: NatsStreamConfig }) | null;
}

export function controlSocket(stateDir: string): string {
  return join(stateDir, 'control.sock');
}

export function defaultHost(): string {
  return hostname();
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `500ms`, `1s`, `2m`, `1h`, `7d` (or a bare number of seconds) → milliseconds. */
export function parseDuration(name: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(v.trim());
  if (!m) throw new DriverError('LN_ERR_BAD_REQUEST', `--${name} must be a duration like 500ms, 1s, 2m, 1h or 7d, got ${v}`);
  return Math.round(Number(m[1]) * (UNITS[m[2] ?? 's'] ?? 1000));
}

export function parseRetention(v: string): NatsStreamConfig['retention'] {
  if (v === 'limits' || v === 'interest' || v === 'workqueue') return v;
  throw new DriverError('LN_ERR_BAD_REQUEST', `--nats-retention must be limits, interest or workqueue, got ${v}`);
}

/** The NATS servers for logs: user and password in URLs are masked. */
export function describeNats(cfg: NatsConfig): string {
  const servers = cfg.url.replace(/\/\/[^@/]*@/g, '//***@');
  const auth = cfg.credsFile ? 'creds' : cfg.token ? 'token' : 'none';
  return `${servers} (auth ${auth}${cfg.tlsCa || cfg.tlsCert ? ', tls' : ''})`;
}
