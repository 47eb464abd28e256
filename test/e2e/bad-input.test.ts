// Bad input over the real socket (issue 9): a real daemon (`node dist/cli.js serve`, temp state
// dir, temp socket: no dockerd involved) holding a network, a joined endpoint and an IPAM pool gets
// at least 10,000 generated malformed, oversized, wrongly typed and out-of-range requests to every
// endpoint of the plugin protocol. Then: the daemon is alive and answers Plugin.Activate, every
// reply was a clear Err (JSON {"Err": non-empty}, no "internal error", no stack), the event log
// has not grown (`ledgernet events`), and no ledgernet link or iptables rule changed.
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { parseAddrLen, parseIp } from '../../src/events/domain/cidr.ts';
import { ledgernetCli, pluginCall, startDaemon, type DaemonHandle } from '../helpers/daemon.ts';
import { waitFor } from '../helpers/docker.ts';
import { rulesSave } from '../helpers/rules.ts';

const RUNS = Number(process.env['LEDGERNET_FUZZ_RUNS'] ?? 10_000);
const SEED = Number(process.env['LEDGERNET_FUZZ_SEED'] ?? 20269);
const CONCURRENCY = 16;

const NET = 'f0221f0221f0221f0221f0221f0221f0221f0221f0221f0221f0221f0221f022';
const EP = 'e0221e0221e0221e0221e0221e0221e0221e0221e0221e0221e0221e0221e022';
const OTHER = 'd0221d0221d0221d0221d0221d0221d0221d0221d0221d0221d0221d0221d022';
const SUBNET = '10.231.250.0/24';
const AUTO_RANGE = '10.231.248.0/22';

/** Calls without parameters: an empty body or a JSON object, anything else is an Err. */
const PARAMETERLESS = [
  'Plugin.Activate',
  'IpamDriver.GetCapabilities',
  'IpamDriver.GetDefaultAddressSpaces',
  'NetworkDriver.GetCapabilities',
  'NetworkDriver.DiscoverNew',
  'NetworkDriver.DiscoverDelete',
  'NetworkDriver.FreeNetwork',
];

let daemon: DaemonHandle;
let dir: string;
let poolId = '';

const createNetwork = {
  NetworkID: NET,
  Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': {} },
  IPv4Data: [{ AddressSpace: 'LocalDefault', Pool: SUBNET, Gateway: '10.231.250.1/24' }],
  IPv6Data: [],
};
const iface = { Address: '10.231.250.2/24', AddressIPv6: '', MacAddress: '' };
const ports = { 'com.docker.network.endpoint.exposedports': [], 'com.docker.network.portmap': [] };

async function ok(method: string, body: object): Promise<unknown> {
  const r = await pluginCall(method, body, daemon.socket);
  assert.equal(r.status, 200, `${method}: ${r.text}`);
  return r.json;
}

/** What the kernel holds of ledgernet: its links (name, index, alias) and its iptables lines. */
async function kernelView(): Promise<string> {
  const r = await execa('ip', ['-j', '-d', 'link', 'show'], { stdin: 'ignore' });
  const links = (JSON.parse(r.stdout || '[]') as { ifname: string; ifindex: number; ifalias?: string }[])
    .filter((l) => /^ln[a-z]-/.test(l.ifname) || (l.ifalias ?? '').startsWith('ledgernet:'))
    .map((l) => `${l.ifindex} ${l.ifname} ${l.ifalias ?? ''}`);
  const rules: string[] = [];
  for (const cmd of ['iptables-save', 'ip6tables-save'] as const) {
    const text = await rulesSave(cmd).catch(() => '');
    rules.push(...text.split('\n').filter((l) => l.includes('LEDGERNET') || l.includes('ledgernet:')));
  }
  return [...links.sort(), ...rules].join('\n');
}

/** The daemon's log as `ledgernet events --json` prints it (not empty: the setup's calls are in it). */
async function events(): Promise<string> {
  const r = await ledgernetCli(['events', '--json', '--state-dir', daemon.stateDir]);
  assert.equal(r.exitCode, 0, r.stderr);
  assert.notEqual(r.stdout.trim(), '', 'the log holds the setup\'s events');
  return r.stdout;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ln-badinput-'));
  daemon = await startDaemon({
    socket: join(dir, 'plugin.sock'),
    stateDir: join(dir, 'state'),
    // No background repair: only requests may change anything, so any change is theirs.
    extraArgs: ['--reconcile-interval', '0', '--default-pool', AUTO_RANGE, '--default-pool-size', '24'],
  });
  await ok('NetworkDriver.CreateNetwork', createNetwork);
  await ok('NetworkDriver.CreateEndpoint', { NetworkID: NET, EndpointID: EP, Interface: iface, Options: ports });
  await ok('NetworkDriver.Join', { NetworkID: NET, EndpointID: EP, SandboxKey: '/var/run/docker/netns/0123456789ab', Options: ports });
  const pool = (await ok('IpamDriver.RequestPool', { AddressSpace: 'ledgernet-local', Pool: '', SubPool: '', Options: null, V6: false })) as { PoolID: string };
  poolId = pool.PoolID;
  await ok('IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } });
});

after(async () => {
  // Undo the setup through the protocol, then make sure the kernel holds nothing of it.
  if (daemon) {
    for (const [m, b] of [
      ['NetworkDriver.Leave', { NetworkID: NET, EndpointID: EP }],
      ['NetworkDriver.DeleteEndpoint', { NetworkID: NET, EndpointID: EP }],
      ['NetworkDriver.DeleteNetwork', { NetworkID: NET }],
      ['IpamDriver.ReleasePool', { PoolID: poolId }],
    ] as const) {
      await pluginCall(m, b, daemon.socket).catch(() => undefined);
    }
    await waitFor(async () => (await kernelView()) === '', { timeoutMs: 15_000, what: 'the test network to be gone from the kernel' }).catch(
      async (e: unknown) => {
        // Leave nothing behind even if the daemon did not converge.
        for (const l of ['lnb-f0221f0221f', 'lnv-e0221e0221e', 'lnp-e0221e0221e']) await execa('ip', ['link', 'del', l], { reject: false });
        throw e;
      },
    );
    await daemon.stop();
  }
  await rm(dir, { recursive: true, force: true });
});

// ---- generators: every request below is wrong in at least one place -------------------------

type Req = { method: string; body: string; why: string };

const notHexId = fc.oneof(
  fc.string({ maxLength: 80 }).filter((s) => !/^[0-9a-f]{64}$/.test(s)),
  fc.constantFrom(NET.toUpperCase(), NET.slice(1), `${NET}0`, ` ${NET}`, '__proto__', 'constructor'),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 2 }),
  fc.constant('x'.repeat(200_000)),
);
const wrongType = fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.string({ maxLength: 20 }), fc.array(fc.integer(), { maxLength: 3 }));
const badCidr = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.constantFrom(
    '10.77.0.0/0024', 'fd00:77::%eth0/64', '010.1.2.0/24', '10.1.2.0/33', '10.1.2.0', '10.1.2.0/24/1', '0.0.0.0/0', '127.0.0.0/8',
    '169.254.1.0/24', '224.0.0.0/24', '::/0', 'fe80::/64', 'ff02::/16', '10.0.0.0/7', '256.1.1.1/24', '1.2.3.4/-1', '1.2.3.4/ 24',
    '10.231.250.0/24', '10.231.250.0/25',
  ),
  wrongType,
);
const badPort = fc.oneof(fc.integer({ min: -100_000, max: -1 }), fc.integer({ min: 65_536, max: 10_000_000 }), fc.double({ noInteger: true }), fc.string({ maxLength: 6 }), fc.constant(null));

/** Values each option refuses (the key named in the Err). */
const BAD_OPTION_VALUES: Readonly<Record<string, readonly string[]>> = {
  'ledgernet.icc': ['maybe', 'yes', '2', '', 'TRUE'],
  'ledgernet.masquerade': ['no', '', '-1'],
  'ledgernet.allow': ['tcp/0', 'sctp/5', 'tcp/90-80', 'tcp/', '', 'icmp,', 'udp/65536'],
  'ledgernet.egress_rate': ['fast', '1kbit', '', '-1', '1e3'],
  'ledgernet.ingress_rate': ['1000000000000', 'x'],
  'ledgernet.egress_deny': ['', 'lan', '10.0.0.0/33', '10.1.2.3/8', '10.0.0.0/8,', '203.0.113.0/24:tcp/0', '192.0.2.1:icmp/8', '10.0.0.0/8:sctp/5'],
  'ledgernet.egress_allow': ['', '::/0:tcp/99999', '0.0.0.0/0:udp/9-1', 'fd00::%eth0/8', '203.0.113.0/24:tcp/'],
  'ledgernet.mtu': ['', '1500.5', ' 1500'],
  'ledgernet.bridge': ['lni-x', 'lnx-y', 'lnb-z', 'lnv-a', 'lnp-b', '', 'a'.repeat(16), 'bad name', 'eth0/1'],
  'ledgernet.nope': ['1'],
  'com.docker.network.bridge.default_bridge': ['true'],
  'com.docker.network.bridge.inhibit_ipv4': ['', 'yes', 'TRUE ', '2'],
  'com.docker.network.bridge.host_binding_ipv4': ['x', '224.0.0.1', '', '010.0.0.1', 'ff02::1'],
  'com.docker.network.host_ipv4': ['', 'x', '0.0.0.0', '127.0.0.1', '224.0.0.1', 'fd00::1'],
  'com.docker.network.host_ipv6': ['', '::', '::1', 'ff02::1', '192.0.2.1'],
  'com.docker.network.container_iface_prefix': ['', 'a b', 'x'.repeat(13)],
  'com.docker.network.bridge.gateway_mode_ipv4': ['', 'NAT', 'nat6', 'isolated'],
  'com.docker.network.bridge.gateway_mode_ipv6': ['bridge', 'isolated'],
  'com.docker.network.bridge.trusted_host_interfaces': ['', ':', 'eth0:bad name', 'a'.repeat(16)],
  ['__proto__']: ['x'],
};

/** Strings that are no IP address and no CIDR, and values that are no string. */
const unparsable = fc.oneof(
  fc.string({ maxLength: 30 }).filter((s) => s !== '' && parseIp(s) === null && parseAddrLen(s) === null),
  fc.constantFrom('10.77.0.1/0024', 'fd00::1%eth0', '010.0.0.1', '1.2.3', '::g', 'x'.repeat(2000)),
  wrongType.filter((v) => typeof v !== 'string'),
);

/** Addresses of the pool's network that cannot be handed out: outside, network, broadcast, taken (gateway). */
function outsideOrTaken(poolId: string): string[] {
  const p = parseAddrLen(poolId.replace(/^ledgernet\//, ''));
  assert.ok(p && p.family === 4 && p.len === 24, poolId);
  const base = poolId.replace(/^ledgernet\//, '').replace(/\.0\/24$/, '');
  return [`${base}.0`, `${base}.255`, `${base}.1`, '10.231.250.5', '192.0.2.1', 'fd00::1', '10.231.250.0/24'];
}

const withField = (base: Record<string, unknown>, field: string, v: unknown): Record<string, unknown> => {
  const b = { ...base };
  if (v === undefined) delete b[field];
  else b[field] = v;
  return b;
};
const req = (method: string, why: string) => (body: unknown): Req => ({ method, body: typeof body === 'string' ? body : JSON.stringify(body), why });

const garbageBody = fc.oneof(
  fc.string({ maxLength: 200 }).filter((s) => s.trim() !== '' && !s.trim().startsWith('{')),
  fc.constantFrom('{', '{"NetworkID":', 'null', '[]', '[1,2]', '42', '"x"', 'true', '{"a":1}}', '\u0000', '{"NetworkID":"'),
  fc.json().filter((j) => !j.startsWith('{')),
  fc.constant('['.repeat(100_000)),
);

const NEEDS_BODY = [
  'NetworkDriver.CreateNetwork', 'NetworkDriver.DeleteNetwork', 'NetworkDriver.CreateEndpoint', 'NetworkDriver.EndpointOperInfo',
  'NetworkDriver.DeleteEndpoint', 'NetworkDriver.Join', 'NetworkDriver.Leave', 'NetworkDriver.ProgramExternalConnectivity',
  'NetworkDriver.RevokeExternalConnectivity', 'IpamDriver.RequestPool', 'IpamDriver.ReleasePool', 'IpamDriver.RequestAddress',
  'IpamDriver.ReleaseAddress',
];

function generators(pool: string): fc.Arbitrary<Req>[] {
  const netBody = (over: Record<string, unknown>) => ({ ...createNetwork, NetworkID: OTHER, ...over });
  const ipv4 = (d: Record<string, unknown>) => [{ AddressSpace: 'LocalDefault', Pool: '10.231.251.0/24', Gateway: '10.231.251.1/24', ...d }];
  const epBody = { NetworkID: NET, EndpointID: EP };
  const program = (portmap: unknown) => ({ ...epBody, Options: { 'com.docker.network.portmap': portmap } });
  const binding = { Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 18_080, HostPortEnd: 18_080 };
  return [
    // Bodies that are not a JSON object, or none at all.
    fc.tuple(fc.constantFrom(...NEEDS_BODY, ...PARAMETERLESS, 'NetworkDriver.AllocateNetwork', 'NetworkDriver.GwAllocCheck'), garbageBody).map(([m, b]) => req(m, 'not a JSON object')(b)),
    fc.tuple(fc.constantFrom(...NEEDS_BODY, 'NetworkDriver.GwAllocCheck'), fc.constantFrom('', '  ', '\n')).map(([m, b]) => req(m, 'empty body')(b)),
    // Ids that are not 64 hex characters, on every call that takes them.
    fc.tuple(fc.constantFrom(...NEEDS_BODY.filter((m) => m.startsWith('Network'))), fc.constantFrom('NetworkID', 'EndpointID'), notHexId)
      .filter(([m, f]) => f === 'NetworkID' || !/Network$/.test(m))
      .map(([m, f, v]) => req(m, `bad ${f}`)(withField({ ...epBody, Interface: iface }, f, v))),
    // CreateNetwork: bad options, bad subnets, wrong types, conflicts with what exists.
    fc.oneof(
      fc.tuple(fc.constantFrom('Options', 'IPv4Data', 'IPv6Data'), fc.oneof(fc.integer(), fc.string({ maxLength: 10 }), fc.boolean())).map(([f, v]) => netBody({ [f]: v })),
      fc.record({ k: fc.constantFrom('ledgernet.mtu', 'com.docker.network.driver.mtu'), v: fc.oneof(fc.integer({ max: 67 }), fc.integer({ min: 65_536 })).map(String) })
        .map(({ k, v }) => netBody({ Options: { 'com.docker.network.generic': { [k]: v } } })),
      fc.oneof(
        ...Object.entries(BAD_OPTION_VALUES).map(([k, vs]) => fc.constantFrom(...vs).map((v) => ({ [k]: v }))),
        fc.tuple(fc.string({ maxLength: 12 }), fc.string({ maxLength: 12 })).map(([k, v]) => ({ [`ledgernet.${k}x`]: v, [`com.docker.network.${k}x`]: v })),
        fc.tuple(fc.constantFrom('ledgernet.mtu', 'foo', 'com.docker.network.driver.mtu'), wrongType.filter((v) => typeof v !== 'string')).map(([k, v]) => ({ [k]: v })),
        fc.constant({ foo: 'x'.repeat(5000) }),
      ).map((generic) => netBody({ Options: { 'com.docker.network.generic': generic } })),
      fc.constant(netBody({ Options: { 'com.docker.network.generic': { 'ledgernet.icc': 'true', 'com.docker.network.bridge.enable_icc': 'false' } } })),
      fc.record({ k: fc.constantFrom('com.docker.network.enable_ipv6', 'com.docker.network.internal', 'com.docker.network.generic', 'com.docker.network.other'), v: wrongType })
        .filter(({ k, v }) => !(k === 'com.docker.network.other' ? false : typeof v === 'boolean' && k !== 'com.docker.network.generic'))
        .map(({ k, v }) => netBody({ Options: { [k]: v } })),
      fc.record({ f: fc.constantFrom('Pool', 'Gateway'), v: badCidr.filter((v) => v !== '') }).map(({ f, v }) => netBody({ IPv4Data: ipv4({ [f]: v }) })),
      fc.record({ v: badCidr }).map(({ v }) => netBody({ IPv4Data: ipv4({ AuxAddresses: { r: v } }) })),
      fc.constantFrom('10.231.252.1/24', '10.231.251.0/24', '10.231.251.255/24', '10.231.251.1/16').map((g) => netBody({ IPv4Data: ipv4({ Gateway: g }) })),
      fc.constant({ ...createNetwork, Options: { 'com.docker.network.enable_ipv6': false, 'com.docker.network.generic': { 'ledgernet.mtu': '1400' } } }),
      fc.constant(netBody({ IPv4Data: [{ Pool: SUBNET, Gateway: '10.231.250.1/24' }] })),
    ).map(req('NetworkDriver.CreateNetwork', 'bad network')),
    // CreateEndpoint: bad interface fields, an address outside the subnet, unknown network.
    fc.oneof(
      fc.record({ f: fc.constantFrom('Address', 'AddressIPv6'), v: badCidr.filter((v) => v !== '') }).map(({ f, v }) => ({ NetworkID: NET, EndpointID: OTHER, Interface: { ...iface, [f]: v } })),
      fc.oneof(fc.string({ maxLength: 20 }).filter((s) => s !== '' && !/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/.test(s)), wrongType.filter((v) => v !== '')).map((v) => ({ NetworkID: NET, EndpointID: OTHER, Interface: { ...iface, Address: '10.231.250.9/24', MacAddress: v } })),
      wrongType.map((v) => ({ NetworkID: NET, EndpointID: OTHER, Interface: v })),
      fc.constant({ NetworkID: OTHER, EndpointID: OTHER, Interface: iface }),
      fc.constant({ NetworkID: NET, EndpointID: `${EP.slice(0, 11)}${'0'.repeat(53)}`, Interface: { ...iface, Address: '10.231.250.7/24' } }),
    ).map(req('NetworkDriver.CreateEndpoint', 'bad endpoint')),
    // Join, EndpointOperInfo with an unknown endpoint or a bad SandboxKey.
    fc.oneof(
      fc.constant({ NetworkID: NET, EndpointID: OTHER, SandboxKey: '/var/run/docker/netns/1' }),
      fc.constant({ NetworkID: OTHER, EndpointID: EP, SandboxKey: '/var/run/docker/netns/1' }),
      fc.oneof(wrongType.filter((v) => v !== '' && !(typeof v === 'string' && v.startsWith('/'))), fc.constantFrom('relative/path', '/a\nb', `/${'x'.repeat(5000)}`)).map((v) => ({ ...epBody, SandboxKey: v })),
    ).map(req('NetworkDriver.Join', 'bad join')),
    // Teardown with the wrong network for the existing endpoint.
    fc.constantFrom('NetworkDriver.Leave', 'NetworkDriver.DeleteEndpoint', 'NetworkDriver.RevokeExternalConnectivity').map((m) =>
      req(m, 'wrong network')({ NetworkID: OTHER, EndpointID: EP }),
    ),
    // Published ports: wrong types, out of range, other protocols, IPv6, twice.
    fc.oneof(
      wrongType.filter((v) => !Array.isArray(v) || v.length > 0).map((v) => program(Array.isArray(v) ? v : v)),
      fc.record({ f: fc.constantFrom('Proto', 'Port', 'HostPort', 'HostPortEnd'), v: badPort }).map(({ f, v }) => program([{ ...binding, [f]: v }])),
      fc.integer({ min: 0, max: 255 }).filter((p) => ![6, 17, 132].includes(p)).map((p) => program([{ ...binding, Proto: p }])),
      fc.oneof(fc.constantFrom('::', 'fe80::1', '1.2.3', '010.0.0.1', 'localhost'), wrongType.filter((v) => v !== '' && !(typeof v === 'string' && parseIp(v)))).map((h) => program([{ ...binding, HostIP: h }])),
      fc.constant(program([binding, { ...binding, Port: 81 }])),
      fc.constant(program([{ ...binding, Port: 0 }])),
    ).map(req('NetworkDriver.ProgramExternalConnectivity', 'bad ports')),
    // IPAM.
    fc.oneof(
      fc.record({ f: fc.constantFrom('Pool', 'SubPool', 'AddressSpace'), v: badCidr }).filter(({ f, v }) => !(f === 'AddressSpace' && typeof v === 'string') && v !== '')
        .map(({ f, v }) => ({ AddressSpace: 'ledgernet-local', Pool: '10.231.253.0/24', SubPool: '', Options: null, V6: false, [f]: v })),
      fc.oneof(wrongType.filter((v) => typeof v !== 'boolean'), fc.constant('true')).map((v) => ({ Pool: '', V6: v })),
      fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.string({ maxLength: 8 }), { minKeys: 1, maxKeys: 3 }).map((o) => ({ Pool: '', Options: o })),
      fc.constant({ Pool: '', SubPool: '10.231.253.0/25' }),
      fc.constant({ Pool: '10.231.253.0/24', SubPool: '10.231.254.0/25' }),
      fc.constant({ Pool: pool }),
      fc.constant({ Pool: 'fd00:1::/64', V6: false }),
    ).map(req('IpamDriver.RequestPool', 'bad pool request')),
    fc.tuple(fc.constantFrom('IpamDriver.ReleasePool', 'IpamDriver.RequestAddress', 'IpamDriver.ReleaseAddress'), fc.oneof(notHexId, fc.constantFrom('ledgernet/__proto__', '__proto__', 'constructor', 'ledgernet/10.0.0.0/0024', `${pool} `))).map(
      ([m, id]) => req(m, 'bad PoolID')({ PoolID: id, Address: '10.231.248.5' }),
    ),
    fc.oneof(
      fc.oneof(unparsable, fc.constantFrom(...outsideOrTaken(pool))).map((a) => ({ PoolID: pool, Address: a, Options: null })),
      fc.oneof(wrongType, fc.constant('something.else')).map((t) => ({ PoolID: pool, Address: '', Options: { RequestAddressType: t } })),
      fc.oneof(wrongType.filter((v) => typeof v !== 'string'), fc.constant('n'.repeat(2000))).map((n) => ({ PoolID: pool, Address: '', Options: { 'com.docker.network.endpoint.name': n } })),
      fc.constant({ PoolID: 'ledgernet/10.9.9.0/24', Address: '' }),
    ).map(req('IpamDriver.RequestAddress', 'bad address request')),
    fc.oneof(unparsable, fc.constant('')).map((a) => req('IpamDriver.ReleaseAddress', 'bad address')({ PoolID: pool, Address: a })),
    // Swarm calls ledgernet does not serve.
    fc.constantFrom('{}', '', JSON.stringify(createNetwork)).map(req('NetworkDriver.AllocateNetwork', 'swarm')),
  ];
}

/** A body over the size limit, for any call. */
const oversized = fc.constantFrom(...NEEDS_BODY, ...PARAMETERLESS).map((m) => ({ method: m, body: JSON.stringify({ NetworkID: NET, pad: 'p'.repeat(1_100_000) }), why: 'oversized' }));

// ---- transport ---------------------------------------------------------------------------------

interface Answer {
  status: number;
  text: string;
}

function send(agent: Agent, socket: string, r: Req, httpMethod = 'POST'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const q = request(
      { socketPath: socket, method: httpMethod, path: `/${r.method}`, agent, headers: { 'Content-Length': Buffer.byteLength(r.body), Host: '' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    q.setTimeout(30_000, () => q.destroy(new Error(`${r.method}: no answer within 30 s`)));
    // The server may answer (e.g. 413) and close before it read an oversized body: the write then
    // fails with EPIPE, but the answer is there to read. Fail only if none comes.
    q.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE' || e.code === 'ECONNRESET') setTimeout(() => reject(new Error(`${r.method}: ${e.code} and no answer`)), 2_000);
      else reject(e);
    });
    q.end(r.body);
  });
}

/** The Err of a refusal, or a message saying why the answer is not one. */
function clearErr(a: Answer, method: string): { err: string } | { problem: string } {
  if (a.status === 200) return { problem: `accepted (200 ${a.text.slice(0, 200)})` };
  let j: unknown;
  try {
    j = JSON.parse(a.text);
  } catch {
    return { problem: `not JSON: ${a.text.slice(0, 200)}` };
  }
  const keys = j !== null && typeof j === 'object' ? Object.keys(j) : [];
  const err = (j as { Err?: unknown }).Err;
  if (keys.join() !== 'Err' || typeof err !== 'string' || err.trim() === '') return { problem: `not {"Err": "…"}: ${a.text.slice(0, 200)}` };
  if (/internal error|LN_ERR_INTERNAL/i.test(err)) return { problem: `internal error: ${err}` };
  if (/\n\s+at |\bat [\w.]+ \(.*:\d+:\d+\)/.test(err)) return { problem: `a stack trace: ${err.slice(0, 300)}` };
  // Docker shows "NetworkDriver.CreateEndpoint: <Err>" itself: the Err must not name the method again.
  if ([`${method}:`, `${method.slice(method.indexOf('.') + 1)}:`].some((m) => err.startsWith(m))) return { problem: `starts with the method name Docker already adds: ${err.slice(0, 200)}` };
  return { err };
}

describe('bad input over the real socket', () => {
  test(`${RUNS} generated bad requests: all refused with a clear Err, the daemon alive, nothing appended, the kernel unchanged`, async () => {
    const logBefore = await events();
    const kernelBefore = await kernelView();
    assert.match(kernelBefore, /lnb-f0221f0221f/, 'the setup network is in the kernel');

    const badOnes = fc.oneof(...generators(poolId));
    const sample = [
      ...fc.sample(badOnes, { numRuns: RUNS, seed: SEED }),
      ...fc.sample(oversized, { numRuns: 40, seed: SEED }),
    ];
    const unknown = fc.sample(fc.tuple(fc.string({ minLength: 1, maxLength: 40 }).map((s) => encodeURIComponent(s)), fc.constantFrom('GET', 'PUT', 'POST')), { numRuns: 200, seed: SEED });

    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const problems: string[] = [];
    const byMethod = new Map<string, number>();
    const t0 = performance.now();
    let next = 0;
    const work = sample.map((r) => () => send(agent, daemon.socket, r).then((a) => {
      byMethod.set(r.method, (byMethod.get(r.method) ?? 0) + 1);
      const c = clearErr(a, r.method);
      if ('problem' in c) problems.push(`${r.method} (${r.why}) ${r.body.slice(0, 300)}\n    → ${c.problem}`);
    }));
    for (const [path, verb] of unknown) {
      work.push(() => send(agent, daemon.socket, { method: `Nope.${path}`, body: '{}', why: 'unknown route' }, verb).then((a) => {
        const c = clearErr(a, `Nope.${path}`);
        if ('problem' in c) problems.push(`${verb} /Nope.${path} → ${c.problem}`);
      }));
    }
    const workers = Array.from({ length: CONCURRENCY }, async () => {
      while (next < work.length) {
        const job = work[next++];
        await job?.().catch((e: unknown) => problems.push(`transport: ${(e as Error).message}`));
      }
    });
    await Promise.all(workers);
    agent.destroy();
    const seconds = (performance.now() - t0) / 1000;

    const activate = await pluginCall('Plugin.Activate', undefined, daemon.socket);
    assert.equal(activate.status, 200, 'the daemon still answers Plugin.Activate');
    assert.equal(daemon.proc.exitCode, null, 'the daemon still runs');
    const logAfter = await events();
    const kernelAfter = await kernelView();
    const unexpected = daemon.logs().split('\n').filter((l) => l.includes('unexpected error'));
    console.log(
      `bad input: ${work.length} requests (${sample.length} malformed or oversized to the ${byMethod.size} calls of the protocol, ${unknown.length} to unknown routes) ` +
        `in ${seconds.toFixed(1)} s (${Math.round(work.length / seconds)}/s, ${CONCURRENCY} in flight); per call: ` +
        [...byMethod].sort().map(([m, n]) => `${m} ${n}`).join(', ') +
        `; problems: ${problems.length}; events appended: ${logAfter === logBefore ? 0 : 'some'}; kernel changed: ${kernelAfter !== kernelBefore}`,
    );
    assert.ok(sample.length >= 10_000 || RUNS < 10_000, 'at least 10,000 bad requests');
    const kinds = new Map<string, number>();
    for (const p of problems) kinds.set(p.split(' ')[0] ?? '', (kinds.get(p.split(' ')[0] ?? '') ?? 0) + 1);
    assert.deepEqual(problems.slice(0, 10), [], `${problems.length} answers were not a clear Err (${[...kinds].join('; ')})`);
    assert.deepEqual(unexpected.slice(0, 5), [], 'no unexpected error in the daemon log');
    assert.equal(logAfter, logBefore, 'no event was appended');
    assert.equal(kernelAfter, kernelBefore, 'no ledgernet link or iptables rule changed');
  });
});
