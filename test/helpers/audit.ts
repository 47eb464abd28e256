// The audit stream's test helpers: read it with `ledgernet audit`, compare it with a daemon's
// log, read the daemon's audit status, and make events over a daemon's own plugin socket.
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './docker.ts';
import { ledgernetCli, pluginCall, startDaemon, type DaemonHandle } from './daemon.ts';
import type { NatsServer } from './nats.ts';

export async function logIds(d: DaemonHandle): Promise<string[]> {
  const r = await ledgernetCli(['events', '--json', '--state-dir', d.stateDir]);
  assert.equal(r.exitCode, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { id: string }).id);
}

/** A server, or a URL for it (with credentials). */
export type Nats = NatsServer | string;
const urlOf = (s: Nats) => (typeof s === 'string' ? s : s.url);

export async function audit(server: Nats, host: string, ...flags: string[]) {
  return ledgernetCli(['audit', '--nats', urlOf(server), '--host', host, ...flags]);
}

export async function streamIds(server: Nats, host: string): Promise<string[]> {
  const r = await audit(server, host, '--json');
  assert.equal(r.exitCode, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { id: string }).id);
}

/** Waits until the stream holds exactly the log's events, once each, in order. */
export async function waitCaughtUp(d: DaemonHandle, server: Nats, host: string, timeoutMs = 30_000): Promise<string[]> {
  let last: string[] = [];
  await waitFor(
    async () => {
      const want = await logIds(d);
      last = await streamIds(server, host);
      assert.deepEqual(last, want);
      return true;
    },
    { what: `the stream to hold the log's events once each, in order (stream: ${last.length} ids)`, timeoutMs, intervalMs: 300 },
  );
  return last;
}

export interface AuditStats {
  backlog: number;
  cursor: number;
  head: number;
  connected: boolean;
  target: string;
  lastError: string | null;
  conflict: { reason: string; message: string } | null;
}

export async function auditStats(d: DaemonHandle): Promise<AuditStats> {
  const r = await ledgernetCli(['status', '--json', '--state-dir', d.stateDir]);
  return (JSON.parse(r.stdout) as { daemon: { audit: AuditStats } }).daemon.audit;
}

// These daemons listen on a socket of their own (no dockerd): IPAM calls make the events (a pool
// requested and released is two events and no kernel object). One daemon at a time.
const SOCKET = join(tmpdir(), `ledgernet-audit-${process.pid}.sock`);

export function daemonAt(url: string, host: string, o: { extraArgs?: string[]; env?: Record<string, string>; stateDir?: string } = {}): Promise<DaemonHandle> {
  return startDaemon({
    socket: SOCKET,
    ...(o.stateDir === undefined ? {} : { stateDir: o.stateDir }),
    extraArgs: ['--reconcile-interval', '0', '--nats', url, ...(o.extraArgs ?? [])],
    env: { LEDGERNET_HOST: host, ...o.env },
  });
}

/** `pairs` pools requested and released over the plugin socket: 2 × pairs events. */
export async function ipamEvents(d: DaemonHandle, pairs: number): Promise<void> {
  for (let i = 0; i < pairs; i++) {
    const body = { AddressSpace: 'ledgernet-local', Pool: `10.231.${90 + i}.0/24`, SubPool: '', Options: {}, V6: false };
    const r = await pluginCall('IpamDriver.RequestPool', body, d.socket, { timeoutMs: 8_000 });
    assert.equal(r.status, 200, r.text);
    const rel = await pluginCall('IpamDriver.ReleasePool', { PoolID: (r.json as { PoolID: string }).PoolID }, d.socket, { timeoutMs: 8_000 });
    assert.equal(rel.status, 200, rel.text);
  }
}

export async function scrape(port: number): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(r.status, 200);
  return r.text();
}
