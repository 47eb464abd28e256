// Naming containers from Docker's event stream (src/operator/docker-events.ts): which endpoint a
// `network connect` event stands for (only an unambiguous one), and the namer against a fake
// stream over a state folded from real commands.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Logger } from 'pino';
import type { Command } from '../../../src/events/domain/commands.ts';
import { decide } from '../../../src/events/domain/decide.ts';
import { fold } from '../../../src/events/domain/evolve.ts';
import type { State, StoredEvent } from '../../../src/events/domain/types.ts';
import { DockerApiError, type DockerApi, type DockerEvent } from '../../../src/operator/docker-api.ts';
import { CANDIDATE_MS, ConnectNamer, connectedEndpoint, type Joined } from '../../../src/operator/docker-events.ts';
import { EP_1, EP_2, NET_A, NET_B, endpointSpec, given, networkSpec, stamp } from '../../helpers/events.ts';

const C1 = 'c1'.repeat(32);
const C2 = 'c2'.repeat(32);
const j = (networkId: string, containerId: string | null = null, joinedAt = 0, goneAt: number | null = null): Joined => ({ networkId, containerId, joinedAt, goneAt });

describe('connectedEndpoint', () => {
  it('is the one endpoint of the network joined at the time of the event without a container', () => {
    assert.equal(connectedEndpoint(new Map([[EP_1, j(NET_A)], [EP_2, j(NET_B)]]), NET_A, C1, 1_000), EP_1);
  });

  it('is none when two could be it, a gone one included, when there is none, or when it is no longer in the log', () => {
    assert.equal(connectedEndpoint(new Map([[EP_1, j(NET_A)], [EP_2, j(NET_A)]]), NET_A, C1, 1_000), null);
    assert.equal(connectedEndpoint(new Map([[EP_1, j(NET_A)], [EP_2, j(NET_A, null, 0, 1_500)]]), NET_A, C1, 1_000), null, 'one that left after the event still counts');
    assert.equal(connectedEndpoint(new Map([[EP_1, j(NET_B)]]), NET_A, C1, 1_000), null);
    assert.equal(connectedEndpoint(new Map([[EP_1, j(NET_A)]]), NET_A, C1, 1_000, () => false), null);
  });

  it('leaves out endpoints that left before the event or joined after it (its container was not running then)', () => {
    assert.equal(connectedEndpoint(new Map([[EP_1, j(NET_A)], [EP_2, j(NET_A, null, 0, 500)]]), NET_A, C1, 1_000), EP_1);
    assert.equal(connectedEndpoint(new Map([[EP_1, j(NET_A)], [EP_2, j(NET_A, null, 2_000)]]), NET_A, C1, 1_000), EP_1);
    assert.equal(connectedEndpoint(new Map([[EP_1, j(NET_A)], [EP_2, j(NET_A, null, 0, 980)]]), NET_A, C1, 1_000), null, 'within the clock slack: counted');
    assert.equal(connectedEndpoint(new Map([[EP_1, j(NET_A)], [EP_2, j(NET_A, null, 0, 500)]]), NET_A, C1, null), null, 'no time: every one counts');
  });

  it("is none when an endpoint of the network joined then is the container's already (the one left is another container's)", () => {
    assert.equal(connectedEndpoint(new Map([[EP_1, j(NET_A, C1)], [EP_2, j(NET_A)]]), NET_A, C1, 1_000), null);
    assert.equal(connectedEndpoint(new Map([[EP_1, j(NET_A, C2)], [EP_2, j(NET_A)]]), NET_A, C1, 1_000), EP_2, "another container's named endpoint is not a candidate");
  });
});

/** A namer over a state folded from commands, a fake event stream, and a fake inspect. */
function harness(initial: State) {
  let state = initial;
  let now = 1_000_000;
  let emit: (e: DockerEvent) => void = () => undefined;
  const inspected: string[] = [];
  const running = new Map<string, string>();
  /** Each running container's endpoint by network id, as its inspect shows it. */
  const endpointsOf = new Map<string, Record<string, string>>();
  const api = {
    events: (_f: unknown, _since: unknown, onEvent: (e: DockerEvent) => void) => {
      emit = onEvent;
      return { close: () => undefined };
    },
    inspectContainer: async (id: string) => {
      inspected.push(id);
      const name = running.get(id);
      if (name === undefined) throw new DockerApiError(404, `No such container: ${id}`);
      const networks = Object.fromEntries(Object.entries(endpointsOf.get(id) ?? {}).map(([NetworkID, EndpointID]) => [`n-${NetworkID.slice(0, 4)}`, { NetworkID, EndpointID }]));
      return { Id: id, Name: `/${name}`, NetworkSettings: { Networks: networks } };
    },
  } as unknown as DockerApi;
  const silent = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined, child: () => silent } as unknown as Logger;
  const run = (cmd: Command) => {
    const stored: StoredEvent[] = stamp(decide(cmd, state), state).map((e) => ({ ...e, at: new Date(now).toISOString() }));
    state = fold(state, stored);
    namer.onStoreEvents(stored);
  };
  const others: string[] = [];
  const namer = new ConnectNamer({
    api,
    getState: () => state,
    record: async (e) => run({ type: 'RecordNames', networks: [], endpoints: [e] }),
    log: silent,
    now: () => now,
    otherNetwork: (id) => others.push(id),
  });
  namer.start();
  const event = (e: DockerEvent) => {
    emit({ timeNano: now * 1e6, ...e });
    return namer.idle();
  };
  const created = (id: string, name: string) => event({ Type: 'container', Action: 'create', Actor: { ID: id, Attributes: { name } } });
  const renamed = (id: string, name: string) => event({ Type: 'container', Action: 'rename', Actor: { ID: id, Attributes: { name, oldName: 'x' } } });
  const connected = (networkId: string, container: string, ageMs = 0) =>
    event({ Type: 'network', Action: 'connect', Actor: { ID: networkId, Attributes: { container, name: 'web', type: 'ledgernet' } }, timeNano: (now - ageMs) * 1e6 });
  const networkCreated = (id: string, type: string) => event({ Type: 'network', Action: 'create', Actor: { ID: id, Attributes: { name: 'n', type } } });
  const networkDestroyed = (id: string, type: string) => event({ Type: 'network', Action: 'destroy', Actor: { ID: id, Attributes: { name: 'n', type } } });
  return { run, created, renamed, connected, networkCreated, networkDestroyed, others, running, endpointsOf, inspected, state: () => state, advance: (ms: number) => (now += ms) };
}

const join = (endpointId: string, networkId = NET_A): Command => ({ type: 'Join', networkId, endpointId, sandboxKey: '/var/run/docker/netns/x' });

describe('ConnectNamer', () => {
  const base = () =>
    given(
      { type: 'CreateNetwork', spec: networkSpec(NET_A) },
      { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) },
      { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_2, '10.231.7.3/24') },
    );

  it("tells of a network Docker created that is not ledgernet's (Docker's rules went above the hook): not of ledgernet's own", async () => {
    const h = harness(base());
    await h.networkCreated(NET_A, 'ledgernet');
    assert.deepEqual(h.others, [], "ledgernet's own network: its CreateNetwork planned it already");
    await h.networkCreated(NET_B, 'bridge');
    assert.deepEqual(h.others, [NET_B]);
    assert.deepEqual(h.inspected, [], 'nothing is inspected for it');
  });

  it("tells of a network of Docker's bridge driver removed (its isolation lines go): not of ledgernet's own, gone from the state by then", async () => {
    const h = harness(given());
    await h.networkDestroyed(NET_A, 'ledgernet');
    await h.networkDestroyed('c'.repeat(64), 'macvlan');
    assert.deepEqual(h.others, [], 'no isolation lines of these to take out');
    await h.networkDestroyed(NET_B, 'bridge');
    assert.deepEqual(h.others, [NET_B]);
  });

  it("names a container that is gone before anyone could inspect it, by its create event's name", async () => {
    const h = harness(base());
    await h.created(C1, 'quick-job');
    h.run(join(EP_1));
    await h.connected(NET_A, C1);
    assert.deepEqual(h.state().endpoints[EP_1]?.container, { id: C1, name: 'quick-job' });
    assert.deepEqual(h.inspected, [], 'the name came with the create event');
  });

  it('asks for the name of a container created before the stream opened; one gone already is not named', async () => {
    const h = harness(base());
    h.running.set(C1, 'older');
    h.run(join(EP_1));
    await h.connected(NET_A, C1);
    assert.deepEqual(h.state().endpoints[EP_1]?.container, { id: C1, name: 'older' });
    h.run(join(EP_2));
    await h.connected(NET_A, C2);
    assert.equal(h.state().endpoints[EP_2]?.container, undefined, 'gone (404): nothing recorded');
  });

  it('names nothing while two endpoints of the network could be the one, a gone one included; one that left before the event is not one', async () => {
    const h = harness(base());
    await h.created(C1, 'one');
    await h.created(C2, 'two');
    h.run(join(EP_1));
    h.run(join(EP_2));
    h.advance(10);
    const at = 10; // both events stamped while both ran, read after EP_1's container went
    h.advance(100);
    h.run({ type: 'Leave', networkId: NET_A, endpointId: EP_1 });
    h.run({ type: 'DeleteEndpoint', networkId: NET_A, endpointId: EP_1 });
    await h.connected(NET_A, C2, 100 - at + 10);
    assert.equal(h.state().endpoints[EP_2]?.container, undefined, 'the gone endpoint may have been this event');
    // Later containers one after another: the ones gone before do not make them ambiguous.
    h.run({ type: 'Leave', networkId: NET_A, endpointId: EP_2 });
    h.run({ type: 'DeleteEndpoint', networkId: NET_A, endpointId: EP_2 });
    h.advance(1_000);
    h.run({ type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) });
    h.run(join(EP_1));
    h.advance(5);
    await h.connected(NET_A, C1);
    assert.deepEqual(h.state().endpoints[EP_1]?.container, { id: C1, name: 'one' });
  });

  it("containers started together: Docker's inspect of one still there says which endpoint is its own", async () => {
    const h = harness(base());
    await h.created(C1, 'one');
    await h.created(C2, 'two');
    h.run(join(EP_1));
    h.run(join(EP_2));
    h.running.set(C2, 'two');
    h.endpointsOf.set(C2, { [NET_A]: EP_2 });
    await h.connected(NET_A, C2);
    assert.deepEqual(h.state().endpoints[EP_2]?.container, { id: C2, name: 'two' });
    assert.deepEqual(h.inspected, [C2]);
    // EP_2 named, EP_1 is the only endpoint left without a container: C1's event (gone already,
    // its name known from its create event) names it without an inspect.
    await h.connected(NET_A, C1);
    assert.deepEqual(h.state().endpoints[EP_1]?.container, { id: C1, name: 'one' });
    assert.deepEqual(h.inspected, [C2]);
  });

  it('a rename event renames the endpoints of that container at once, and no other', async () => {
    const h = harness(base());
    h.run(join(EP_1));
    h.run(join(EP_2));
    h.run({ type: 'RecordNames', networks: [], endpoints: [{ networkId: NET_A, endpointId: EP_1, containerId: C1, name: 'one' }, { networkId: NET_A, endpointId: EP_2, containerId: C2, name: 'two' }] });
    await h.renamed(C1, 'one-renamed');
    assert.deepEqual(h.state().endpoints[EP_1]?.container, { id: C1, name: 'one-renamed' });
    assert.deepEqual(h.state().endpoints[EP_2]?.container, { id: C2, name: 'two' });
  });

  it("an inspect that names an endpoint that is not a candidate names nothing", async () => {
    const h = harness(base());
    await h.created(C1, 'one');
    h.run(join(EP_1));
    h.run(join(EP_2));
    h.running.set(C1, 'one');
    h.endpointsOf.set(C1, { [NET_A]: 'f'.repeat(64) });
    await h.connected(NET_A, C1);
    assert.equal(h.state().endpoints[EP_1]?.container, undefined);
    assert.equal(h.state().endpoints[EP_2]?.container, undefined);
  });

  it("does not give an endpoint to a container the inspect already named on that network", async () => {
    const h = harness(base());
    await h.created(C1, 'one');
    h.run(join(EP_1));
    h.run({ type: 'RecordNames', networks: [], endpoints: [{ networkId: NET_A, endpointId: EP_1, containerId: C1, name: 'one' }] });
    h.run(join(EP_2));
    // C1's event read late, after the inspect named it: EP_2, the only one without a container, is not C1's.
    await h.connected(NET_A, C1);
    assert.equal(h.state().endpoints[EP_2]?.container, undefined);
  });

  it('ignores networks ledgernet does not hold and events read too late', async () => {
    const h = harness(base());
    await h.created(C1, 'one');
    h.run(join(EP_1));
    await h.connected(NET_B, C1);
    assert.equal(h.state().endpoints[EP_1]?.container, undefined);
    await h.connected(NET_A, C1, 40_000); // stamped 40 s before it is read (a stream opened again from `since`)
    assert.equal(h.state().endpoints[EP_1]?.container, undefined);
    await h.connected(NET_A, C1);
    assert.deepEqual(h.state().endpoints[EP_1]?.container, { id: C1, name: 'one' });
  });
});
