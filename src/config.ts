import { hostname } from 'node:os';
import { join } from 'node:path';

export const DEFAULTS = {
  socket: '/run/docker/plugins/ledgernet.sock',
  stateDir: '/var/lib/ledgernet',
  reconcileIntervalS: 10,
  applyTimeoutMs: 20_000,
  logLevel: 'info',
} as const;

export interface ServeConfig {
  readonly socket: string;
  readonly stateDir: string;
  readonly reconcileIntervalS: number;
  readonly applyTimeoutMs: number;
  readonly logLevel: string;
  readonly host: string;
  /** HOST:PORT for Prometheus metrics, or null (off). */
  readonly metrics: string | null;
}

export function controlSocket(stateDir: string): string {
  return join(stateDir, 'control.sock');
}

export function defaultHost(): string {
  return hostname();
}
