// Endpoints Docker abandoned: ledgernet holds them, Docker does not. After a whole-daemon crash
// Docker fails a `docker run` whose CreateEndpoint or Join retry could not be answered, and
// sends no DeleteEndpoint for an endpoint it never stored; a DeleteEndpoint whose retry was
// refused is dropped too (Docker only logs teardown errors). Such an endpoint keeps its veth and
// address until it is released: here, by docker-sync, on its own (`ledgernet repair` does the
// same by hand).
//
// Safety: an endpoint is released only when Docker's API, asked on every tick for at least
// `graceMs`, never listed it on a container that is not exited or dead (one list of all
// containers per tick; see heldByContainers), and then the
// network's own inspect (which also lists endpoints without a container, `ep-…`) does not hold
// it either. A `docker run` between CreateEndpoint and Join is in neither list for a moment, and
// Docker answers within its 30 s call budget, so the grace (60 s by default) covers it; a
// joined endpoint Docker still lists is never touched. A Docker that cannot be asked restarts
// every grace period.
import type { Logger } from 'pino';
import { DockerApiError, type DockerApi, type DockerContainerSummary } from './docker-api.ts';
import { byLedgernet, short, type Cause, type Command, type State, type StoredEvent } from '../events/index.ts';

export interface AbandonedDeps {
  readonly api: Pick<DockerApi, 'listContainers' | 'inspectNetwork'>;
  readonly getState: () => State;
  readonly execute: (cmd: Command, cause: Cause) => Promise<StoredEvent[]>;
  readonly log: Pick<Logger, 'warn'>;
  readonly graceMs: number;
  readonly now: () => number;
}

interface InspectedNetwork {
  readonly Containers?: Readonly<Record<string, { readonly EndpointID?: string }>> | null;
}

/**
 * Endpoint id → when it was first seen missing from Docker's containers: the suspects after one
 * more look, given the endpoints ledgernet holds and the endpoint ids Docker's containers hold
 * (leaked-addresses.ts keeps its addresses the same way). Pure.
 */
export function suspects(endpoints: readonly string[], held: ReadonlySet<string>, before: ReadonlyMap<string, number>, now: number): Map<string, number> {
  const next = new Map<string, number>();
  for (const id of endpoints) if (!held.has(id)) next.set(id, before.get(id) ?? now);
  return next;
}

/**
 * The endpoint ids Docker's containers hold. Not those of an exited or dead container: Docker
 * clears them when it releases a stopped container's network, but a sandbox it removes as stale
 * after a restart with --live-restore (its process died while dockerd was down) keeps the old
 * EndpointID in the container's settings, so the endpoint Docker let go would be held for as long
 * as the container exists. An exited container being started again is held through the network's
 * inspect once joined, and the grace covers the moment before. Pure.
 */
function heldByContainers(containers: readonly Pick<DockerContainerSummary, 'State' | 'NetworkSettings'>[]): Set<string> {
  return new Set(
    containers
      .filter((c) => c.State !== 'exited' && c.State !== 'dead')
      .flatMap((c) => Object.values(c.NetworkSettings?.Networks ?? {}).map((n) => n.EndpointID ?? '')),
  );
}

export class AbandonedEndpoints {
  private since = new Map<string, number>();
  private readonly d: AbandonedDeps;

  constructor(deps: AbandonedDeps) {
    this.d = deps;
  }

  /** A look failed: missing must be seen on every look through the grace period, so start again. */
  forget(): void {
    this.since.clear();
  }

  /** One look; releases what has been missing for the grace period and is confirmed missing. */
  async step(): Promise<void> {
    const endpoints = Object.values(this.d.getState().endpoints);
    if (endpoints.length === 0) {
      this.since.clear();
      return;
    }
    const containers = await this.d.api.listContainers(true);
    const held = heldByContainers(containers);
    const now = this.d.now();
    this.since = suspects(
      endpoints.map((e) => e.endpointId),
      held,
      this.since,
      now,
    );
    const due = endpoints.filter((e) => now - (this.since.get(e.endpointId) ?? now) >= this.d.graceMs);
    for (const networkId of new Set(due.map((e) => e.networkId))) {
      const listed = await this.listedOn(networkId);
      if (listed === null) continue; // Docker has no such network: docker-sync collects it
      for (const ep of due.filter((e) => e.networkId === networkId)) {
        this.since.delete(ep.endpointId);
        if (listed.has(ep.endpointId)) continue; // held without a container (ep-…): Docker's to remove
        const events = await this.d.execute({ type: 'DeleteEndpoint', networkId, endpointId: ep.endpointId }, byLedgernet('abandoned-endpoints'));
        if (events.length > 0) {
          this.d.log.warn(
            { networkId, endpointId: ep.endpointId, joined: ep.joined, graceMs: this.d.graceMs },
            `endpoint ${short(ep.endpointId)} is unknown to Docker (abandoned after a crash): released, its veth is removed`,
          );
        }
      }
    }
  }

  /** The endpoint ids Docker's inspect of the network lists, or null when Docker has no such network. */
  private async listedOn(networkId: string): Promise<Set<string> | null> {
    try {
      const n = await this.d.api.inspectNetwork<InspectedNetwork>(networkId);
      return new Set(Object.values(n.Containers ?? {}).map((c) => c.EndpointID ?? ''));
    } catch (e) {
      if (e instanceof DockerApiError && e.status === 404) return null;
      throw e;
    }
  }
}
