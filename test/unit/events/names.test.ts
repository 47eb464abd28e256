// Docker's names (names.ts): recorded once, again only when they change, never for what ledgernet
// does not hold, never a name that could forge a line; a recorded name does not make Docker's
// retried CreateNetwork a conflict.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeEvent } from '../../../src/events/audit/cloudevents.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { namesFrom } from '../../../src/events/domain/names.ts';
import { fold } from '../../../src/events/domain/evolve.ts';
import type { Command } from '../../../src/events/domain/commands.ts';
import type { State } from '../../../src/events/domain/types.ts';
import { DriverError } from '../../../src/errors.ts';
import { EP_1, EP_2, NET_A, NET_B, endpointSpec, given, networkSpec, stamp } from '../../helpers/events.ts';

const CONTAINER = 'c0ffee'.repeat(10) + 'abcd';
const then = (state: State, cmd: Command) => fold(state, stamp(decide(cmd, state), state));
const names = (networks: { networkId: string; name: string }[], endpoints: { networkId: string; endpointId: string; containerId: string; name: string }[] = []): Command => ({ type: 'RecordNames', networks, endpoints });

describe('Docker names', () => {
  const base = given(
    { type: 'CreateNetwork', spec: networkSpec(NET_A) },
    { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) },
  );

  it('records a network name and an endpoint container once; the state holds them', () => {
    const cmd = names([{ networkId: NET_A, name: 'web' }], [{ networkId: NET_A, endpointId: EP_1, containerId: CONTAINER, name: 'web-1' }]);
    const events = decide(cmd, base);
    assert.deepEqual(events.map((e) => e.type), ['network.named', 'endpoint.named']);
    const after = then(base, cmd);
    assert.equal(after.networks[NET_A]?.name, 'web');
    assert.deepEqual(after.endpoints[EP_1]?.container, { id: CONTAINER, name: 'web-1' });
    assert.deepEqual(decide(cmd, after), [], 'the same names again record nothing');
    const line = describeEvent(stamp(events, base)[1] as never);
    assert.match(line, /endpoint e1e1e1e12222 on network aaaaaaaa0000 belongs to container web-1 \(c0ffeec0ffee\)/);
  });

  it('a renamed container is recorded again', () => {
    const named = then(base, names([], [{ networkId: NET_A, endpointId: EP_1, containerId: CONTAINER, name: 'web-1' }]));
    const renamed = decide(names([], [{ networkId: NET_A, endpointId: EP_1, containerId: CONTAINER, name: 'api-1' }]), named);
    assert.deepEqual(renamed.map((e) => [e.type, (e.data as { name: string }).name]), [['endpoint.named', 'api-1']]);
  });

  it('names of networks and endpoints ledgernet does not hold, or of another network, are skipped', () => {
    const events = decide(
      names([{ networkId: NET_B, name: 'other' }], [
        { networkId: NET_A, endpointId: EP_2, containerId: CONTAINER, name: 'x' },
        { networkId: NET_B, endpointId: EP_1, containerId: CONTAINER, name: 'x' },
      ]),
      base,
    );
    assert.deepEqual(events, []);
  });

  it('refuses a name that is empty, too long or holds a control character, naming it; nothing is recorded', () => {
    for (const [bad, why] of [['', /empty/], ['x'.repeat(256), /256 characters long \(at most 255\)/], ['web\nfake line', /control character/]] as const) {
      assert.throws(() => decide(names([{ networkId: NET_A, name: 'ok' }, { networkId: NET_A, name: bad }]), base), (e: unknown) => e instanceof DriverError && /network aaaaaaaa0000/.test(e.message) && why.test(e.message));
    }
    assert.throws(() => decide(names([], [{ networkId: NET_A, endpointId: EP_1, containerId: 'NOT-HEX', name: 'a' }]), base), /endpoint e1e1e1e12222: the container id is not 12 to 64 lowercase hex digits/);
  });

  it("a recorded name does not turn Docker's retried CreateNetwork into a conflict", () => {
    const named = then(base, names([{ networkId: NET_A, name: 'web' }]));
    assert.deepEqual(decide({ type: 'CreateNetwork', spec: networkSpec(NET_A) }, named), []);
  });
});

describe('namesFrom', () => {
  it("collects networks' and endpoints' names from events, the latest winning (docker rename)", () => {
    const events = stamp(
      [
        { type: 'network.named', data: { networkId: NET_A, name: 'web' } },
        { type: 'endpoint.named', data: { networkId: NET_A, endpointId: EP_1, containerId: CONTAINER, name: 'web-1' } },
        { type: 'network.deleted', data: { networkId: NET_B } },
        { type: 'endpoint.named', data: { networkId: NET_A, endpointId: EP_1, containerId: CONTAINER, name: 'api-1' } },
      ],
      given(),
    );
    assert.deepEqual([...namesFrom(events)], [[NET_A, 'web'], [EP_1, 'api-1']]);
  });
});
