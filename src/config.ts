import { hostname } from 'node:os';
import { join } from 'node:path';

export const DEFAULTS = {
  socket: '/run/docker/plugins/ledgernet.sock',
  stateDir: '/var/lib/ledgernet',
  reconcileIntervalS: 10,
  applyTimeoutMs: 20_000,
  logLevel: 'info',
} as const;

export interface DefaultPools {
  readonly v4: { readonly range: string; readonly size: number };
  readonly v6: { readonly range: string; readonly size: number };
}

export interface ServeConfig {
  readonly socket: string;
  readonly stateDir: string;
  readonly reconcileIntervalS: number;
  readonly applyTimeoutMs: number;
  readonly logLevel: string;
  readonly host: string;
  /** HOST:PORT for Prometheus metrics, or null (off). */
  readonly metrics: string | null;
  /** Where IPAM carves automatic pools from (`--default-pool`, `--default-pool-size`, and the v6 twins). */
  readonly defaultPools: DefaultPools;
}

export function controlSocket(stateDir: string): string {
  return join(stateDir, 'control.sock');
}

export function defaultHost(): string {
  return hostname();
}
