// The plugin over a real event log and reconciler, with a fake kernel: for the api's unit tests.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import type { HostView } from '../../src/api/ipam.ts';
import { createPlugin, type ApiDeps } from '../../src/api/plugin.ts';
import { fold } from '../../src/events/domain/evolve.ts';
import { emptyState } from '../../src/events/domain/types.ts';
import { EventLog } from '../../src/events/log/log.ts';
import { EventStore } from '../../src/events/log/store.ts';
import { Reconciler } from '../../src/reconciler/loop.ts';
import { FakeKernel } from './fake-kernel.ts';

export interface PluginHarness {
  readonly dir: string;
  readonly store: EventStore;
  readonly reconciler: Reconciler;
  /** A call as the plugin socket would take it (a string body is sent as is). */
  call(method: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }>;
  close(): Promise<void>;
}

export async function pluginHarness(prefix: string, host?: HostView, opts: Pick<ApiDeps, 'retryWaitMs' | 'docker'> = {}): Promise<PluginHarness> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const opened = await EventLog.open(dir, { host: 't' });
  const store = new EventStore(opened.log, fold(emptyState, opened.events));
  const log = pino({ level: 'silent' });
  const reconciler = new Reconciler({ kernel: new FakeKernel(), getState: () => store.latest, log, intervalMs: 0, onLost: async () => undefined });
  const plugin = createPlugin({ store, reconciler, log, applyTimeoutMs: 5_000, ...(host ? { host } : {}), ...opts });
  return {
    dir,
    store,
    reconciler,
    async call(method, body) {
      const r = await plugin.call(method, typeof body === 'string' ? body : JSON.stringify(body));
      return { status: r.status, json: JSON.parse(r.body) as Record<string, unknown> };
    },
    async close() {
      await reconciler.stop();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
