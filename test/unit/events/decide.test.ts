import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DriverError } from '../../../src/errors.ts';
import type { Command } from '../../../src/events/domain/commands.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { fold } from '../../../src/events/domain/evolve.ts';
import { eventHash } from '../../../src/events/log/hash.ts';
import { emptyState, GENESIS_HASH, type NewEvent, type State, type StoredEvent } from '../../../src/events/domain/types.ts';
import { EP_1, EP_2, NET_A, NET_B, endpointSpec, given, networkSpec, stamp } from '../../helpers/events.ts';



const createA: Command = { type: 'CreateNetwork', spec: networkSpec(NET_A) };
const ep1: Command = { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) };

describe('decide + evolve', () => {
  it('creates a network and folds it into state', () => {
    const state = given(createA);
    assert.equal(state.networks[NET_A]?.bridge, 'lnb-aaaaaaaa000');
    assert.equal(state.seq, 1);
    assert.notEqual(state.hash, GENESIS_HASH);
  });

  it('treats a repeated CreateNetwork with the same data as a no-op', () => {
    assert.deepEqual(decide(createA, given(createA)), []);
  });

  it("a repeated CreateNetwork of a network recorded without AddressSpace (older logs) is a no-op; another AddressSpace than the one recorded is other settings", () => {
    const withSpace = (space: string): Command => ({ type: 'CreateNetwork', spec: { ...networkSpec(NET_A), ipv4Data: networkSpec(NET_A).ipv4Data.map((d) => ({ ...d, addressSpace: space })) } });
    assert.deepEqual(decide(withSpace('LocalDefault'), given(createA)), []);
    assert.deepEqual(decide(withSpace('LocalDefault'), given(withSpace('LocalDefault'))), []);
    assert.throws(() => decide(withSpace('ledgernet-local'), given(withSpace('LocalDefault'))), (e: DriverError) => e.code === 'LN_ERR_CONFLICT');
  });

  it('refuses a CreateNetwork with the same id and other settings', () => {
    const other: Command = { type: 'CreateNetwork', spec: networkSpec(NET_A, '10.9.0.0/24', '10.9.0.1/24') };
    assert.throws(() => decide(other, given(createA)), (e: DriverError) => e.code === 'LN_ERR_CONFLICT');
  });

  it('refuses an endpoint on an unknown network and names it', () => {
    const cmd: Command = { type: 'CreateEndpoint', spec: endpointSpec(NET_B, EP_1) };
    assert.throws(
      () => decide(cmd, given(createA)),
      (e: DriverError) => e.code === 'LN_ERR_UNKNOWN_NETWORK' && e.message.includes(NET_B.slice(0, 12)),
    );
  });

  it('joins, leaves and deletes an endpoint', () => {
    const joined = given(createA, ep1, { type: 'Join', networkId: NET_A, endpointId: EP_1, sandboxKey: '/var/run/docker/netns/x' });
    assert.equal(joined.endpoints[EP_1]?.joined, true);
    const left = fold(joined, stamp(decide({ type: 'Leave', networkId: NET_A, endpointId: EP_1 }, joined), joined));
    assert.equal(left.endpoints[EP_1]?.joined, false);
    const gone = fold(left, stamp(decide({ type: 'DeleteEndpoint', networkId: NET_A, endpointId: EP_1 }, left), left));
    assert.equal(gone.endpoints[EP_1], undefined);
  });

  it('refuses Join for an endpoint it does not know', () => {
    const cmd: Command = { type: 'Join', networkId: NET_A, endpointId: EP_2, sandboxKey: '' };
    assert.throws(() => decide(cmd, given(createA)), (e: DriverError) => e.code === 'LN_ERR_UNKNOWN_ENDPOINT');
  });

  it('deleting a network deletes its remaining endpoints first', () => {
    const state = given(createA, ep1);
    const events = decide({ type: 'DeleteNetwork', networkId: NET_A }, state);
    assert.deepEqual(events.map((e) => e.type), ['endpoint.deleted', 'network.deleted']);
    const after = fold(state, stamp(events, state));
    assert.deepEqual(after.networks, {});
    assert.deepEqual(after.endpoints, {});
  });

  it('deleting an unknown network or endpoint is a no-op (Docker retries)', () => {
    assert.deepEqual(decide({ type: 'DeleteNetwork', networkId: NET_B }, emptyState), []);
    assert.deepEqual(decide({ type: 'DeleteEndpoint', networkId: NET_A, endpointId: EP_2 }, given(createA)), []);
  });

  it('a rollback removes the network from the desired state', () => {
    const state = given(createA, { type: 'RollbackNetwork', networkId: NET_A, reason: 'bridge failed' });
    assert.deepEqual(state.networks, {});
  });

  it('marks a joined endpoint lost once', () => {
    const state = given(createA, ep1, { type: 'MarkLost', endpointId: EP_1, reason: 'gone' });
    assert.equal(state.endpoints[EP_1]?.lost, true);
    assert.deepEqual(decide({ type: 'MarkLost', endpointId: EP_1, reason: 'gone' }, state), []);
  });

  it('refuses a second network asking for the same bridge name', () => {
    const clash: Command = { type: 'CreateNetwork', spec: { ...networkSpec(NET_B), bridge: 'lnb-aaaaaaaa000' } };
    assert.throws(() => decide(clash, given(createA)), (e: DriverError) => e.code === 'LN_ERR_CONFLICT' && /lnb-aaaaaaaa000/.test(e.message));
  });

  it('a MAC asked for by name (ledgernet.mac) that another live endpoint of the network has is refused; Docker\'s own, a lost holder\'s or another network\'s is not', () => {
    const mac = '02:00:00:00:00:cc';
    const first: Command = { type: 'CreateEndpoint', spec: { ...endpointSpec(NET_A, EP_1), mac }, requestedMac: true };
    const state = given(createA, first);
    const asked: Command = { type: 'CreateEndpoint', spec: { ...endpointSpec(NET_A, EP_2, '10.231.7.3/24'), mac }, requestedMac: true };
    assert.throws(() => decide(asked, state), (e: DriverError) => e.code === 'LN_ERR_CONFLICT' && e.message.includes(`ledgernet.mac=${mac} is already the MAC address of endpoint ${EP_1.slice(0, 12)}`));
    assert.equal(decide({ ...asked, requestedMac: false }, state).length, 1);
    assert.equal(decide(asked, given(createA, first, { type: 'MarkLost', endpointId: EP_1, reason: 'gone' })).length, 1);
    const onB: Command = { type: 'CreateEndpoint', spec: { ...endpointSpec(NET_B, EP_2, '10.9.0.3/24'), mac }, requestedMac: true };
    assert.equal(decide(onB, given(createA, first, { type: 'CreateNetwork', spec: networkSpec(NET_B, '10.9.0.0/24', '10.9.0.1/24') })).length, 1);
  });

  it('an endpoint given no MAC gets the derived one, else the fallback when another endpoint has it; both taken is refused by name, nothing decided', () => {
    const derived = '02:42:0a:e7:07:03';
    const choice = (fallback: string, mac: string | null = null): Command => ({ type: 'CreateEndpoint', spec: { ...endpointSpec(NET_A, EP_2, '10.231.7.3/24'), mac }, macChoice: { derived, fallback } });
    const created = (events: NewEvent[]) => (events[0]?.type === 'endpoint.created' ? events[0].data.mac : undefined);
    assert.equal(created(decide(choice('06:00:00:00:00:01'), given(createA))), derived);
    const holder: Command = { type: 'CreateEndpoint', spec: { ...endpointSpec(NET_A, EP_1), mac: derived }, requestedMac: true };
    const taken = given(createA, holder);
    assert.equal(created(decide(choice('06:00:00:00:00:01'), taken)), '06:00:00:00:00:01');
    const third: Command = { type: 'CreateEndpoint', spec: { ...endpointSpec(NET_A, 'c'.repeat(64), '10.231.7.4/24'), mac: '06:00:00:00:00:01' } };
    assert.throws(
      () => decide(choice('06:00:00:00:00:01'), given(createA, holder, third)),
      (e: DriverError) => e.code === 'LN_ERR_CONFLICT' && e.message.includes(`the MAC derived from its address (${derived}) is that of endpoint ${EP_1.slice(0, 12)} and the random one drawn instead (06:00:00:00:00:01) that of endpoint cccccccccccc`),
    );
    // A MAC given (Docker's, or ledgernet.mac) is the one recorded.
    assert.equal(created(decide(choice('06:00:00:00:00:01', '06:00:00:00:00:02'), taken)), '06:00:00:00:00:02');
  });
});
