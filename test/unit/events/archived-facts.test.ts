// `events` filters after an archive was moved away (src/events/domain/archived-facts.ts): the
// snapshot's state stands in for the events no longer readable, and what it does not hold is named.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeUnknown, seedFromState, unknownBefore } from '../../../src/events/domain/archived-facts.ts';
import { EndpointFacts, eventFilter } from '../../../src/events/domain/event-filters.ts';
import { fold } from '../../../src/events/domain/evolve.ts';
import { emptyState, type NewEvent } from '../../../src/events/domain/types.ts';
import { ADDRESS_HISTORY, stamp } from '../../helpers/events.ts';

describe('filters seeded from the snapshot', () => {
  const { network, endpoints } = ADDRESS_HISTORY;
  const archived = stamp(ADDRESS_HISTORY.events(), emptyState);
  const atArchive = fold(emptyState, archived);
  const later = stamp([{ type: 'endpoint.deleted', data: { networkId: network, endpointId: endpoints[1] } }] as NewEvent[], atArchive);
  const pick = (q: Parameters<typeof eventFilter>[0], state: typeof atArchive | null) => {
    const names = new Map<string, string>();
    const facts = new EndpointFacts();
    if (state) seedFromState(state, names, facts);
    facts.add(later);
    return later.filter((e) => eventFilter(q)(e, names, facts)).map((e) => e.seq);
  };

  it("an endpoint's later lines are found by its container, address and network name from the state at the archive", () => {
    for (const q of [{ container: 'job-7' }, { container: ADDRESS_HISTORY.containers[1].slice(0, 12) }, { address: '10.231.79.2' }, { network: 'web' }]) {
      assert.deepEqual(pick(q, atArchive), [9], JSON.stringify(q));
      assert.deepEqual(pick(q, null), [], JSON.stringify(q));
    }
  });

  it('names what neither the events nor the state hold, only where the query needs it', () => {
    assert.deepEqual(unknownBefore(later, atArchive), { endpoints: [], networks: [] });
    const none = unknownBefore(later, null);
    assert.deepEqual(none, { endpoints: [endpoints[1]], networks: [network] });
    assert.equal(describeUnknown(none, { network: network.slice(0, 12) }, false), null, 'a network by id needs no name');
    assert.equal(
      describeUnknown(none, { address: '10.231.79.2', network: 'web' }, true),
      '1 endpoint (2b2b2b2b2b2b) and 1 network (abcdef012345) began in archived events that are no longer here and the snapshot does not hold them either: ' +
        'their containers, addresses and names are unknown, so lines of them may be missing below',
    );
    // Begun in the events read: known from them.
    assert.deepEqual(unknownBefore(archived, null), { endpoints: [], networks: [] });
  });
});
