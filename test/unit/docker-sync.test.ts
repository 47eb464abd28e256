// Collecting networks Docker no longer has, and starting containers Docker gave up on: the pure
// decisions, the sync against a fake Docker API, and the API client against a fake unix socket.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DockerApi, DockerApiError, DockerUnavailableError, type DockerContainer, type DockerContainerSummary, type DockerNetwork } from '../../src/operator/docker-api.ts';
import { DockerSync, networksToCollect, stoppedOn } from '../../src/operator/docker-sync.ts';
import { LeakedAddresses } from '../../src/operator/leaked-addresses.ts';
import { unaccountedAddresses } from '../../src/events/domain/ipam.ts';
import type { Command } from '../../src/events/domain/commands.ts';
import { decide } from '../../src/events/domain/decide.ts';
import { fold } from '../../src/events/domain/evolve.ts';
import { emptyState, type NewEvent, type State, type StoredEvent } from '../../src/events/domain/types.ts';
import { EP_1, EP_2, NET_A, NET_B, endpointSpec, given, networkSpec, stamp } from '../helpers/events.ts';
import { fakeDocker } from '../helpers/fake-docker.ts';

const pool = (cidr: string): Command => ({
  type: 'RequestPool',
  request: { pool: cidr, subPool: null, v6: false, defaults: { range: '10.231.0.0/16', size: 24 }, occupied: [] },
});
const collect = (networkId: string): Command => ({ type: 'CollectNetwork', networkId, reason: 'gone' });

describe('CollectNetwork', () => {
  const state = given(
    pool('10.231.7.0/24'),
    pool('10.231.8.0/24'),
    { type: 'CreateNetwork', spec: networkSpec(NET_A) },
    { type: 'CreateNetwork', spec: networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24') },
    { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) },
    { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_2, '10.231.7.3/24') },
  );

  it('deletes the endpoints, then records network.collected, then releases the pools of its subnets only', () => {
    const events = decide(collect(NET_A), state);
    assert.deepEqual(
      events.map((e) => e.type),
      ['endpoint.deleted', 'endpoint.deleted', 'network.collected', 'pool.released'],
    );
    const after = fold(state, stamp(events, state));
    assert.equal(after.networks[NET_A], undefined);
    assert.deepEqual(Object.keys(after.endpoints), []);
    assert.deepEqual(Object.values(after.pools).map((p) => p.pool), ['10.231.8.0/24'], 'the other network keeps its pool');
    assert.ok(after.networks[NET_B]);
  });

  it("releases no pool of ledgernet IPAM that is another network's: a network on Docker's IPAM (LocalDefault) of the same subnet", () => {
    // A's pool (`-d bridge --ipam-driver ledgernet`), and B (`-d ledgernet`, Docker's IPAM) on its subnet, as a log may hold them.
    const local = networkSpec(NET_B, '10.50.0.0/24', '10.50.0.1/24');
    const events: NewEvent[] = [
      ...decide(pool('10.50.0.0/24'), emptyState),
      { type: 'network.created', data: { ...local, ipv4Data: local.ipv4Data.map((d) => ({ ...d, addressSpace: 'LocalDefault' })) } },
    ];
    const both = fold(emptyState, stamp(events, emptyState));
    const collected = decide(collect(NET_B), both);
    assert.deepEqual(collected.map((e) => e.type), ['network.collected']);
    assert.deepEqual(Object.keys(fold(both, stamp(collected, both)).pools), ['ledgernet/10.50.0.0/24'], "A's pool stays");
    // The same network in ledgernet's address space is on that pool: collected with it.
    const own = { ...local, ipv4Data: local.ipv4Data.map((d) => ({ ...d, addressSpace: 'ledgernet-local' })) };
    const ours = fold(emptyState, stamp([events[0] as NewEvent, { type: 'network.created', data: own }], emptyState));
    assert.deepEqual(decide(collect(NET_B), ours).map((e) => e.type), ['network.collected', 'pool.released']);
  });

  it('does nothing for a network ledgernet does not hold (a repeat)', () => {
    const after = fold(state, stamp(decide(collect(NET_A), state), state));
    assert.deepEqual(decide(collect(NET_A), after), []);
  });
});

describe('networksToCollect', () => {
  it('collects only what Docker lacked on two looks at least confirmMs apart', () => {
    const first = networksToCollect([NET_A, NET_B], new Set([NET_B]), new Map(), 1000, 2000);
    assert.deepEqual(first.collect, []);
    assert.deepEqual([...first.suspects], [[NET_A, 1000]]);
    const early = networksToCollect([NET_A, NET_B], new Set([NET_B]), first.suspects, 2500, 2000);
    assert.deepEqual(early.collect, [], 'not yet: the confirmation time has not passed');
    const late = networksToCollect([NET_A, NET_B], new Set([NET_B]), early.suspects, 3000, 2000);
    assert.deepEqual(late.collect, [NET_A]);
  });

  it('forgets a suspect Docker lists again (it was being created)', () => {
    const first = networksToCollect([NET_A], new Set(), new Map(), 0, 2000);
    const back = networksToCollect([NET_A], new Set([NET_A]), first.suspects, 1000, 2000);
    assert.deepEqual(back.suspects.size, 0);
    assert.deepEqual(networksToCollect([NET_A], new Set(), back.suspects, 5000, 2000).collect, [], 'a new absence starts a new wait');
  });
});

describe('stoppedOn', () => {
  it('picks exited containers attached to one of the networks', () => {
    const c = (Id: string, State: string, NetworkID: string): DockerContainerSummary => ({
      Id,
      Names: [`/${Id}`],
      State,
      NetworkSettings: { Networks: { n: { NetworkID } } },
    });
    const list = [c('a', 'exited', NET_A), c('b', 'running', NET_A), c('c', 'exited', 'other'), c('d', 'created', NET_B), c('e', 'dead', NET_A)];
    list.push(c('f', 'exited', NET_B));
    assert.deepEqual(stoppedOn(list, new Set([NET_A, NET_B])), ['a', 'f'], 'not running, created (a failed docker run), dead or elsewhere');
  });
});

/** A Docker API in memory; `down` makes every call fail as an absent Docker does. */
class FakeDocker {
  down = false;
  networks: DockerNetwork[] = [];
  containers: DockerContainer[] = [];
  started: string[] = [];
  /** Network id → the endpoint ids its inspect lists (`Containers`, ep-… ones included). */
  inspected = new Map<string, string[]>();
  /** Networks Docker has but leaves out of its lists (a list that lags a create). */
  unlisted: DockerNetwork[] = [];
  /** How many networks were inspected. */
  inspects = 0;
  inspectNetwork = async <T,>(id: string): Promise<T> => {
    this.check();
    this.inspects++;
    const n = [...this.networks, ...this.unlisted].find((x) => x.Id === id);
    if (!n) throw new DockerApiError(404, `network ${id} not found`);
    // Its containers (by id, with their names) and the endpoints it holds without one.
    // Docker's inspect lists the endpoints that exist: not what an exited container's settings still name.
    const attached = this.containers.flatMap((c) =>
      Object.values(c.State.Status === 'exited' || c.State.Status === 'dead' ? {} : (c.NetworkSettings.Networks ?? {}))
        .filter((x) => x.NetworkID === id)
        .map((x) => [c.Id, { Name: c.Name.slice(1), EndpointID: (x as { EndpointID?: string }).EndpointID }] as const),
    );
    // Docker keys an endpoint it holds without a container `ep-<endpoint id>`.
    const extra = (this.inspected.get(id) ?? []).map((ep) => [`ep-${ep}`, { Name: `ep-${ep}`, EndpointID: ep }] as const);
    return { Id: n.Id, Name: n.Name, Containers: Object.fromEntries([...attached, ...extra]) } as T;
  };
  private check(): void {
    if (this.down) throw new DockerUnavailableError('Docker at /nowhere cannot be asked: connect ENOENT');
  }
  /** How often each list was asked. */
  lists = { networks: 0, containers: 0 };
  listNetworks = async () => {
    this.check();
    this.lists.networks++;
    return this.networks;
  };
  /** Runs once the list of containers is taken (a change Docker makes right after a list). */
  afterList: (() => void) | null = null;
  listContainers = async () => {
    this.check();
    this.lists.containers++;
    const taken = this.containers;
    queueMicrotask(() => this.afterList?.());
    return taken.map((c) => ({
      Id: c.Id,
      Names: [c.Name],
      State: c.State.Status,
      NetworkSettings: { Networks: c.NetworkSettings.Networks },
    }));
  };
  inspectContainer = async (id: string) => {
    this.check();
    const c = this.containers.find((x) => x.Id === id);
    if (!c) throw new DockerApiError(404, `no such container ${id}`);
    return c;
  };
  startContainer = async (id: string) => {
    this.check();
    this.started.push(id);
  };
}

function container(id: string, policy: string, error: string, networkId: string): DockerContainer {
  return {
    Id: id,
    Name: `/${id}`,
    State: { Running: false, Status: 'exited', Error: error },
    HostConfig: { RestartPolicy: { Name: policy } },
    NetworkSettings: { Networks: { n: { NetworkID: networkId } } },
  };
}

function harness(initial: State) {
  let state = initial;
  let now = 0;
  const api = new FakeDocker();
  const logs: string[] = [];
  const log = { info: (_o: unknown, m?: string) => logs.push(`info ${m}`), warn: (_o: unknown, m?: string) => logs.push(`warn ${m}`), error: (_o: unknown, m?: string) => logs.push(`error ${m}`), debug: () => undefined };
  const sync = new DockerSync({
    api,
    getState: () => state,
    execute: async (cmd) => {
      const stored: StoredEvent[] = stamp(decide(cmd, state), state);
      state = fold(state, stored);
      return stored;
    },
    log,
    driverName: () => 'ledgernet',
    confirmMs: 2000,
    abandonedGraceMs: 60_000,
    now: () => now,
  });
  return { api, sync, logs, state: () => state, advance: (ms: number) => (now += ms) };
}

describe('DockerSync', () => {
  const two = given({ type: 'CreateNetwork', spec: networkSpec(NET_A) }, { type: 'CreateNetwork', spec: networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24') });
  const FAILED = 'failed to add endpoint: plugin "ledgernet" not found';

  it('collects a network Docker no longer lists, after the confirmation time, and logs it', async () => {
    const h = harness(two);
    h.api.networks = [{ Id: NET_B, Name: 'b', Driver: 'ledgernet' }];
    await h.sync.sync();
    assert.ok(h.state().networks[NET_A], 'one look is not enough');
    h.advance(2000);
    await h.sync.sync();
    assert.equal(h.state().networks[NET_A], undefined);
    assert.ok(h.state().networks[NET_B]);
    assert.ok(h.logs.some((l) => /^warn network aaaaaaaa0000 is gone from Docker: collected/.test(l)), h.logs.join('\n'));
  });

  it('keeps a network two lists lack when Docker has it by id (a list that lags a create)', async () => {
    const h = harness(two);
    h.api.networks = [{ Id: NET_B, Name: 'b', Driver: 'ledgernet' }];
    h.api.unlisted = [{ Id: NET_A, Name: 'a', Driver: 'ledgernet' }];
    await h.sync.sync();
    h.advance(2000);
    await h.sync.sync();
    assert.ok(h.state().networks[NET_A], 'Docker answered for it by id');
    assert.ok(h.logs.some((l) => /^info network aaaaaaaa0000 was missing from Docker's lists but Docker has it: kept/.test(l)), h.logs.join('\n'));
    h.api.unlisted = [];
    h.advance(2000);
    await h.sync.sync();
    assert.ok(h.state().networks[NET_A], 'a new absence starts a new wait');
    h.advance(2000);
    await h.sync.sync();
    assert.equal(h.state().networks[NET_A], undefined, 'gone by id too: collected');
  });

  it('changes nothing while Docker cannot be asked, and says so once', async () => {
    const h = harness(two);
    h.api.down = true;
    for (let i = 0; i < 3; i++) {
      await h.sync.sync();
      h.advance(5000);
    }
    assert.equal(Object.keys(h.state().networks).length, 2);
    assert.equal(h.logs.filter((l) => l.includes('Docker cannot be asked now')).length, 1, h.logs.join('\n'));
  });

  it('starts restart-policy containers on its networks whose start failed, once; not stopped or foreign ones', async () => {
    const h = harness(two);
    h.api.networks = [
      { Id: NET_A, Name: 'a', Driver: 'ledgernet' },
      { Id: NET_B, Name: 'b', Driver: 'ledgernet' },
    ];
    h.api.containers = [
      container('always', 'always', FAILED, NET_A),
      container('unless', 'unless-stopped', FAILED, NET_B),
      container('stopped-by-user', 'always', '', NET_A),
      container('no-policy', 'no', FAILED, NET_A),
      container('socket-refused', 'always', 'failed to create endpoint x on network a: dial unix /run/docker/plugins/ledgernet.sock: connect: connection refused', NET_A),
      container('bad-mount', 'always', 'error while mounting volume: no such file', NET_A),
      container('elsewhere', 'always', FAILED, 'f'.repeat(64)),
    ];
    await h.sync.sync();
    assert.deepEqual(h.api.started.sort(), ['always', 'socket-refused', 'unless']);
    await h.sync.sync();
    assert.deepEqual(h.api.started.length, 3, 'a container is started at most once per daemon');
    assert.ok(h.logs.some((l) => l.startsWith('warn starting container always: Docker gave up on it')), h.logs.join('\n'));
  });
});

describe("DockerSync: Docker's names", () => {
  const CID = 'c0ffee'.repeat(10) + 'abcd';
  const withEndpoint = given({ type: 'CreateNetwork', spec: networkSpec(NET_A) }, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) });
  const running = (id: string, name: string, endpointId: string): DockerContainer => ({
    Id: id,
    Name: `/${name}`,
    State: { Running: true, Status: 'running', Error: '' },
    HostConfig: {},
    NetworkSettings: { Networks: { web: { NetworkID: NET_A, EndpointID: endpointId } as { NetworkID: string } } },
  });

  it('records the network name and the container of each endpoint, once, asking each list once per look', async () => {
    const h = harness(withEndpoint);
    h.api.networks = [{ Id: NET_A, Name: 'web', Driver: 'ledgernet' }];
    h.api.containers = [running(CID, 'web-1', EP_1)];
    await h.sync.sync();
    assert.equal(h.state().networks[NET_A]?.name, 'web');
    assert.deepEqual(h.state().endpoints[EP_1]?.container, { id: CID, name: 'web-1' });
    assert.deepEqual(h.api.lists, { networks: 1, containers: 1 }, 'collect, names, restarts and abandoned endpoints share one list of each');
    const seq = h.state().seq;
    await h.sync.sync();
    assert.equal(h.state().seq, seq, 'nothing new: nothing recorded');
    h.api.containers = [running(CID, 'api-1', EP_1)];
    await h.sync.sync();
    assert.deepEqual(h.state().endpoints[EP_1]?.container, { id: CID, name: 'api-1' }, 'docker rename is recorded');
  });

  it('names the networks touched with one inspect each, no list; nothing else (no collection of a network Docker lacks)', async () => {
    const h = harness(given({ type: 'CreateNetwork', spec: networkSpec(NET_B, '10.231.8.0/24', '10.231.8.1/24') }, { type: 'CreateNetwork', spec: networkSpec(NET_A) }, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) }));
    h.api.networks = [{ Id: NET_A, Name: 'web', Driver: 'ledgernet' }];
    h.api.containers = [running(CID, 'web-1', EP_1)];
    for (let i = 0; i < 3; i++) {
      await h.sync.nameNetworks([NET_A, 'f'.repeat(64)]);
      h.advance(5000);
    }
    assert.equal(h.state().networks[NET_A]?.name, 'web');
    assert.deepEqual(h.state().endpoints[EP_1]?.container, { id: CID, name: 'web-1' });
    assert.ok(h.state().networks[NET_B], 'not collected, though Docker lacks it');
    assert.deepEqual(h.api.lists, { networks: 0, containers: 0 });
    assert.equal(h.api.inspects, 3, 'one inspect per look, of the network ledgernet holds');
    // An endpoint Docker holds without a container (after a crash): nothing to name, nothing to warn of.
    const withStale = harness(given({ type: 'CreateNetwork', spec: networkSpec(NET_A) }, { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_2, '10.231.7.3/24') }));
    withStale.api.networks = [{ Id: NET_A, Name: 'web', Driver: 'ledgernet' }];
    withStale.api.inspected.set(NET_A, [EP_2]);
    await withStale.sync.nameNetworks([NET_A]);
    assert.equal(withStale.state().endpoints[EP_2]?.container, undefined);
    assert.deepEqual(withStale.logs.filter((l) => l.startsWith('warn')), []);
    // Asked while a tick looks (its lists taken before the rename): named after it, not dropped.
    h.api.afterList = () => (h.api.containers = [running(CID, 'renamed', EP_1)]);
    const tick = h.sync.sync();
    await h.sync.nameNetworks([NET_A]);
    await tick;
    assert.deepEqual(h.state().endpoints[EP_1]?.container, { id: CID, name: 'renamed' });
    h.api.networks = [];
    await h.sync.nameNetworks([NET_A]);
    assert.equal(h.state().networks[NET_A]?.name, 'web', 'a network removed meanwhile (404): nothing changes');
  });

  it('skips a name it must not record, warning once, and records the others', async () => {
    const h = harness(withEndpoint);
    h.api.networks = [{ Id: NET_A, Name: 'web\nforged line', Driver: 'ledgernet' }];
    h.api.containers = [running(CID, 'web-1', EP_1)];
    await h.sync.sync();
    await h.sync.sync();
    assert.equal(h.state().networks[NET_A]?.name, undefined);
    assert.deepEqual(h.state().endpoints[EP_1]?.container, { id: CID, name: 'web-1' });
    assert.equal(h.logs.filter((l) => /^warn a name in Docker's API is not recorded: network aaaaaaaa0000: the name holds a control character/.test(l)).length, 1, h.logs.join('\n'));
  });
});

describe('DockerSync: endpoints Docker abandoned', () => {
  const withEndpoints = given(
    { type: 'CreateNetwork', spec: networkSpec(NET_A) },
    { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) },
    { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_2, '10.231.7.3/24') },
    { type: 'Join', networkId: NET_A, endpointId: EP_1, sandboxKey: '/var/run/docker/netns/x' },
  );
  const running = (endpointId: string): DockerContainer => ({
    ...container('c1', 'no', '', NET_A),
    State: { Running: true, Status: 'running', Error: '' },
    NetworkSettings: { Networks: { a: { NetworkID: NET_A, EndpointID: endpointId } as { NetworkID: string } } },
  });
  const setup = () => {
    const h = harness(withEndpoints);
    h.api.networks = [{ Id: NET_A, Name: 'a', Driver: 'ledgernet' }];
    h.api.containers = [running(EP_1)];
    h.api.inspected.set(NET_A, [EP_1]);
    return h;
  };

  it('releases an endpoint no container and no inspect holds, only after the grace period; never the joined one Docker lists', async () => {
    const h = setup();
    await h.sync.sync();
    h.advance(59_000);
    await h.sync.sync();
    assert.deepEqual(Object.keys(h.state().endpoints).sort(), [EP_1, EP_2].sort(), 'not before 60 s');
    h.advance(1_000);
    await h.sync.sync();
    assert.deepEqual(Object.keys(h.state().endpoints), [EP_1], 'EP_2 released; the joined EP_1 Docker lists stays');
    assert.ok(h.logs.some((l) => /^warn endpoint [0-9a-f]{12} is unknown to Docker \(abandoned after a crash\): released/.test(l)), h.logs.join('\n'));
    h.advance(600_000);
    await h.sync.sync();
    assert.deepEqual(Object.keys(h.state().endpoints), [EP_1]);
  });

  it('keeps an endpoint Docker holds without a container (ep-…), and one it lists again in between', async () => {
    const h = setup();
    h.api.inspected.set(NET_A, [EP_1, EP_2]);
    await h.sync.sync();
    h.advance(61_000);
    await h.sync.sync();
    assert.ok(h.state().endpoints[EP_2], 'the network inspect lists it');
    h.api.inspected.set(NET_A, [EP_1]);
    h.api.containers = [running(EP_1), { ...running(EP_2), Id: 'c2' }];
    h.advance(30_000);
    await h.sync.sync();
    h.api.containers = [running(EP_1)];
    h.advance(30_000);
    await h.sync.sync();
    h.advance(59_000);
    await h.sync.sync();
    assert.ok(h.state().endpoints[EP_2], 'seen on a container 60 s ago: a new absence waits the whole grace period again');
  });

  it('releases an endpoint only an exited container still names (a sandbox Docker removed as stale after --live-restore); a restarting one holds it', async () => {
    const h = setup();
    const exited = (c: DockerContainer): DockerContainer => ({ ...c, State: { Running: false, Status: 'exited', Error: '' } });
    h.api.containers = [running(EP_1), exited({ ...running(EP_2), Id: 'c2' })];
    await h.sync.sync();
    h.advance(60_000);
    await h.sync.sync();
    assert.deepEqual(Object.keys(h.state().endpoints), [EP_1], 'EP_2: its container exited, Docker lists it on no network');
    const h2 = setup();
    h2.api.containers = [running(EP_1), { ...running(EP_2), Id: 'c2', State: { Running: false, Status: 'restarting', Error: '' } }];
    await h2.sync.sync();
    h2.advance(60_000);
    await h2.sync.sync();
    assert.ok(h2.state().endpoints[EP_2], 'a restarting container holds its endpoint');
  });

  it('a Docker that cannot be asked starts the wait again', async () => {
    const h = setup();
    await h.sync.sync();
    h.advance(50_000);
    h.api.down = true;
    await h.sync.sync();
    h.api.down = false;
    h.advance(20_000);
    await h.sync.sync();
    assert.ok(h.state().endpoints[EP_2], 'missing for 70 s, but not seen missing continuously');
  });
});

describe('LeakedAddresses: addresses whose ReleaseAddress Docker gave up', () => {
  const addr = (address: string | null, gateway = false): Command => ({ type: 'RequestAddress', poolId: 'ledgernet/10.231.7.0/24', address, gateway, name: null });
  // .1 the gateway, .2 EP_1's, .3 an endpoint's that was released while its ReleaseAddress was lost, .5 an aux address.
  const aux = { ...networkSpec(NET_A), ipv4Data: [{ pool: '10.231.7.0/24', gateway: '10.231.7.1/24', aux: { router: '10.231.7.5/24' } }] };
  const initial = given(pool('10.231.7.0/24'), addr(null, true), addr('10.231.7.5'), { type: 'CreateNetwork', spec: aux }, addr(null), addr(null), { type: 'CreateEndpoint', spec: endpointSpec(NET_A, EP_1) });
  const setup = (dockerHolds: string[]) => {
    let state = initial;
    let now = 0;
    const logs: string[] = [];
    const detail = { Id: NET_A, Name: 'a', IPAM: { Driver: 'ledgernet', Config: [{ Subnet: '10.231.7.0/24', Gateway: '10.231.7.1', AuxiliaryAddresses: { router: '10.231.7.5' } }] }, Containers: Object.fromEntries(dockerHolds.map((a, i) => [`c${i}`, { Name: `c${i}`, EndpointID: `e${i}`, IPv4Address: `${a}/24` }])) };
    const api = { listNetworks: async () => [detail as unknown as DockerNetwork], inspectNetwork: async <T,>() => detail as T };
    const leaked = new LeakedAddresses({
      api,
      getState: () => state,
      execute: async (cmd) => {
        const stored = stamp(decide(cmd, state), state);
        state = fold(state, stored);
        return stored;
      },
      log: { warn: (_o: unknown, m?: string) => logs.push(`warn ${m}`) },
      graceMs: 60_000,
      now: () => now,
    });
    return { leaked, logs, held: () => Object.keys(state.pools['ledgernet/10.231.7.0/24']?.allocated ?? {}).sort(), advance: (ms: number) => (now += ms) };
  };

  it('names only what no endpoint, gateway or aux address of the log accounts for', () => {
    assert.deepEqual(unaccountedAddresses(initial).map((a) => a.address), ['10.231.7.3']);
  });

  it('releases it with a reason once unaccounted for through the grace and held by Docker nowhere; never before, never one Docker holds', async () => {
    const h = setup(['10.231.7.2']);
    await h.leaked.step();
    h.advance(59_000);
    await h.leaked.step();
    assert.deepEqual(h.held(), ['10.231.7.1', '10.231.7.2', '10.231.7.3', '10.231.7.5'], 'not within the grace (a RequestAddress before its CreateEndpoint)');
    h.advance(1_000);
    await h.leaked.step();
    assert.deepEqual(h.held(), ['10.231.7.1', '10.231.7.2', '10.231.7.5']);
    assert.ok(h.logs.some((l) => /^warn address 10\.231\.7\.3 of pool 10\.231\.7\.0\/24 released: no endpoint holds it and Docker holds it nowhere/.test(l)), h.logs.join('\n'));

    const busy = setup(['10.231.7.2', '10.231.7.3']);
    await busy.leaked.step();
    busy.advance(60_000);
    await busy.leaked.step();
    assert.deepEqual(busy.held(), ['10.231.7.1', '10.231.7.2', '10.231.7.3', '10.231.7.5'], 'Docker holds .3 (an endpoint being created): kept');
  });
});

describe('DockerApi over a unix socket', () => {
  let dir: string;
  let server: Server;
  const seen: string[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ledgernet-docker-api-'));
    server = createServer(
      fakeDocker({ api: '1.41', min: '1.12' }, (req, res, path) => {
        seen.push(`${req.method} ${req.url}`);
        if (path === '/networks') return void res.end(JSON.stringify([{ Id: NET_A, Name: 'a', Driver: 'ledgernet' }]));
        if (path === '/containers/x/start') return void res.writeHead(204).end();
        if (path === '/containers/slow/json') return; // never answers
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ message: 'No such container: y' }));
      }),
    );
    await new Promise<void>((r) => server.listen(join(dir, 'docker.sock'), r));
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it('reads answers, and names Docker errors and an absent Docker differently', async () => {
    const api = new DockerApi(join(dir, 'docker.sock'), 300);
    assert.deepEqual(await api.listNetworks(), [{ Id: NET_A, Name: 'a', Driver: 'ledgernet' }]);
    await api.startContainer('x');
    await assert.rejects(api.inspectContainer('y'), (e: DockerApiError) => e instanceof DockerApiError && e.status === 404 && /No such container: y/.test(e.message));
    await assert.rejects(api.inspectContainer('slow'), (e: Error) => e instanceof DockerUnavailableError && /no answer within 300 ms/.test(e.message));
    await assert.rejects(new DockerApi(join(dir, 'absent.sock')).listNetworks(), (e: Error) => e instanceof DockerUnavailableError && /absent\.sock.*ENOENT/.test(e.message));
    assert.deepEqual(seen.slice(0, 2), ['GET /v1.41/networks', 'POST /v1.41/containers/x/start']);
  });
});
