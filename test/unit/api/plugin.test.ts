// The plugin protocol as Docker sees it: the real fastify app over a real event log (temp dir),
// a real EventStore and a real Reconciler applying to the FakeKernel. Bodies are sent as raw
// strings without a Content-Type, the way dockerd sends them (observed-docker.md §1).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { createPlugin } from '../../../src/api/plugin.ts';
import { createPluginApp, pluginHttp } from '../../../src/api/plugin-http.ts';
import { fold } from '../../../src/events/domain/evolve.ts';
import { EventLog } from '../../../src/events/log/log.ts';
import { readLog } from '../../../src/events/log/read.ts';
import { EventStore } from '../../../src/events/log/store.ts';
import { emptyState } from '../../../src/events/domain/types.ts';
import { Reconciler } from '../../../src/reconciler/loop.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';
import { byLedgernet } from '../../../src/events/domain/cause.ts';

// Ids and bodies from a real dockerd (observed-docker.md §2.1, §2.2, §2.8, §2.9).
const NET = '404f6704c3ccdc6e4d2ec4a484462b64600d586ecb6b5dda50c4010a8d5973be';
const EP = 'a8bbafba2420888ea04df22510037f17cb4829a8b6632a407ffb32281a344e8d';
const OTHER_NET = 'cf347594c297de10fa4592c16d3a5e89d522c709af89b6a89c9b6b7e3c5ee0ce';
const BRIDGE = 'lnb-404f6704c3c';
const VETH = 'lnv-a8bbafba242';
const PEER = 'lnp-a8bbafba242';
const NO_PORTS = '"Options":{"com.docker.network.endpoint.exposedports":[],"com.docker.network.portmap":[]}';

const createNetworkBody = (opts = '{}', netId = NET): string =>
  `{"NetworkID":"${netId}","Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":${opts}},` +
  `"IPv4Data":[{"AddressSpace":"LocalDefault","Gateway":"10.213.0.1/24","Pool":"10.213.0.0/24"}],"IPv6Data":[]}\n`;
const createEndpointBody = (netId = NET): string =>
  `{"NetworkID":"${netId}","EndpointID":"${EP}","Interface":{"Address":"10.213.0.2/24","AddressIPv6":"","MacAddress":""},${NO_PORTS}}\n`;
const joinBody = `{"NetworkID":"${NET}","EndpointID":"${EP}","SandboxKey":"/var/run/docker/netns/4b2d8b7d3322",${NO_PORTS}}\n`;
const programBody = `{"NetworkID":"${NET}","EndpointID":"${EP}",${NO_PORTS}}\n`;
const epBody = `{"NetworkID":"${NET}","EndpointID":"${EP}"}\n`;
const netBody = `{"NetworkID":"${NET}"}\n`;

interface Harness {
  readonly app: FastifyInstance;
  readonly kernel: FakeKernel;
  readonly reconciler: Reconciler;
  readonly store: EventStore;
  readonly dir: string;
  /** Headers of every request as the app received them. */
  readonly seen: IncomingHttpHeaders[];
}

let h: Harness;

beforeEach(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ln-plugin-'));
  const { log, events } = await EventLog.open(dir, { host: 't' });
  const store = new EventStore(log, fold(emptyState, events));
  const kernel = new FakeKernel();
  const logger = pino({ level: 'silent' });
  const reconciler = new Reconciler({
    kernel,
    getState: () => store.latest,
    log: logger,
    intervalMs: 0,
    onLost: async (lost) => {
      for (const a of lost) {
        if (a.owner.endpointId) await store.execute({ type: 'MarkLost', endpointId: a.owner.endpointId, reason: a.reason }, byLedgernet('test'));
      }
    },
  });
  const app = createPluginApp({ store, reconciler, log: logger, applyTimeoutMs: 5_000 });
  const seen: IncomingHttpHeaders[] = [];
  app.addHook('onRequest', async (req) => {
    seen.push({ ...req.headers });
  });
  await app.ready();
  h = { app, kernel, reconciler, store, dir, seen };
});

afterEach(async () => {
  await h.app.close();
  await h.reconciler.stop();
  await h.store.close();
  await rm(h.dir, { recursive: true, force: true });
});

interface Reply {
  readonly status: number;
  readonly body: Record<string, unknown>;
  readonly headers: Record<string, unknown>;
}

/** POSTs like dockerd: a raw body, Content-Length, no Content-Type. */
async function call(method: string, payload = ''): Promise<Reply> {
  const res = await h.app.inject({
    method: 'POST',
    url: `/${method}`,
    payload,
    headers: {
      'content-length': String(Buffer.byteLength(payload)),
      accept: 'application/vnd.docker.plugins.v1.2+json',
      'user-agent': 'Go-http-client/1.1',
    },
  });
  const req = h.seen.at(-1);
  assert.ok(req, 'the app saw the request');
  assert.equal(req['content-type'], undefined, 'inject must not add a Content-Type: Docker sends none');
  assert.equal(res.headers['connection'], 'close', `${method}: every reply closes the connection (moby#39331)`);
  return { status: res.statusCode, body: res.json() as Record<string, unknown>, headers: res.headers };
}

async function eventTypes(): Promise<string[]> {
  return (await readLog(h.dir)).events.map((e) => e.type);
}

function ownedLinks(): string[] {
  return [...h.kernel.links.keys()].filter((n) => /^ln[bvp]-/.test(n)).sort();
}

/** Docker shows `NetworkDriver.CreateEndpoint: <Err>` itself: an Err must not name the method again. */
function assertNoMethodPrefix(method: string, err: string): void {
  for (const m of [method, method.slice(method.indexOf('.') + 1)]) {
    assert.ok(!err.startsWith(`${m}:`) && !err.startsWith(`${m} `), `the Err of ${method} starts with the method name Docker already adds: ${err}`);
  }
}

/** Runs a bad call and checks that it wrote nothing and did not reach the kernel. */
async function refused(method: string, payload: string): Promise<Reply> {
  const eventsBefore = await eventTypes();
  const callsBefore = h.kernel.calls.length;
  const linksBefore = [...h.kernel.links.keys()];
  const res = await call(method, payload);
  assert.notEqual(res.status, 200, `${method} must be refused`);
  assert.equal(typeof res.body['Err'], 'string', 'Docker shows Err to the user');
  assert.deepEqual(Object.keys(res.body), ['Err']);
  assertNoMethodPrefix(method, String(res.body['Err']));
  assert.deepEqual(await eventTypes(), eventsBefore, 'a refused call writes no event');
  assert.equal(h.kernel.calls.length, callsBefore, 'a refused call does not touch the kernel');
  assert.deepEqual([...h.kernel.links.keys()], linksBefore);
  return res;
}

describe('plugin API: activation', () => {
  it('answers Plugin.Activate with an empty body', async () => {
    const res = await call('Plugin.Activate');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { Implements: ['NetworkDriver', 'IpamDriver'] });
  });

  it('answers GetCapabilities with local scope', async () => {
    const res = await call('NetworkDriver.GetCapabilities');
    assert.equal(res.status, 200);
    assert.equal(res.body['Scope'], 'local');
    assert.equal(res.body['ConnectivityScope'], 'local');
    assert.equal(res.body['GwAllocChecker'], true, 'Docker 28+ asks GwAllocCheck before reserving gateway addresses');
  });

  it('closes the connection after every reply, errors included (moby#39331)', async () => {
    assert.equal((await call('Plugin.Activate')).headers['connection'], 'close');
    assert.equal((await call('NetworkDriver.CreateNetwork', '{')).headers['connection'], 'close');
    assert.equal((await call('NetworkDriver.Nope', '{}')).headers['connection'], 'close');
  });
});

describe('plugin API: a container on a network, start to finish', () => {
  it('creates the bridge, the veth, joins, and removes everything again', async () => {
    let res = await call('NetworkDriver.CreateNetwork', createNetworkBody());
    assert.deepEqual([res.status, res.body], [200, {}]);
    const bridge = h.kernel.links.get(BRIDGE);
    assert.equal(bridge?.kind, 'bridge');
    assert.equal(bridge?.up, true);
    assert.equal(bridge?.alias, `ledgernet:network:${NET}`);
    assert.deepEqual(
      h.kernel.addrs.filter((a) => a.dev === BRIDGE).map((a) => a.cidr),
      ['10.213.0.1/24'],
    );
    assert.ok(h.kernel.chains.has('LEDGERNET-FORWARD'));

    res = await call('NetworkDriver.CreateEndpoint', createEndpointBody());
    assert.equal(res.status, 200);
    // Docker's own scheme: 02:42 + the IPv4 address; Docker left MacAddress empty, so we may fill it.
    assert.deepEqual(res.body, { Interface: { MacAddress: '02:42:0a:d5:00:02' } });
    const veth = h.kernel.links.get(VETH);
    assert.equal(veth?.kind, 'veth');
    assert.equal(veth?.master, BRIDGE);
    assert.equal(veth?.up, true);
    assert.equal(veth?.peer, PEER);
    assert.ok(h.kernel.links.has(PEER), 'the container end exists before Join names it');
    assert.equal(h.kernel.links.get(PEER)?.mac, '02:42:0a:d5:00:02', 'created with that MAC, so an answer without it ({}) gives the container the same');

    res = await call('NetworkDriver.Join', joinBody);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { InterfaceName: { SrcName: PEER, DstPrefix: 'eth' }, Gateway: '10.213.0.1' });
    assert.match(String((res.body['InterfaceName'] as Record<string, unknown>)['SrcName']), /^lnp-[0-9a-f]{11}$/);

    res = await call('NetworkDriver.ProgramExternalConnectivity', programBody);
    assert.deepEqual([res.status, res.body], [200, {}]);
    res = await call('NetworkDriver.EndpointOperInfo', epBody);
    assert.deepEqual([res.status, res.body], [200, { Value: { hostVeth: VETH } }]);

    // Teardown as `docker stop` and `docker network rm` send it (§2.8, §2.9).
    for (const [method, body] of [
      ['NetworkDriver.RevokeExternalConnectivity', epBody],
      ['NetworkDriver.Leave', epBody],
      ['NetworkDriver.DeleteEndpoint', epBody],
      ['NetworkDriver.DeleteNetwork', netBody],
    ] as const) {
      res = await call(method, body);
      assert.deepEqual([res.status, res.body], [200, {}], method);
    }
    // Deletes are answered once durable and converge right after.
    const pass = await h.reconciler.requestPass('test');
    assert.deepEqual(pass.failures, []);
    assert.deepEqual(ownedLinks(), []);
    assert.equal(h.kernel.chains.has('LEDGERNET-FORWARD'), false);
    assert.deepEqual(h.kernel.chains.get('FORWARD')?.rules, []);
    assert.deepEqual(h.kernel.addrs, []);
    assert.deepEqual(h.store.state.networks, {});
    assert.deepEqual(h.store.state.endpoints, {});

    assert.deepEqual(await eventTypes(), [
      'network.created',
      'endpoint.created',
      'endpoint.joined',
      'endpoint.external.programmed',
      'endpoint.external.revoked',
      'endpoint.left',
      'endpoint.deleted',
      'network.deleted',
    ]);
    const events = (await readLog(h.dir)).events;
    assert.deepEqual(events.map((e) => e.id), events.map((_, i) => `t:${i + 1}`));
  });

  it('answers a repeated CreateNetwork (a Docker retry) with 200 and writes nothing', async () => {
    assert.equal((await call('NetworkDriver.CreateNetwork', createNetworkBody())).status, 200);
    const before = await eventTypes();
    const res = await call('NetworkDriver.CreateNetwork', createNetworkBody());
    assert.deepEqual([res.status, res.body], [200, {}]);
    assert.deepEqual(await eventTypes(), before);
    assert.deepEqual(before, ['network.created']);
  });

  it('answers a repeated Join with the same reply and writes nothing', async () => {
    await call('NetworkDriver.CreateNetwork', createNetworkBody());
    await call('NetworkDriver.CreateEndpoint', createEndpointBody());
    const first = await call('NetworkDriver.Join', joinBody);
    const before = await eventTypes();
    const again = await call('NetworkDriver.Join', joinBody);
    // the whole reply but its Date header, which moves on when the second call falls in the next second
    const { date: _firstDate, ...firstHeaders } = first.headers;
    const { date: _againDate, ...againHeaders } = again.headers;
    assert.deepEqual({ ...again, headers: againHeaders }, { ...first, headers: firstHeaders });
    assert.deepEqual(await eventTypes(), before);
  });

  it('a ProgramExternalConnectivity whose rules the kernel refuses is answered with Err and revoked', async () => {
    await call('NetworkDriver.CreateNetwork', createNetworkBody());
    await call('NetworkDriver.CreateEndpoint', createEndpointBody());
    await call('NetworkDriver.Join', joinBody);
    const withPort = `{"NetworkID":"${NET}","EndpointID":"${EP}","Options":{"com.docker.network.endpoint.exposedports":[{"Proto":6,"Port":80}],"com.docker.network.portmap":[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":18080,"HostPortEnd":18080}]}}\n`;
    // Refused twice: by the pass planned against the model, and by its re-check against the kernel.
    h.kernel.failNext((c) => c.kind === 'chain.write' && c.rules.some((r) => r.includes('-j DNAT')), 2);
    const res = await call('NetworkDriver.ProgramExternalConnectivity', withPort);
    assert.equal(res.status, 500);
    assert.match(String(res.body['Err']), /could not publish the ports of endpoint a8bbafba2420: .*: a kernel command failed; nothing was kept/);
    assert.doesNotMatch(String(res.body['Err']), /injected/, 'the kernel\'s own words go to the log, not to Docker');
    const types = await eventTypes();
    assert.deepEqual(types.slice(-2), ['endpoint.external.programmed', 'endpoint.external.revoked']);
    assert.equal(h.store.state.endpoints[EP]?.programmed, false);
    assert.equal([...h.kernel.nat.values()].some((c) => c.rules.some((r) => r.includes('18080'))), false, 'no DNAT rule is left');
  });

  it('a HostIP that is not an IP address is refused before anything is written', async () => {
    await call('NetworkDriver.CreateNetwork', createNetworkBody());
    await call('NetworkDriver.CreateEndpoint', createEndpointBody());
    const before = await eventTypes();
    const bad = `{"NetworkID":"${NET}","EndpointID":"${EP}","Options":{"com.docker.network.portmap":[{"Proto":6,"IP":"","Port":80,"HostIP":"1.2.3.4 -j ACCEPT","HostPort":18080,"HostPortEnd":18080}]}}\n`;
    const res = await call('NetworkDriver.ProgramExternalConnectivity', bad);
    assert.equal(res.status, 400);
    assert.match(String(res.body['Err']), /HostIP must be an IP address/);
    assert.deepEqual(await eventTypes(), before);
  });

  it('answers a repeated ProgramExternalConnectivity without ports and writes nothing', async () => {
    await call('NetworkDriver.CreateNetwork', createNetworkBody());
    await call('NetworkDriver.CreateEndpoint', createEndpointBody());
    await call('NetworkDriver.Join', joinBody);
    await call('NetworkDriver.ProgramExternalConnectivity', programBody);
    const before = await eventTypes();
    assert.equal((await call('NetworkDriver.ProgramExternalConnectivity', programBody)).status, 200);
    assert.deepEqual(await eventTypes(), before);
  });
});

describe('plugin API: bad requests are refused with a clear Err and change nothing', () => {
  it('malformed JSON: 400, and the Err says the body is not JSON', async () => {
    const res = await refused('NetworkDriver.CreateNetwork', `{"NetworkID":"${NET}",`);
    assert.equal(res.status, 400);
    assert.match(String(res.body['Err']), /^the request body is not valid JSON.*nothing was changed/);
  });

  it('an empty body on CreateEndpoint (Docker retry after EOF, moby#39331): says so', async () => {
    await call('NetworkDriver.CreateNetwork', createNetworkBody());
    const res = await refused('NetworkDriver.CreateEndpoint', '');
    assert.equal(res.status, 400);
    assert.match(String(res.body['Err']), /request body is empty/);
    assert.match(String(res.body['Err']), /moby\/moby#39331/);
    assert.match(String(res.body['Err']), /run the docker command again/);
  });

  it('CreateEndpoint on a network ledgernet does not know: names the network', async () => {
    await call('NetworkDriver.CreateNetwork', createNetworkBody());
    const res = await refused('NetworkDriver.CreateEndpoint', createEndpointBody(OTHER_NET));
    assert.match(String(res.body['Err']), new RegExp(`network ${OTHER_NET.slice(0, 12)}\\b.*not known to ledgernet`));
    assert.doesNotMatch(String(res.body['Err']), new RegExp(OTHER_NET.slice(0, 13)), 'the short id, not the full one');
  });

  it('a NetworkID that is not 64 hex characters: names the field', async () => {
    for (const bad of ['404f6704c3cc', NET.toUpperCase(), `${NET}0`]) {
      const res = await refused('NetworkDriver.CreateNetwork', createNetworkBody('{}', bad));
      assert.equal(res.status, 400);
      assert.match(String(res.body['Err']), /NetworkID must be a 64-character hex id/);
      assert.ok(String(res.body['Err']).includes(JSON.stringify(bad)), 'the Err quotes what was sent');
    }
    const missing = await refused('NetworkDriver.DeleteNetwork', '{}');
    assert.match(String(missing.body['Err']), /NetworkID must be a 64-character hex id, got nothing/);
  });

  it('an unknown -o ledgernet.* option: names it and lists the known ones', async () => {
    const res = await refused('NetworkDriver.CreateNetwork', createNetworkBody('{"ledgernet.bogus":"1"}'));
    assert.match(String(res.body['Err']), /unknown option ledgernet\.bogus/);
    assert.match(String(res.body['Err']), /ledgernet\.mtu/);
    assert.deepEqual(h.store.state.networks, {});
  });

  it('a bad MTU option: names the option, the value and the accepted range', async () => {
    for (const [key, value] of [
      ['ledgernet.mtu', '12'],
      ['ledgernet.mtu', 'big'],
      ['com.docker.network.driver.mtu', '70000'],
    ] as const) {
      const res = await refused('NetworkDriver.CreateNetwork', createNetworkBody(JSON.stringify({ [key]: value })));
      assert.ok(String(res.body['Err']).includes(`option ${key}=${value} is invalid`), String(res.body['Err']));
      assert.match(String(res.body['Err']), /68 to 65535/);
    }
  });

  it('foreign -o options are kept, a valid ledgernet.mtu is applied', async () => {
    const res = await call('NetworkDriver.CreateNetwork', createNetworkBody('{"foo":"bar","ledgernet.mtu":"1400"}'));
    assert.deepEqual([res.status, res.body], [200, {}]);
    assert.equal(h.kernel.links.get(BRIDGE)?.mtu, 1400);
  });

  it('an unknown route: 404 with an Err', async () => {
    const res = await refused('NetworkDriver.Bogus', '{}');
    assert.equal(res.status, 404);
    assert.match(String(res.body['Err']), /does not implement POST \/NetworkDriver\.Bogus/);
  });
});

describe('plugin API: kernel failures', () => {
  it('a bridge the kernel refuses: 500 naming the bridge, rolled back, nothing kept', async () => {
    h.kernel.failNext((c) => c.kind === 'bridge.create');
    const res = await call('NetworkDriver.CreateNetwork', createNetworkBody());
    assert.equal(res.status, 500);
    assert.deepEqual(Object.keys(res.body), ['Err']);
    const err = String(res.body['Err']);
    assert.match(err, new RegExp(`could not set up bridge ${BRIDGE}`));
    assert.match(err, new RegExp(`bridge\\.create ${BRIDGE} \\(missing\\).*: the kernel refused the change`));
    assert.doesNotMatch(err, /Operation not permitted/, 'the kernel\'s own words go to the log and the event, not to Docker');
    assert.match(err, /nothing was kept/);

    assert.deepEqual(await eventTypes(), ['network.created', 'network.rolledback']);
    const rolledBack = (await readLog(h.dir)).events[1];
    assert.ok(rolledBack?.type === 'network.rolledback');
    assert.equal(rolledBack.data.networkId, NET);
    assert.match(rolledBack.data.reason, /RTNETLINK answers: Operation not permitted/);
    assert.deepEqual(h.store.state.networks, {});

    assert.deepEqual((await h.reconciler.requestPass('test')).failures, []);
    assert.deepEqual(ownedLinks(), []);
    assert.equal(h.kernel.chains.has('LEDGERNET-FORWARD'), false);
    assert.deepEqual(h.kernel.chains.get('FORWARD')?.rules, []);

    // Docker may try again: this time the kernel takes it.
    const again = await call('NetworkDriver.CreateNetwork', createNetworkBody());
    assert.deepEqual([again.status, again.body], [200, {}]);
    assert.equal(h.kernel.links.get(BRIDGE)?.kind, 'bridge');
  });

  it('a veth the kernel refuses: 500 naming the veth, the endpoint is rolled back', async () => {
    await call('NetworkDriver.CreateNetwork', createNetworkBody());
    // Refused twice: by the pass planned against the model, and by its re-check against the kernel.
    h.kernel.failNext((c) => c.kind === 'veth.create', 2);
    const res = await call('NetworkDriver.CreateEndpoint', createEndpointBody());
    assert.equal(res.status, 500);
    assert.match(String(res.body['Err']), new RegExp(`could not create veth ${VETH}.*nothing was kept`));
    assert.deepEqual(await eventTypes(), ['network.created', 'endpoint.created', 'endpoint.rolledback']);
    assert.deepEqual(h.store.state.endpoints, {});
    await h.reconciler.requestPass('test');
    assert.deepEqual(ownedLinks(), [BRIDGE]);
  });
});

describe('plugin API: a foreign link holds the bridge name (issue 9, finding 3)', () => {
  const CUSTOM = 'wg9';
  /** The bridge vanished (a reboot, a hand edit) and the operator's link took its name. */
  async function foreignTakesOver(): Promise<number> {
    h.kernel.removeLink(CUSTOM);
    h.kernel.addLink({ name: CUSTOM, kind: 'wireguard' });
    // What `ip monitor` tells the daemon (main.ts): the bridge was deleted by someone else.
    h.reconciler.kernelChanged();
    return h.kernel.links.get(CUSTOM)!.index;
  }
  function assertUntouched(index: number): void {
    assert.deepEqual(
      { ...h.kernel.links.get(CUSTOM), mac: null },
      { name: CUSTOM, index, kind: 'wireguard', master: null, mtu: 1500, up: true, alias: null, group: 'default', mac: null, peer: null, peerInOtherNetns: false },
    );
    assert.deepEqual(h.kernel.addrs.filter((a) => a.dev === CUSTOM), []);
  }

  it('CreateEndpoint on a network in conflict: Err naming the link, rolled back, the link untouched', async () => {
    const net = await call('NetworkDriver.CreateNetwork', createNetworkBody(`{"ledgernet.bridge":"${CUSTOM}"}`));
    assert.deepEqual([net.status, net.body], [200, {}]);
    const index = await foreignTakesOver();
    const res = await call('NetworkDriver.CreateEndpoint', createEndpointBody());
    assert.equal(res.status, 500);
    const err = String(res.body['Err']);
    assert.match(err, /link\.conflict wg9 \(conflict: wireguard link wg9 \(ifindex \d+, no ifalias\) is not ledgernet's and is left alone; network 404f6704c3cc/);
    assert.match(err, /nothing was kept/);
    assert.deepEqual(h.store.state.endpoints, {});
    assert.equal(h.kernel.links.has(VETH), false);
    assertUntouched(index);
  });

  it('Join answers the gateway of the subnet that holds the endpoint, on a network with several subnets of a family', async () => {
    const v4 = '[{"Pool":"10.213.0.0/24","Gateway":"10.213.0.1/24"},{"Pool":"10.214.0.0/24","Gateway":"10.214.0.1/24"}]';
    const v6 = '[{"Pool":"fd00:213::/64","Gateway":"fd00:213::1/64"},{"Pool":"fd00:214::/64","Gateway":"fd00:214::1/64"}]';
    const net = `{"NetworkID":"${NET}","Options":{"com.docker.network.enable_ipv6":true,"com.docker.network.generic":{}},"IPv4Data":${v4},"IPv6Data":${v6}}\n`;
    assert.equal((await call('NetworkDriver.CreateNetwork', net)).status, 200);
    const ep = `{"NetworkID":"${NET}","EndpointID":"${EP}","Interface":{"Address":"10.214.0.5/24","AddressIPv6":"fd00:214::5/64","MacAddress":""},${NO_PORTS}}\n`;
    assert.equal((await call('NetworkDriver.CreateEndpoint', ep)).status, 200);
    const res = await call('NetworkDriver.Join', joinBody);
    assert.equal(res.status, 200);
    assert.equal(res.body['Gateway'], '10.214.0.1', 'a gateway of another subnet is not on-link for the container');
    assert.equal(res.body['GatewayIPv6'], 'fd00:214::1');
  });

  it('Join on a network that went into conflict after CreateEndpoint: Err naming the link', async () => {
    await call('NetworkDriver.CreateNetwork', createNetworkBody(`{"ledgernet.bridge":"${CUSTOM}"}`));
    assert.equal((await call('NetworkDriver.CreateEndpoint', createEndpointBody())).status, 200);
    const index = await foreignTakesOver();
    await h.reconciler.requestPass('timer');
    assert.match(h.reconciler.conflictOf(NET) ?? '', /wireguard link wg9/);
    const res = await call('NetworkDriver.Join', joinBody);
    assert.equal(res.status, 500);
    assert.match(String(res.body['Err']), /^veth lnv-a8bbafba242 is not ready: link\.conflict wg9 \(conflict: wireguard link wg9/);
    assertUntouched(index);
    assert.equal(h.kernel.links.get(VETH)?.master, null, 'the veth is not enslaved to the foreign link');

    // The operator removes the link: the network converges and Join works.
    h.kernel.links.delete(CUSTOM);
    h.reconciler.kernelChanged(); // what `ip monitor` tells the daemon (main.ts)
    const again = await call('NetworkDriver.Join', joinBody);
    assert.equal(again.status, 200);
    assert.equal(h.reconciler.conflictOf(NET), null);
    assert.equal(h.kernel.links.get(CUSTOM)?.alias, `ledgernet:network:${NET}`);
    assert.equal(h.kernel.links.get(VETH)?.master, CUSTOM);
  });

  it('DeleteNetwork of a network in conflict never deletes the foreign link', async () => {
    await call('NetworkDriver.CreateNetwork', createNetworkBody(`{"ledgernet.bridge":"${CUSTOM}"}`));
    const index = await foreignTakesOver();
    assert.equal((await call('NetworkDriver.DeleteNetwork', netBody)).status, 200);
    await h.reconciler.requestPass('test');
    assertUntouched(index);
    assert.deepEqual(h.store.state.networks, {});
  });
});

// Issue 9, findings 6, 7 and 10: every bad input is refused with an Err naming it, writing nothing.
describe('plugin API: bad input is refused by name', () => {
  const netWith = (ipv4: string, opts = '{}', ipv6 = '[]'): string =>
    `{"NetworkID":"${NET}","Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":${opts}},` +
    `"IPv4Data":${ipv4},"IPv6Data":${ipv6}}\n`;
  const v4 = (pool: string, gateway = '', aux = '{}'): string =>
    `[{"AddressSpace":"LocalDefault","Pool":"${pool}"${gateway ? `,"Gateway":"${gateway}"` : ''},"AuxAddresses":${aux}}]`;
  const v6 = (pool: string, gateway: string): string => `[{"AddressSpace":"LocalDefault","Pool":"${pool}","Gateway":"${gateway}"}]`;
  const programWith = (portmap: string): string =>
    `{"NetworkID":"${NET}","EndpointID":"${EP}","Options":{"com.docker.network.portmap":${portmap}}}\n`;

  async function refusedWith(method: string, payload: string, ...msgs: RegExp[]): Promise<void> {
    const res = await refused(method, payload);
    for (const m of msgs) assert.match(String(res.body['Err']), m);
    assert.doesNotMatch(String(res.body['Err']), /internal error/);
  }

  it('Docker options: a conflicting alias, an unsupported com.docker.network.* key and a reserved bridge prefix name the key', async () => {
    await refusedWith(
      'NetworkDriver.CreateNetwork',
      createNetworkBody('{"ledgernet.icc":"true","com.docker.network.bridge.enable_icc":"false"}'),
      /options ledgernet\.icc=true and com\.docker\.network\.bridge\.enable_icc=false say different things/,
    );
    await refusedWith(
      'NetworkDriver.CreateNetwork',
      createNetworkBody('{"ledgernet.mtu":"1400","com.docker.network.driver.mtu":"1500"}'),
      /ledgernet\.mtu=1400 and com\.docker\.network\.driver\.mtu=1500 say different things/,
    );
    for (const key of ['com.docker.network.bridge.default_bridge']) {
      await refusedWith('NetworkDriver.CreateNetwork', createNetworkBody(JSON.stringify({ [key]: 'true' })), new RegExp(`option ${key.replace(/\./g, '\\.')} is not supported`));
    }
    await refusedWith(
      'NetworkDriver.CreateNetwork',
      createNetworkBody('{"com.docker.network.bridge.host_binding_ipv4":"ff02::1"}'),
      /com\.docker\.network\.bridge\.host_binding_ipv4=ff02::1 is invalid: expected an IP address/,
    );
    // IPv6 host addresses on a network without an IPv6 subnet, SNAT sources that would do nothing.
    const ignored: [string, RegExp][] = [
      ['{"com.docker.network.bridge.host_binding_ipv4":"fd00::5"}', /host_binding_ipv4=fd00::5 would be ignored: it is an IPv6 address and the network has no IPv6 subnet/],
      ['{"com.docker.network.host_ipv6":"fd00::5"}', /host_ipv6=fd00::5 would be ignored: the network has no IPv6 subnet/],
      ['{"com.docker.network.host_ipv4":"192.0.2.5","ledgernet.masquerade":"false"}', /host_ipv4=192\.0\.2\.5 would be ignored: masquerade is off/],
      ['{"com.docker.network.host_ipv4":"127.0.0.1"}', /host_ipv4=127\.0\.0\.1 is invalid: expected an IPv4 unicast address/],
      ['{"com.docker.network.host_ipv6":"192.0.2.5"}', /host_ipv6=192\.0\.2\.5 is invalid: expected an IPv6 unicast address/],
    ];
    for (const [opts, re] of ignored) await refusedWith('NetworkDriver.CreateNetwork', createNetworkBody(opts), re);
    for (const name of ['lni-x', 'lnx-1', 'lnb-1', 'lnv-1', 'lnp-1']) {
      await refusedWith('NetworkDriver.CreateNetwork', createNetworkBody(JSON.stringify({ 'ledgernet.bridge': name })), new RegExp(`ledgernet\\.bridge=${name} is invalid.*lni-, lnx-`));
    }
    await refusedWith('NetworkDriver.CreateNetwork', createNetworkBody('{"__proto__":"x"}'), /__proto__/);
    // Gateway modes (Docker 28): known values only; contradictions refused by name.
    await refusedWith(
      'NetworkDriver.CreateNetwork',
      createNetworkBody('{"com.docker.network.bridge.gateway_mode_ipv6":"nat6"}'),
      /gateway_mode_ipv6=nat6 is invalid: expected nat, nat-unprotected, routed or isolated/,
    );
    await refusedWith(
      'NetworkDriver.CreateNetwork',
      createNetworkBody(JSON.stringify({ 'com.docker.network.bridge.gateway_mode_ipv4': 'nat-unprotected', 'ledgernet.allow': 'tcp/80' })),
      /gateway_mode_ipv4=nat-unprotected lets everything in; it cannot be combined with ledgernet\.allow/,
    );
    for (const v of ['', ':', 'eth0:bad name', 'a'.repeat(16)]) {
      await refusedWith(
        'NetworkDriver.CreateNetwork',
        createNetworkBody(JSON.stringify({ 'com.docker.network.bridge.trusted_host_interfaces': v })),
        /trusted_host_interfaces=.* is invalid: expected host interface names separated by colons/,
      );
    }
    await refusedWith(
      'NetworkDriver.CreateNetwork',
      createNetworkBody('{"com.docker.network.bridge.gateway_mode_ipv4":"isolated"}'),
      /gateway_mode_ipv4=isolated can only be used for an internal network/,
    );
    await refusedWith(
      'NetworkDriver.CreateNetwork',
      `{"NetworkID":"${NET}","Options":{"com.docker.network.enable_ipv6":"yes","com.docker.network.generic":{}},"IPv4Data":[],"IPv6Data":[]}`,
      /Options\["com\.docker\.network\.enable_ipv6"\] must be true or false/,
    );
    await refusedWith(
      'NetworkDriver.CreateNetwork',
      `{"NetworkID":"${NET}","Options":{"com.docker.network.bogus":true},"IPv4Data":[],"IPv6Data":[]}`,
      /Options key com\.docker\.network\.bogus is not supported/,
    );
  });

  it('what Docker 20.10 sends is accepted: enable_ipv6, an empty generic map, internal, and the honoured aliases agreeing', async () => {
    const body =
      `{"NetworkID":"${NET}","Options":{"com.docker.network.enable_ipv4":true,"com.docker.network.enable_ipv6":false,"com.docker.network.internal":true,` +
      `"com.docker.network.generic":{"ledgernet.icc":"false","com.docker.network.bridge.enable_icc":"false","com.docker.network.bridge.enable_ip_masquerade":"true",` +
      `"com.docker.network.driver.mtu":"1400","com.docker.network.container_iface_prefix":"lan","com.docker.network.bridge.host_binding_ipv4":"127.0.0.1"}},` +
      `"IPv4Data":${v4('10.213.0.0/24', '10.213.0.1/24')},"IPv6Data":[]}`;
    const res = await call('NetworkDriver.CreateNetwork', body);
    assert.deepEqual([res.status, res.body], [200, {}]);
    assert.equal(h.kernel.links.get(BRIDGE)?.mtu, 1400);
    assert.equal((await call('NetworkDriver.CreateEndpoint', createEndpointBody())).status, 200);
    const join = await call('NetworkDriver.Join', joinBody);
    assert.deepEqual(join.body['InterfaceName'], { SrcName: PEER, DstPrefix: 'lan' }, 'container_iface_prefix is the DstPrefix');
  });

  it('host_binding_ipv4: a port published without an address binds to it; one with an address keeps its own', async () => {
    assert.equal((await call('NetworkDriver.CreateNetwork', createNetworkBody('{"com.docker.network.bridge.host_binding_ipv4":"127.0.0.1"}'))).status, 200);
    assert.equal((await call('NetworkDriver.CreateEndpoint', createEndpointBody())).status, 200);
    assert.equal((await call('NetworkDriver.Join', joinBody)).status, 200);
    const res = await call(
      'NetworkDriver.ProgramExternalConnectivity',
      programWith('[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":18080,"HostPortEnd":18080},{"Proto":17,"IP":"","Port":53,"HostIP":"0.0.0.0","HostPort":18053,"HostPortEnd":18053}]'),
    );
    assert.deepEqual([res.status, res.body], [200, {}]);
    const pm = h.store.state.endpoints[EP]?.portmap.map((p) => `${p.hostIp}:${p.hostPort}`);
    assert.deepEqual(pm, ['127.0.0.1:18080', '0.0.0.0:18053']);
    const dnat = h.kernel.nat.get('LEDGERNET-DNAT')?.rules ?? [];
    assert.ok(dnat.some((r) => r.startsWith('-d 127.0.0.1/32 -p tcp -m tcp --dport 18080 ')), dnat.join('\n'));
    assert.ok(dnat.some((r) => r.startsWith('-p udp -m udp --dport 18053 ')), dnat.join('\n'));
  });

  it('subnets: non-canonical, zoned, host-capturing, gateway or aux outside the pool, overlapping: refused by field', async () => {
    const cases: [string, RegExp][] = [
      [netWith(v4('10.77.0.0/0024', '10.77.0.1/24')), /IPv4Data\[0\]\.Pool must be an IPv4 subnet.*"10\.77\.0\.0\/0024"/],
      [netWith('[]', '{}', v6('fd00:77::%eth0/64', 'fd00:77::1/64')), /IPv6Data\[0\]\.Pool must be an IPv6 subnet/],
      [netWith(v4('010.77.0.0/24', '10.77.0.1/24')), /IPv4Data\[0\]\.Pool must be/],
      [netWith(v4('0.0.0.0/0')), /0\.0\.0\.0\/0 is refused: it is wider than \/8.*--ipam-driver null is not supported/],
      [netWith(v4('10.0.0.0/7', '10.0.0.1/7')), /10\.0\.0\.0\/7 is refused: it is wider than \/8/],
      [netWith(v4('127.0.5.0/24', '127.0.5.1/24')), /127\.0\.5\.0\/24 is refused: it overlaps loopback/],
      [netWith(v4('169.254.3.0/24', '169.254.3.1/24')), /overlaps link-local/],
      [netWith(v4('224.1.0.0/16', '224.1.0.1/16')), /overlaps multicast/],
      [netWith(v4('0.1.0.0/16', '0.1.0.1/16')), /overlaps "this network"/],
      [netWith('[]', '{}', v6('::/0', '::1/0')), /::\/0 is refused: it is wider than \/16/],
      [netWith('[]', '{}', v6('fe80::/64', 'fe80::1/64')), /overlaps link-local \(fe80::\/10\)/],
      [netWith('[]', '{}', v6('::ffff:0:0/96', '::ffff:0:1/96')), /overlaps the unspecified, loopback and IPv4-mapped range/],
      [netWith(v4('10.77.0.0/24', '10.78.0.1/24')), /IPv4Data\[0\]\.Gateway 10\.78\.0\.1\/24 is outside the pool 10\.77\.0\.0\/24/],
      [netWith(v4('10.77.0.0/24', '10.77.0.0/24')), /Gateway 10\.77\.0\.0\/24 is the network or broadcast address of the pool/],
      [netWith(v4('10.77.0.0/24', '10.77.0.255/24')), /Gateway 10\.77\.0\.255\/24 is the network or broadcast address/],
      [netWith(v4('10.77.0.0/24', '10.77.0.1/16')), /Gateway 10\.77\.0\.1\/16 must have the prefix length of the pool/],
      [netWith(v4('10.77.0.0/24', '10.77.0.1/24', '{"r":"10.77.1.5/24"}')), /AuxAddresses\.r 10\.77\.1\.5\/24 is outside the pool/],
      [
        netWith('[{"Pool":"10.77.0.0/24","Gateway":"10.77.0.1/24"},{"Pool":"10.77.0.128/25","Gateway":"10.77.0.129/25"}]'),
        /IPv4Data\[0\]\.Pool 10\.77\.0\.0\/24 and IPv4Data\[1\]\.Pool 10\.77\.0\.128\/25 overlap/,
      ],
    ];
    for (const [body, msg] of cases) await refusedWith('NetworkDriver.CreateNetwork', body, msg);
    // Values are canonicalised before they are recorded.
    const ok = await call('NetworkDriver.CreateNetwork', netWith(v4('10.77.0.9/24', '10.77.0.1/24'), '{}'));
    assert.equal(ok.status, 200);
    assert.deepEqual(h.store.state.networks[NET]?.ipv4Data, [{ pool: '10.77.0.0/24', gateway: '10.77.0.1/24', aux: {}, addressSpace: 'LocalDefault' }]);
    // And the allocator keeps working.
    const pool = await call('IpamDriver.RequestPool', '{"AddressSpace":"ledgernet-local","Pool":"","SubPool":"","Options":null,"V6":false}');
    assert.equal(pool.status, 200);
  });

  it('endpoints: an address outside the subnet and an id sharing the first 11 hex characters of another are refused', async () => {
    assert.equal((await call('NetworkDriver.CreateNetwork', createNetworkBody())).status, 200);
    await refusedWith(
      'NetworkDriver.CreateEndpoint',
      createEndpointBody().replace('10.213.0.2/24', '10.99.0.2/24'),
      /Interface\.Address 10\.99\.0\.2\/24 is not a host address in the subnets of network 404f6704c3cc/,
    );
    await refusedWith(
      'NetworkDriver.CreateEndpoint',
      createEndpointBody().replace('10.213.0.2/24', '10.213.0.255/24'),
      /Interface\.Address 10\.213\.0\.255\/24 is not a host address/,
    );
    assert.equal((await call('NetworkDriver.CreateEndpoint', createEndpointBody())).status, 200);
    const twin = `${EP.slice(0, 11)}${'0'.repeat(53)}`;
    await refusedWith(
      'NetworkDriver.CreateEndpoint',
      createEndpointBody().replace(EP, twin).replace('10.213.0.2/24', '10.213.0.3/24'),
      /would get the interface names lnv-a8bbafba242\/lnp-a8bbafba242, which endpoint a8bbafba2420 already has/,
    );
  });

  it('Leave, DeleteEndpoint and Revoke with the wrong NetworkID are refused; with a missing endpoint they stay idempotent', async () => {
    assert.equal((await call('NetworkDriver.CreateNetwork', createNetworkBody())).status, 200);
    assert.equal((await call('NetworkDriver.CreateEndpoint', createEndpointBody())).status, 200);
    assert.equal((await call('NetworkDriver.Join', joinBody)).status, 200);
    const wrong = `{"NetworkID":"${OTHER_NET}","EndpointID":"${EP}"}`;
    for (const m of ['NetworkDriver.RevokeExternalConnectivity', 'NetworkDriver.Leave', 'NetworkDriver.DeleteEndpoint']) {
      await refusedWith(m, wrong, /endpoint a8bbafba2420 belongs to network 404f6704c3cc, not to network cf347594c297/);
    }
    assert.equal(h.store.state.endpoints[EP]?.joined, true, 'still joined');
    const missing = `{"NetworkID":"${NET}","EndpointID":"${'f'.repeat(64)}"}`;
    for (const m of ['NetworkDriver.RevokeExternalConnectivity', 'NetworkDriver.Leave', 'NetworkDriver.DeleteEndpoint']) {
      const res = await call(m, missing);
      assert.deepEqual([res.status, res.body], [200, {}], m);
    }
  });

  it('com.docker.network.endpoint.ifname (Docker 28+): a name the kernel refuses is refused by name, nothing written; a good one is Join\'s DstName', async () => {
    assert.equal((await call('NetworkDriver.CreateNetwork', createNetworkBody())).status, 200);
    const withIfname = (v: string) =>
      `{"NetworkID":"${NET}","EndpointID":"${EP}","Interface":{"Address":"10.213.0.2/24","AddressIPv6":"","MacAddress":""},"Options":{"com.docker.network.endpoint.ifname":${v}}}\n`;
    const seq = h.store.state.seq;
    for (const bad of ['"a/b"', '"sixteen-chars-xx"', '"has space"', '".."', '7']) {
      await refusedWith('NetworkDriver.CreateEndpoint', withIfname(bad), /com\.docker\.network\.endpoint\.ifname .* is not an interface name: 1 to 15 bytes/);
    }
    assert.equal(h.store.state.seq, seq, 'nothing appended');
    assert.equal((await call('NetworkDriver.CreateEndpoint', withIfname('"backend0"'))).status, 200);
    const join = await call('NetworkDriver.Join', joinBody);
    assert.deepEqual(join.body['InterfaceName'], { SrcName: PEER, DstPrefix: 'eth', DstName: 'backend0' });
  });

  it('ledgernet.mac (--driver-opt, for network connect): answered as the endpoint\'s MAC; a bad one, one another endpoint has, one Docker contradicts and an unknown ledgernet.* key are refused by name, nothing written', async () => {
    assert.equal((await call('NetworkDriver.CreateNetwork', createNetworkBody())).status, 200);
    const withOptions = (ep: string, address: string, mac: string, options: string) =>
      `{"NetworkID":"${NET}","EndpointID":"${ep}","Interface":{"Address":"${address}","AddressIPv6":"","MacAddress":"${mac}"},"Options":${options}}\n`;
    const seq = h.store.state.seq;
    for (const bad of ['"03:00:00:00:00:01"', '"00:00:00:00:00:00"', '"02:00:00:00:00"', '"zz:00:00:00:00:01"', '2']) {
      await refusedWith('NetworkDriver.CreateEndpoint', withOptions(EP, '10.213.0.2/24', '', `{"ledgernet.mac":${bad}}`), /ledgernet\.mac .* is not a unicast MAC address such as 02:00:00:00:00:01/);
    }
    await refusedWith(
      'NetworkDriver.CreateEndpoint',
      withOptions(EP, '10.213.0.2/24', '02:42:0a:d5:00:02', '{"ledgernet.mac":"02:00:00:00:00:aa"}'),
      /ledgernet\.mac=02:00:00:00:00:aa and the MAC address Docker gives \(02:42:0a:d5:00:02, --mac-address\) say different things/,
    );
    await refusedWith('NetworkDriver.CreateEndpoint', withOptions(EP, '10.213.0.2/24', '', '{"ledgernet.mtu":"1400"}'), /endpoint option ledgernet\.mtu is not one ledgernet takes \(it would be ignored\)/);
    assert.equal(h.store.state.seq, seq, 'nothing appended');
    const ok = await call('NetworkDriver.CreateEndpoint', withOptions(EP, '10.213.0.2/24', '', '{"ledgernet.mac":"02:00:00:00:00:AA","com.docker.network.endpoint.exposedports":[]}'));
    assert.deepEqual([ok.status, ok.body], [200, { Interface: { MacAddress: '02:00:00:00:00:aa' } }]);
    assert.equal(h.store.state.endpoints[EP]?.mac, '02:00:00:00:00:aa');
    // The same MAC given by Docker itself is no contradiction; another endpoint of the network asking for it is refused.
    const other = 'b'.repeat(64);
    await refusedWith(
      'NetworkDriver.CreateEndpoint',
      withOptions(other, '10.213.0.3/24', '02:00:00:00:00:aa', '{"ledgernet.mac":"02:00:00:00:00:aa"}'),
      /ledgernet\.mac=02:00:00:00:00:aa is already the MAC address of endpoint a8bbafba2420 on network 404f6704c3cc; give another/,
    );
    assert.equal(h.store.state.endpoints[other], undefined);
  });

  it('the MAC derived from the address (as the bridge driver does) is not one another endpoint was given: then a random one', async () => {
    assert.equal((await call('NetworkDriver.CreateNetwork', createNetworkBody())).status, 200);
    const body = (ep: string, address: string, options: string) =>
      `{"NetworkID":"${NET}","EndpointID":"${ep}","Interface":{"Address":"${address}","AddressIPv6":"","MacAddress":""},"Options":${options}}\n`;
    // A's MAC is the one 10.213.0.5 would derive.
    const a = await call('NetworkDriver.CreateEndpoint', body(EP, '10.213.0.2/24', '{"ledgernet.mac":"02:42:0a:d5:00:05"}'));
    assert.deepEqual(a.body, { Interface: { MacAddress: '02:42:0a:d5:00:05' } });
    const b = await call('NetworkDriver.CreateEndpoint', body('b'.repeat(64), '10.213.0.5/24', '{}'));
    assert.equal(b.status, 200);
    const mac = String((b.body['Interface'] as { MacAddress?: string } | undefined)?.MacAddress);
    assert.notEqual(mac, '02:42:0a:d5:00:05');
    assert.match(mac, /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/, 'locally administered, unicast');
    assert.equal(h.store.state.endpoints['b'.repeat(64)]?.mac, mac);
    // Without a clash it is the derived one.
    const c = await call('NetworkDriver.CreateEndpoint', body('c'.repeat(64), '10.213.0.6/24', '{}'));
    assert.deepEqual(c.body, { Interface: { MacAddress: '02:42:0a:d5:00:06' } });
  });

  it('ledgernet.mac: two endpoints asking for one MAC at the same instant: exactly one gets it, the other is refused by name', async () => {
    assert.equal((await call('NetworkDriver.CreateNetwork', createNetworkBody())).status, 200);
    const asking = (ep: string, address: string) =>
      `{"NetworkID":"${NET}","EndpointID":"${ep}","Interface":{"Address":"${address}","AddressIPv6":"","MacAddress":""},"Options":{"ledgernet.mac":"02:00:00:00:00:bb"}}\n`;
    const eps = ['c'.repeat(64), 'd'.repeat(64), 'e'.repeat(64)];
    const answers = await Promise.all(eps.map((ep, i) => call('NetworkDriver.CreateEndpoint', asking(ep, `10.213.0.${10 + i}/24`))));
    assert.deepEqual(answers.map((a) => a.status).sort(), [200, 500, 500], JSON.stringify(answers.map((a) => a.body)));
    for (const a of answers.filter((x) => x.status !== 200)) assert.match(String(a.body['Err']), /ledgernet\.mac=02:00:00:00:00:bb is already the MAC address of endpoint/);
    assert.equal(Object.values(h.store.state.endpoints).filter((ep) => ep.mac === '02:00:00:00:00:bb').length, 1);
  });

  it('a MAC asked for with ledgernet.mac and the same MAC derived for another endpoint, at the same instant: the derived one gives way, the recorded MACs differ', async () => {
    assert.equal((await call('NetworkDriver.CreateNetwork', createNetworkBody())).status, 200);
    const body = (ep: string, address: string, options: string) =>
      `{"NetworkID":"${NET}","EndpointID":"${ep}","Interface":{"Address":"${address}","AddressIPv6":"","MacAddress":""},"Options":${options}}\n`;
    const [a, b] = ['a'.repeat(64), 'b'.repeat(64)];
    // A asks for the MAC 10.213.0.3 derives; B gets 10.213.0.3. A is decided before B, not yet durable.
    const answers = await Promise.all([
      call('NetworkDriver.CreateEndpoint', body(a, '10.213.0.2/24', '{"ledgernet.mac":"02:42:0a:d5:00:03"}')),
      call('NetworkDriver.CreateEndpoint', body(b, '10.213.0.3/24', '{}')),
    ]);
    assert.deepEqual(answers.map((r) => r.status), [200, 200], JSON.stringify(answers.map((r) => r.body)));
    const recorded = [h.store.state.endpoints[a]?.mac, h.store.state.endpoints[b]?.mac];
    assert.equal(recorded[0], '02:42:0a:d5:00:03');
    assert.notEqual(recorded[1], recorded[0], 'two endpoints of one bridge with one MAC');
    assert.match(String(recorded[1]), /^[0-9a-f][26ae](:[0-9a-f]{2}){5}$/, 'the random fallback: locally administered, unicast');
    assert.deepEqual(answers.map((r) => (r.body['Interface'] as { MacAddress?: string } | undefined)?.MacAddress), recorded, 'each answer is the MAC recorded');
  });

  it('published ports: another protocol, sctp on HostIP ::1 (the proxy speaks tcp and udp), IPv6 on an IPv4-only network, a host port given twice on overlapping addresses are refused by name; on two addresses it is two bindings', async () => {
    assert.equal((await call('NetworkDriver.CreateNetwork', createNetworkBody())).status, 200);
    assert.equal((await call('NetworkDriver.CreateEndpoint', createEndpointBody())).status, 200);
    assert.equal((await call('NetworkDriver.Join', joinBody)).status, 200);
    await refusedWith(
      'NetworkDriver.ProgramExternalConnectivity',
      programWith('[{"Proto":1,"Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}]'),
      /portmap\[0\]\.Proto 1 is not a protocol ledgernet publishes: tcp \(6\), udp \(17\) or sctp \(132\)/,
    );
    await refusedWith(
      'NetworkDriver.ProgramExternalConnectivity',
      programWith('[{"Proto":132,"Port":80,"HostIP":"::1","HostPort":8080,"HostPortEnd":8080}]'),
      /port sctp\/80 cannot be published on \[::1\]:8080: the IPv6 loopback is served by ledgernet's userland proxy, which forwards tcp and udp only/,
    );
    await refusedWith(
      'NetworkDriver.ProgramExternalConnectivity',
      programWith('[{"Proto":6,"Port":80,"HostIP":"::","HostPort":8080,"HostPortEnd":8080}]'),
      /port tcp\/80 is published on the IPv6 address ::, but the container has no IPv6 address on this network/,
    );
    // No address is both families, so with :: the same host port is given twice in IPv6.
    await refusedWith(
      'NetworkDriver.ProgramExternalConnectivity',
      programWith('[{"Proto":6,"Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080},{"Proto":6,"Port":81,"HostIP":"::","HostPort":8080,"HostPortEnd":8080}]'),
      /host port tcp\/8080 is given twice \(portmap\[0\] and portmap\[1\]\)/,
    );
    await refusedWith(
      'NetworkDriver.ProgramExternalConnectivity',
      programWith('[{"Proto":6,"Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080},{"Proto":6,"Port":81,"HostIP":"127.0.0.1","HostPort":8080,"HostPortEnd":8080}]'),
      /host port tcp\/8080 is given twice \(portmap\[0\] and portmap\[1\]\)/,
    );
    await refusedWith(
      'NetworkDriver.ProgramExternalConnectivity',
      programWith('[{"Proto":6,"Port":80,"HostIP":"127.0.0.1","HostPort":8080,"HostPortEnd":8080},{"Proto":6,"Port":81,"HostIP":"0.0.0.0","HostPort":8080,"HostPortEnd":8080}]'),
      /host port tcp\/8080 is given twice \(portmap\[0\] and portmap\[1\]\)/,
    );
    // Two host addresses: two bindings, as Docker's bridge driver has them.
    const two = await call('NetworkDriver.ProgramExternalConnectivity', programWith('[{"Proto":6,"Port":80,"HostIP":"127.0.0.1","HostPort":8080,"HostPortEnd":8080},{"Proto":6,"Port":81,"HostIP":"127.0.0.2","HostPort":8080,"HostPortEnd":8080}]'));
    assert.equal(two.status, 200, JSON.stringify(two.body));
  });

  it('PoolIDs __proto__ and constructor are no pools: an Err, nothing written, no crash', async () => {
    for (const id of ['__proto__', 'constructor', 'toString', 'ledgernet/__proto__']) {
      await refusedWith('IpamDriver.RequestAddress', JSON.stringify({ PoolID: id, Address: '', Options: null }), /is not a pool of ledgernet IPAM/);
      await refusedWith('IpamDriver.ReleasePool', JSON.stringify({ PoolID: id }), /is not a pool of ledgernet IPAM/);
      await refusedWith('IpamDriver.ReleaseAddress', JSON.stringify({ PoolID: id, Address: '10.0.0.1' }), /is not a pool of ledgernet IPAM/);
    }
    for (const [pool, msg] of [
      ['10.0.0.0/7', /--subnet 10\.0\.0\.0\/7 is refused: it is wider than \/8/],
      ['127.1.0.0/24', /--subnet 127\.1\.0\.0\/24 is refused: it overlaps loopback/],
      ['10.77.0.0/0024', /--subnet 10\.77\.0\.0\/0024 is not an IPv4 CIDR/],
    ] as const) {
      await refusedWith('IpamDriver.RequestPool', JSON.stringify({ AddressSpace: 'ledgernet-local', Pool: pool, SubPool: '', Options: null, V6: false }), msg);
    }
    await refusedWith('IpamDriver.RequestPool', JSON.stringify({ Pool: '', V6: 'yes' }), /V6 must be true or false/);
    const ok = await call('IpamDriver.ReleasePool', JSON.stringify({ PoolID: 'ledgernet/10.9.0.0/24' }));
    assert.deepEqual([ok.status, ok.body], [200, {}], 'an unknown pool of ours: idempotent');
  });

  it('a body over the size limit gets an Err naming its size and the limit', async () => {
    const payload = JSON.stringify({ NetworkID: NET, pad: 'x'.repeat(2 * 1024 * 1024) });
    const res = await refused('NetworkDriver.CreateNetwork', payload);
    assert.equal(res.body['Err'], `the request body is ${Buffer.byteLength(payload)} bytes, over the limit of 1048576 bytes; nothing was changed`);
  });
});

describe('plugin API: no Err starts with the method name (Docker adds "NetworkDriver.X: " itself)', () => {
  it('every call that takes a body, refused for each kind of bad body, over HTTP and the framed link', async () => {
    await call('NetworkDriver.CreateNetwork', createNetworkBody());
    await call('NetworkDriver.CreateEndpoint', createEndpointBody());
    const plugin = createPlugin({ store: h.store, reconciler: h.reconciler, log: pino({ level: 'silent' }), applyTimeoutMs: 5_000 });
    const methods = [
      'IpamDriver.RequestPool', 'IpamDriver.ReleasePool', 'IpamDriver.RequestAddress', 'IpamDriver.ReleaseAddress',
      'NetworkDriver.GwAllocCheck', 'NetworkDriver.CreateNetwork', 'NetworkDriver.DeleteNetwork', 'NetworkDriver.CreateEndpoint',
      'NetworkDriver.EndpointOperInfo', 'NetworkDriver.DeleteEndpoint', 'NetworkDriver.Join', 'NetworkDriver.Leave',
      'NetworkDriver.ProgramExternalConnectivity', 'NetworkDriver.RevokeExternalConnectivity', 'NetworkDriver.AllocateNetwork',
    ];
    const bodies = [
      '{"NetworkID":', // not JSON
      '', // empty (Docker's retry, moby#39331)
      '[]', // not an object
      JSON.stringify({ NetworkID: 'x', EndpointID: 'y', PoolID: 7, Pool: 'nope', Address: 'nope', Options: 3 }), // wrong fields
      JSON.stringify({ NetworkID: OTHER_NET, EndpointID: EP, SandboxKey: '/var/run/docker/netns/x', Options: {} }), // unknown network
      JSON.stringify({ NetworkID: NET, pad: 'x'.repeat(2 * 1024 * 1024) }), // over the limit
    ];
    let refusals = 0;
    for (const method of methods) {
      for (const body of bodies) {
        const viaHttp = await call(method, body);
        const viaCall = await plugin.call(method, body);
        for (const [status, err] of [[viaHttp.status, viaHttp.body['Err']], [viaCall.status, (JSON.parse(viaCall.body) as { Err?: unknown }).Err]] as const) {
          if (status === 200) continue;
          refusals++;
          assert.equal(typeof err, 'string', `${method}: a refusal carries an Err`);
          assertNoMethodPrefix(method, String(err));
        }
      }
    }
    assert.ok(refusals >= methods.length * 4, `most of these calls are refused (${refusals})`);
  });
});

describe('createPlugin().call (the supervisor\'s framed link): the answers of the HTTP app', () => {
  it('same status and body for success, bad input, an unknown method and a body over the limit', async () => {
    const plugin = createPlugin({ store: h.store, reconciler: h.reconciler, log: pino({ level: 'silent' }), applyTimeoutMs: 5_000 });
    const app = pluginHttp(plugin);
    await app.ready();
    try {
      const cases: [string, string][] = [
        ['NetworkDriver.CreateNetwork', createNetworkBody()],
        ['NetworkDriver.CreateNetwork', createNetworkBody()], // again: idempotent
        ['NetworkDriver.CreateEndpoint', '{"NetworkID":'],
        ['NetworkDriver.Bogus', '{}'],
        ['IpamDriver.RequestPool', JSON.stringify({ Pool: '', V6: 'yes' })],
        ['NetworkDriver.CreateNetwork', JSON.stringify({ NetworkID: NET, pad: 'x'.repeat(2 * 1024 * 1024) })],
        ['NetworkDriver.DeleteNetwork', netBody],
      ];
      for (const [method, body] of cases) {
        const viaCall = await plugin.call(method, body);
        const viaHttp = await app.inject({ method: 'POST', url: `/${method}`, payload: body, headers: { 'content-length': String(Buffer.byteLength(body)) } });
        assert.deepEqual([viaCall.status, JSON.parse(viaCall.body)], [viaHttp.statusCode, viaHttp.json()], method);
      }
    } finally {
      await app.close();
    }
  });
});
