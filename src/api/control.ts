// The operator's door into a running daemon: a unix socket in the state directory (mode 0600),
// used by `ledgernet reconcile` and `ledgernet status`. Docker never sees it.
import Fastify, { type FastifyInstance } from 'fastify';
import type { State } from '../events/types.ts';
import { describeAction } from '../reconciler/actions.ts';
import type { PassResult } from '../reconciler/loop.ts';

export interface ControlDeps {
  readonly store: { readonly state: State; readonly lastSeq: number; readonly logBytes: number };
  readonly reconciler: { requestPass(trigger: string): Promise<PassResult> };
  readonly info: { readonly pid: number; readonly host: string; readonly socket: string; readonly stateDir: string; readonly startedAt: string };
  /** The NATS publisher's progress (backlog gauge), or null when publishing is off. */
  readonly audit?: () => unknown;
}

export function createControlApp(deps: ControlDeps): FastifyInstance {
  const app = Fastify({ logger: false });
  app.post('/reconcile', async () => {
    const r = await deps.reconciler.requestPass('cli');
    return {
      planned: r.planned,
      applied: r.applied.map(describeAction),
      failures: r.failures.map((f) => `${describeAction(f.action)}: ${f.message}`),
      lost: r.lost.map(describeAction),
    };
  });
  app.get('/status', async () => ({
    ...deps.info,
    lastSeq: deps.store.lastSeq,
    logBytes: deps.store.logBytes,
    networks: Object.keys(deps.store.state.networks).length,
    endpoints: Object.keys(deps.store.state.endpoints).length,
    audit: deps.audit?.() ?? null,
  }));
  return app;
}
