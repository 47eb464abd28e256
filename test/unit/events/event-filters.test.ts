// `events --container/--address` (src/operator/event-filters.ts): the pure selection over events.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NewEvent } from '../../../src/events/domain/types.ts';
import { EndpointFacts, eventFilter } from '../../../src/events/domain/event-filters.ts';
import { EP_1, EP_2, NET_A, endpointSpec, stamp } from '../../helpers/events.ts';
import { emptyState } from '../../../src/events/domain/types.ts';

const PEER = 'fe'.repeat(32);

describe('eventFilter', () => {
  const events = stamp(
    [
      { type: 'endpoint.created', data: { ...endpointSpec(NET_A, EP_1, '10.231.7.2/24'), addressV6: 'fd00:231:0:0::2/64' } },
      { type: 'endpoint.created', data: endpointSpec(NET_A, EP_2, '10.231.7.3/24') },
      { type: 'peer.endpoint.added', data: { cluster: 'sage', host: 'h2', vtep: '192.0.2.2', endpointId: PEER, address: '10.242.0.66', mac: '02:42:0a:f2:00:42' } },
      { type: 'peer.endpoint.removed', data: { cluster: 'sage', host: 'h2', endpointId: PEER } },
    ] as NewEvent[],
    emptyState,
  );
  const facts = new EndpointFacts().add(events);
  const pick = (q: Parameters<typeof eventFilter>[0]) => events.filter((e) => eventFilter(q)(e, new Map(), facts)).map((e) => e.seq);

  it('an IPv6 address in any form matches the endpoint that had it', () => {
    assert.deepEqual(pick({ address: 'fd00:231::2' }), [1]);
    assert.deepEqual(pick({ address: 'FD00:0231:0000::0002/64' }), [1]);
  });

  it("a cluster peer's endpoint: its added and removed events", () => {
    assert.deepEqual(pick({ address: '10.242.0.66' }), [3, 4]);
  });

  it('no endpoint had it: nothing; a container never named: nothing', () => {
    assert.deepEqual(pick({ address: '10.231.7.9' }), []);
    assert.deepEqual(pick({ container: 'web-1' }), []);
  });

  it('refuses what cannot match anything', () => {
    assert.throws(() => eventFilter({ address: 'web-1' }), /--address "web-1" is not an IPv4 or IPv6 address/);
    assert.throws(() => eventFilter({ network: '' }), /--network needs a network id/);
  });
});
