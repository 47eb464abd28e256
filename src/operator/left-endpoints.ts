// Endpoints that left their container and were never deleted. Docker sends DeleteEndpoint right
// after the Leave of the same endpoint (ms later; only a sandbox Refresh joins a left endpoint
// again, and at once). One still there LEFT_MS after its Leave lost its DeleteEndpoint: cut off
// by a crash before ledgernet had journaled it (its empty-body retry names no endpoint:
// src/api/delete-retry.ts), or never sent. Left in place it would hold its veth and rules until
// the abandoned-endpoint rule (a minute), and meanwhile, left and not deleted, make the answers
// to other cut-off calls (a Join's, a ProgramExternalConnectivity's) refuse as ambiguous. So it
// is deleted as Docker asked; a DeleteEndpoint Docker still sends for it is answered `{}`, as for
// any endpoint already gone. The state records each Leave's time (`leftAt`), so the rule holds
// across restarts.
import type { Logger } from 'pino';
import { byLedgernet } from '../events/domain/cause.ts';
import type { Command } from '../events/domain/commands.ts';
import { short } from '../events/domain/decide.ts';
import type { Cause, State, StoredEvent } from '../events/domain/types.ts';

/** How long after its Leave an endpoint not deleted is taken to have lost its DeleteEndpoint. */
export const LEFT_MS = 5_000;

/** Endpoints left at least `leftMs` before `now` (ms) and not joined since. Pure. */
export function leftUndeleted(state: State, now: number, leftMs = LEFT_MS): { networkId: string; endpointId: string }[] {
  return Object.values(state.endpoints)
    .filter((ep) => !ep.joined && ep.leftAt !== undefined && now - Date.parse(ep.leftAt) >= leftMs)
    .map((ep) => ({ networkId: ep.networkId, endpointId: ep.endpointId }));
}

export interface LeftSweeperDeps {
  readonly store: { readonly state: State; execute(cmd: Command, cause: Cause): Promise<StoredEvent[]> };
  /** A pass after deletions (their veths and rules go). */
  readonly converge: (trigger: string) => void;
  readonly log: Pick<Logger, 'warn' | 'error'>;
  readonly leftMs?: number;
  readonly intervalMs?: number;
}

/** Looks every `intervalMs` (default 1 s) and deletes what it finds; returns the stop. */
export function startLeftSweeper(deps: LeftSweeperDeps): () => Promise<void> {
  const leftMs = deps.leftMs ?? LEFT_MS;
  let running: Promise<void> | null = null;
  const sweep = async () => {
    let deleted = 0;
    for (const ep of leftUndeleted(deps.store.state, Date.now(), leftMs)) {
      if ((await deps.store.execute({ type: 'DeleteEndpoint', ...ep }, byLedgernet('left-endpoints'))).length === 0) continue;
      deleted += 1;
      deps.log.warn({ endpoint: short(ep.endpointId), network: short(ep.networkId) }, `endpoint deleted: it left its container ${leftMs / 1000} s ago or more and Docker's DeleteEndpoint for it never came (a crash cut it off, or Docker is stuck or slow)`);
    }
    if (deleted > 0) deps.converge('lost DeleteEndpoint');
  };
  const timer = setInterval(() => {
    running ??= sweep()
      .catch((e: unknown) => deps.log.error({ err: e }, 'deleting endpoints whose DeleteEndpoint never came failed; tried again in a moment'))
      .finally(() => (running = null));
  }, deps.intervalMs ?? 1_000);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}
