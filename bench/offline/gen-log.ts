// Writes an event log of `total` events into a state dir with the project's own writer
// (EventLog.append: stamping, hash chain, framing, group commit), as a busy host would have
// written it: a fixed set of networks and endpoints, then containers coming and going (leave,
// delete, create, join) and IPAM addresses requested and released. Decided against the folded
// state like the daemon does, but appended in large batches (one fsync per batch).
import { decide } from '../../src/events/domain/decide.ts';
import { evolveInPlace } from '../../src/events/domain/evolve.ts';
import type { Draft } from 'immer';
import type { Command } from '../../src/events/domain/commands.ts';
import { emptyState, type State, type StoredEvent } from '../../src/events/domain/types.ts';
import { EventLog } from '../../src/events/log/log.ts';
import { writeSnapshot } from '../../src/events/log/snapshot.ts';
import { endpointSpec, hostCommands, layout, type Layout } from './scenario.ts';

const POOL = 'ledgernet/10.99.0.0/24';
const BATCH = 20_000;

function* churn(l: Layout): Generator<Command> {
  yield { type: 'RequestPool', request: { pool: '10.99.0.0/24', subPool: null, v6: false, defaults: { range: '10.231.0.0/16', size: 24 }, occupied: [] } };
  for (let gen = 1; ; gen++) {
    for (let slot = 0; slot < l.endpoints; slot++) {
      const old = endpointSpec(l, slot);
      const oldId = gen === 1 ? old.endpointId : endpointSpec(l, slot + (gen - 1) * l.endpoints).endpointId;
      const spec = endpointSpec(l, slot + gen * l.endpoints);
      // The new endpoint takes the slot's network and address (the layout places by slot).
      const placed = { ...spec, networkId: old.networkId, address: old.address };
      yield { type: 'Leave', networkId: old.networkId, endpointId: oldId };
      yield { type: 'DeleteEndpoint', networkId: old.networkId, endpointId: oldId };
      yield { type: 'CreateEndpoint', spec: placed };
      yield { type: 'Join', networkId: old.networkId, endpointId: placed.endpointId, sandboxKey: `/var/run/docker/netns/${placed.endpointId.slice(0, 12)}` };
      yield { type: 'RequestAddress', poolId: POOL, address: null, gateway: false, name: `c${slot}` };
    }
  }
}

/** Releases the address a RequestAddress just took. */
function releaseOf(events: readonly StoredEvent[]): Command | null {
  const ev = events.find((e) => e.type === 'address.requested');
  return ev && ev.type === 'address.requested' ? { type: 'ReleaseAddress', poolId: POOL, address: ev.data.address } : null;
}

export interface Generated {
  readonly events: number;
  readonly bytes: number;
  readonly ms: number;
}

/**
 * `total` events in `dir` (a fresh state dir) for a host of `endpoints` endpoints; with
 * `snapshotAt` also a snapshot after that many events, as the daemon writes them.
 */
export async function generateLog(dir: string, total: number, o: { endpoints: number; snapshotAt?: number }): Promise<Generated> {
  const t0 = performance.now();
  const l = layout(o.endpoints);
  const { log } = await EventLog.open(dir, { host: 'bench' });
  // One plain state mutated in place (the fast path): an immer draft per event would copy the maps it touches.
  const state = structuredClone(emptyState) as Draft<State>;
  const append = (cmd: Command): StoredEvent[] => {
    const stored = log.append(decide(cmd, state)).stored;
    for (const ev of stored) evolveInPlace(state, ev);
    return stored;
  };
  const setup = hostCommands(l);
  const cmds = churn(l);
  let sinceDrain = 0;
  const until = async (target: number) => {
    while (state.seq < target) {
      const stored = append(setup.shift() ?? (cmds.next().value as Command));
      const release = releaseOf(stored);
      if (release && state.seq < target) append(release);
      sinceDrain += stored.length;
      if (sinceDrain >= BATCH) {
        sinceDrain = 0;
        await log.drain();
      }
    }
    await log.drain();
  };
  if (o.snapshotAt !== undefined) {
    await until(o.snapshotAt);
    const h = log.head;
    await writeSnapshot(dir, { seq: h.seq, hash: h.hash, offset: h.offset, recordOffset: h.recordOffset, state });
  }
  await until(total);
  await log.close();
  return { events: state.seq, bytes: log.sizeBytes, ms: performance.now() - t0 };
}
