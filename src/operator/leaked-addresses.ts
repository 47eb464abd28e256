// Addresses ledgernet IPAM still holds after their endpoint went without Docker's ReleaseAddress:
// Docker gives that call up like the endpoint's teardown when ledgernet is down (~15 s), and an
// endpoint docker-sync released as abandoned, or one released as stale when its container's new
// endpoint published its ports, leaves its address allocated. On a /29 a few of those and new
// containers get none. Released here, on its own, as `ledgernet repair` does by hand.
//
// Safety: an address is released only when it has been held by nothing in the log (no endpoint,
// not a gateway or --aux-address: unaccountedAddresses) on every look for `graceMs`, so one asked
// for within the grace (RequestAddress comes before CreateEndpoint) is never taken, and then only
// when Docker's API, read as repair reads it (readDocker, dockerHolds), holds it nowhere.
import type { Logger } from 'pino';
import { suspects } from './abandoned.ts';
import type { DockerApi } from './docker-api.ts';
import { dockerHolds, readDocker } from './docker-holds.ts';
import { unaccountedAddresses } from '../events/domain/ipam.ts';
import { byLedgernet, type Cause, type Command, type State, type StoredEvent } from '../events/index.ts';

export interface LeakedAddressesDeps {
  readonly api: Pick<DockerApi, 'listNetworks' | 'inspectNetwork'>;
  readonly getState: () => State;
  readonly execute: (cmd: Command, cause: Cause) => Promise<StoredEvent[]>;
  readonly log: Pick<Logger, 'warn'>;
  readonly graceMs: number;
  readonly now: () => number;
}

const REASON = 'no endpoint holds it and Docker holds it nowhere (its ReleaseAddress was lost with its endpoint, e.g. while ledgernet was down)';

export class LeakedAddresses {
  /** `<poolId> <address>` → when it was first seen held by nothing in the log. */
  private since = new Map<string, number>();
  private readonly d: LeakedAddressesDeps;

  constructor(deps: LeakedAddressesDeps) {
    this.d = deps;
  }

  /** A look failed: the address must be seen unheld on every look through the grace period. */
  forget(): void {
    this.since.clear();
  }

  /** One look; Docker is read only when an address has been unaccounted for through the grace. */
  async step(): Promise<void> {
    const state = this.d.getState();
    const now = this.d.now();
    const found = unaccountedAddresses(state);
    const key = (a: { poolId: string; address: string }) => `${a.poolId} ${a.address}`;
    this.since = suspects(found.map(key), new Set(), this.since, now);
    const due = found.filter((a) => now - (this.since.get(key(a)) ?? now) >= this.d.graceMs);
    if (due.length === 0) return;
    const view = await readDocker(this.d.api, state);
    for (const a of due) {
      this.since.delete(key(a));
      const cmd: Command = { type: 'ReleaseAddress', poolId: a.poolId, address: a.address, reason: REASON };
      // Docker has no network on the pool (collected with its network), or holds the address: not ours to free.
      if (!view.subnets.has(a.pool) || dockerHolds(cmd, state, view) !== null) continue;
      const events = await this.d.execute(cmd, byLedgernet('leaked-addresses'));
      if (events.length > 0) {
        this.d.log.warn({ pool: a.pool, address: a.address, graceMs: this.d.graceMs }, `address ${a.address} of pool ${a.pool} released: ${REASON}`);
      }
    }
  }
}
