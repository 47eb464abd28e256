// The IPAM half of the plugin socket as Docker calls it (observed-docker.md §2.3, §2.9): raw
// bodies without a Content-Type, over a real log and store; the host view is a stub.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { createPluginApp } from '../../../src/api/plugin-http.ts';
import { DriverError } from '../../../src/errors.ts';
import { fold } from '../../../src/events/domain/evolve.ts';
import { EventLog } from '../../../src/events/log/log.ts';
import { readLog } from '../../../src/events/log/read.ts';
import { EventStore } from '../../../src/events/log/store.ts';
import { emptyState } from '../../../src/events/domain/types.ts';
import { Reconciler } from '../../../src/reconciler/loop.ts';
import { FakeKernel } from '../../helpers/fake-kernel.ts';

let app: FastifyInstance;
let store: EventStore;
let reconciler: Reconciler;
let dir: string;
let occupied: string[] | (() => string[]);
/** The stub host's addresses on links ledgernet does not own. */
let hostAddrs: { dev: string; cidr: string }[];
/** The stub host's addresses on ledgernet's own links, and how often every link was read (hostAddrs). */
let ownAddrs: string[];
let linkReads: number;
/** What the stub host's filterBridges was asked, and whether it fails as a host without br_netfilter does. */
let filtered: string[][];
let noBrNetfilter: boolean;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ln-ipam-'));
  const { log, events } = await EventLog.open(dir, { host: 't' });
  store = new EventStore(log, fold(emptyState, events));
  const logger = pino({ level: 'silent' });
  reconciler = new Reconciler({ kernel: new FakeKernel(), getState: () => store.latest, log: logger, intervalMs: 0, onLost: async () => undefined });
  occupied = [];
  hostAddrs = [];
  ownAddrs = [];
  linkReads = 0;
  filtered = [];
  noBrNetfilter = false;
  app = createPluginApp({
    store,
    reconciler,
    log: logger,
    applyTimeoutMs: 5_000,
    host: { occupiedPrefixes: async () => (typeof occupied === 'function' ? occupied() : occupied), hostAddrs: async () => {
        linkReads += 1;
        return hostAddrs;
      },
      addressPrefixes: async () => [...hostAddrs.map((a) => a.cidr), ...ownAddrs], isForeignLink: async (name) => name === 'eth0', listeners: async () => [],
      containerIface: async () => null,
      filterBridges: async (families) => {
        filtered.push([...families]);
        if (noBrNetfilter) throw new Error('the kernel module br_netfilter is not loaded and could not be (modprobe br_netfilter: FATAL: Module br_netfilter not found); load it');
      },
    },
    defaultPools: { v4: { range: '10.231.64.0/22', size: 24 }, v6: { range: 'fd00:231::/48', size: 64 } },
  });
  await app.ready();
});

afterEach(async () => {
  await app.close();
  await reconciler.stop();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function call(method: string, payload = ''): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await app.inject({ method: 'POST', url: `/${method}`, payload, headers: { 'content-length': String(Buffer.byteLength(payload)) } });
  return { status: res.statusCode, body: res.json() as Record<string, unknown> };
}

describe('IpamDriver over the plugin socket', () => {
  it('activates as both roles and answers the constant calls with empty bodies', async () => {
    assert.deepEqual((await call('Plugin.Activate')).body, { Implements: ['NetworkDriver', 'IpamDriver'] });
    assert.deepEqual((await call('IpamDriver.GetCapabilities')).body, { RequiresMACAddress: false, RequiresRequestReplay: false });
    assert.equal((await call('IpamDriver.GetDefaultAddressSpaces')).status, 200);
  });

  it('runs the network create / rm sequence Docker sends and logs each allocation', async () => {
    const pool = await call('IpamDriver.RequestPool', '{"AddressSpace":"ledgernet-local","Pool":"10.231.65.0/24","SubPool":"","Options":{},"V6":false}\n');
    assert.deepEqual(pool.body, { PoolID: 'ledgernet/10.231.65.0/24', Pool: '10.231.65.0/24', Data: {} });
    const gw = await call('IpamDriver.RequestAddress', '{"PoolID":"ledgernet/10.231.65.0/24","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}\n');
    assert.deepEqual(gw.body, { Address: '10.231.65.1/24', Data: {} });
    const ep = await call('IpamDriver.RequestAddress', '{"PoolID":"ledgernet/10.231.65.0/24","Address":"","Options":null}\n');
    assert.deepEqual(ep.body, { Address: '10.231.65.2/24', Data: {} });
    const taken = await call('IpamDriver.RequestAddress', '{"PoolID":"ledgernet/10.231.65.0/24","Address":"10.231.65.2","Options":null}\n');
    assert.equal(taken.status, 500);
    assert.match(String(taken.body['Err']), /10\.231\.65\.2 in pool 10\.231\.65\.0\/24 is already in use/);
    assert.equal((await call('IpamDriver.ReleaseAddress', '{"PoolID":"ledgernet/10.231.65.0/24","Address":"10.231.65.1"}\n')).status, 200);
    assert.equal((await call('IpamDriver.ReleasePool', '{"PoolID":"ledgernet/10.231.65.0/24"}\n')).status, 200);
    const types = (await readLog(dir)).events.map((e) => e.type);
    assert.deepEqual(types, ['pool.requested', 'address.requested', 'address.requested', 'address.released', 'pool.released']);
  });

  it('refuses an explicit subnet on the connected subnet of an interface ledgernet does not own, naming it; a route via a gateway does not count', async () => {
    hostAddrs = [{ dev: 'br-5c1e0a7d2b11', cidr: '10.232.150.1/24' }, { dev: 'eth0', cidr: '192.0.2.2/24' }];
    // Automatic pools avoid these through occupiedPrefixes; a VPN's 10.0.0.0/8 is there, not here.
    occupied = ['10.0.0.0/8'];
    const over = await call('IpamDriver.RequestPool', '{"AddressSpace":"ledgernet-local","Pool":"10.232.150.0/25","SubPool":"","Options":{},"V6":false}\n');
    assert.equal(over.status, 500);
    assert.match(String(over.body['Err']), /subnet 10\.232\.150\.0\/25 overlaps subnet 10\.232\.150\.0\/24 of interface br-5c1e0a7d2b11 \(the host's address 10\.232\.150\.1\).*nothing was created/);
    const addr = await call('IpamDriver.RequestPool', '{"AddressSpace":"ledgernet-local","Pool":"192.0.2.2/32","SubPool":"","Options":{},"V6":false}\n');
    assert.match(String(addr.body['Err']), /interface eth0/);
    assert.equal((await call('IpamDriver.RequestPool', '{"AddressSpace":"ledgernet-local","Pool":"10.232.151.0/24","SubPool":"","Options":{},"V6":false}\n')).status, 200);
    assert.deepEqual((await readLog(dir)).events.map((e) => e.type), ['pool.requested']);
  });

  it('reads every link (to tell the host\'s addresses from ledgernet\'s) only when an address of the host overlaps the subnet asked for', async () => {
    hostAddrs = [{ dev: 'eth0', cidr: '192.0.2.2/24' }];
    ownAddrs = ['10.232.160.1/24'];
    const ask = (pool: string) => call('IpamDriver.RequestPool', `{"AddressSpace":"ledgernet-local","Pool":"${pool}","SubPool":"","Options":{},"V6":false}\n`);
    assert.equal((await ask('10.232.161.0/24')).status, 200);
    assert.equal(linkReads, 0, 'a subnet no address of the host overlaps: the addresses alone tell');
    // Near an address of a bridge of ledgernet's (a network Docker removed, its bridge not yet gone): read, and not refused.
    assert.equal((await ask('10.232.160.0/25')).status, 200);
    assert.equal(linkReads, 1);
    const refused = await ask('192.0.2.128/25');
    assert.match(String(refused.body['Err']), /overlaps subnet 192\.0\.2\.0\/24 of interface eth0/);
    assert.equal(linkReads, 2);
    assert.deepEqual((await readLog(dir)).events.map((e) => e.type), ['pool.requested', 'pool.requested']);
  });

  it('refuses a network whose subnet from Docker\'s default IPAM is on a connected subnet of the host', async () => {
    hostAddrs = [{ dev: 'eth0', cidr: '192.0.2.2/24' }];
    const body = (id: string, pool: string) => `{"NetworkID":"${id}","Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{}},"IPv4Data":[{"AddressSpace":"LocalDefault","Gateway":"${pool.replace('0/24', '1/24')}","Pool":"${pool}"}],"IPv6Data":[]}\n`;
    const refused = await call('NetworkDriver.CreateNetwork', body('a'.repeat(64), '192.0.2.0/24'));
    assert.equal(refused.status, 500);
    assert.match(String(refused.body['Err']), /^subnet 192\.0\.2\.0\/24 overlaps subnet 192\.0\.2\.0\/24 of interface eth0/);
    assert.equal((await readLog(dir)).events.length, 0);
  });

  it('carves automatic pools around host prefixes and answers each overlap retry with a new pool', async () => {
    occupied = ['10.231.64.7/24', '0.0.0.0/0'];
    const body = '{"AddressSpace":"ledgernet-local","Pool":"","SubPool":"","Options":null,"V6":false}\n';
    assert.equal((await call('IpamDriver.RequestPool', body)).body['Pool'], '10.231.65.0/24');
    assert.equal((await call('IpamDriver.RequestPool', body)).body['Pool'], '10.231.66.0/24');
    assert.equal((await call('IpamDriver.RequestPool', body)).body['Pool'], '10.231.67.0/24');
    const none = await call('IpamDriver.RequestPool', body);
    assert.equal(none.status, 500);
    assert.match(String(none.body['Err']), /default pool 10\.231\.64\.0\/22 has no free \/24 left/);
  });

  it('takes --subnet 0.0.0.0/26 (Docker 29: a size, no subnet) as an automatic pool of that size, around host prefixes', async () => {
    occupied = ['10.231.64.0/26'];
    const sized = (pool: string, v6 = false) => `{"AddressSpace":"ledgernet-local","Pool":"${pool}","SubPool":"","Options":null,"V6":${v6}}\n`;
    assert.deepEqual((await call('IpamDriver.RequestPool', sized('0.0.0.0/26'))).body, { PoolID: 'ledgernet/10.231.64.64/26', Pool: '10.231.64.64/26', Data: {} });
    const all = await call('IpamDriver.RequestPool', sized('0.0.0.0/0'));
    assert.equal(all.status, 500, '/0 is no size: refused as the subnet it is');
    assert.match(String(all.body['Err']), /--subnet 0\.0\.0\.0\/0 is refused/);
    assert.equal((await call('IpamDriver.RequestPool', sized('::/56', true))).body['Pool'], 'fd00:231::/56');
    const wide = await call('IpamDriver.RequestPool', sized('0.0.0.0/16'));
    assert.equal(wide.status, 500);
    assert.match(String(wide.body['Err']), /--subnet 0\.0\.0\.0\/16 asks for an automatic \/16, which does not fit in the default IPv4 pool 10\.231\.64\.0\/22 \(serve --default-pool\)/);
  });

  it('a kernel command that fails while reading the host: Docker gets the fixed phrase, not its stderr', async () => {
    occupied = () => {
      throw new DriverError('LN_ERR_KERNEL_EXEC', 'could not read addresses: ip -j addr show exited with code 1: Cannot open netlink socket: raw words');
    };
    const res = await call('IpamDriver.RequestPool', '{"AddressSpace":"ledgernet-local","Pool":"","SubPool":"","Options":null,"V6":false}\n');
    assert.deepEqual([res.status, res.body], [500, { Err: 'a kernel command failed; see the ledgernet log' }]);
  });

  it('refuses --ipam-opt, a sub-pool outside the pool, and an unknown PoolID, writing nothing', async () => {
    const opt = await call('IpamDriver.RequestPool', '{"Pool":"10.231.65.0/24","Options":{"foo":"bar"},"V6":false}\n');
    assert.match(String(opt.body['Err']), /takes only --ipam-opt ledgernet.cluster=NAME, got foo/);
    const sub = await call('IpamDriver.RequestPool', '{"Pool":"10.231.65.0/24","SubPool":"10.231.66.0/25","V6":false}\n');
    assert.match(String(sub.body['Err']), /--ip-range 10\.231\.66\.0\/25 must be a CIDR inside --subnet 10\.231\.65\.0\/24/);
    const unknown = await call('IpamDriver.RequestAddress', '{"PoolID":"ledgernet/10.9.0.0/24","Address":""}\n');
    assert.match(String(unknown.body['Err']), /PoolID ledgernet\/10\.9\.0\.0\/24 is not held/);
    assert.deepEqual((await readLog(dir)).events, []);
  });

  it('a cluster pool without the cluster (serve without --nats) is refused naming what is missing, writing nothing', async () => {
    const res = await call('IpamDriver.RequestPool', '{"Pool":"10.240.0.0/24","Options":{"ledgernet.cluster":"blue"},"V6":false}\n');
    assert.match(String(res.body['Err']), /cluster network blue needs the cluster: run ledgernet serve with --nats/);
    const bad = await call('IpamDriver.RequestPool', '{"Pool":"10.240.0.0/24","Options":{"ledgernet.cluster":"a b"},"V6":false}\n');
    assert.match(String(bad.body['Err']), /option ledgernet\.cluster=a b is invalid/);
    assert.deepEqual((await readLog(dir)).events, []);
  });

  it("refuses a ledgernet network on Docker's IPAM (LocalDefault) whose subnet is a pool ledgernet IPAM gave another driver's network; its own network on that pool is taken", async () => {
    // Network A: `-d bridge --ipam-driver ledgernet --subnet 10.50.0.0/24` (Docker's bridge driver: never a ledgernet network).
    const pool = await call('IpamDriver.RequestPool', '{"AddressSpace":"ledgernet-local","Pool":"10.50.0.0/24","SubPool":"","Options":null,"V6":false}\n');
    assert.equal(pool.status, 200, JSON.stringify(pool.body));
    const network = (net: string, space: string, subnet = '10.50.0.0/24', gw = '10.50.0.1/24') =>
      call('NetworkDriver.CreateNetwork', `{"NetworkID":"${net}","Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{}},"IPv4Data":[{"AddressSpace":"${space}","Gateway":"${gw}","Pool":"${subnet}"}],"IPv6Data":[]}\n`);
    // Network B: `-d ledgernet --subnet 10.50.0.0/24` on Docker's default IPAM.
    const b = await network('b'.repeat(64), 'LocalDefault');
    assert.equal(b.status, 500);
    assert.match(String(b.body['Err']), /^subnet 10\.50\.0\.0\/24 \(IPAM address space LocalDefault, not ledgernet IPAM's\) overlaps pool 10\.50\.0\.0\/24 \(PoolID ledgernet\/10\.50\.0\.0\/24\) that ledgernet IPAM handed out to another network/);
    // A subnet inside the pool, even in ledgernet's space, is not the pool.
    const inside = await network('c'.repeat(64), 'ledgernet-local', '10.50.0.0/25', '10.50.0.1/25');
    assert.match(String(inside.body['Err']), /^subnet 10\.50\.0\.0\/25 \(IPAM address space ledgernet-local\) overlaps pool 10\.50\.0\.0\/24/);
    assert.deepEqual((await readLog(dir)).events.map((e) => e.type), ['pool.requested']);
    // `-d ledgernet --ipam-driver ledgernet`: the network on its own pool.
    const own = await network('d'.repeat(64), 'ledgernet-local');
    assert.equal(own.status, 200, JSON.stringify(own.body));
    assert.equal(store.state.networks['d'.repeat(64)]?.ipv4Data[0]?.addressSpace, 'ledgernet-local');
  });

  it('refuses a custom bridge name that is a foreign interface', async () => {
    const net = 'c'.repeat(64);
    const res = await call(
      'NetworkDriver.CreateNetwork',
      `{"NetworkID":"${net}","Options":{"com.docker.network.generic":{"com.docker.network.bridge.name":"eth0"}},"IPv4Data":[{"Pool":"10.231.65.0/24","Gateway":"10.231.65.1/24"}],"IPv6Data":[]}\n`,
    );
    assert.equal(res.status, 500);
    assert.match(String(res.body['Err']), /bridge name eth0 .* does not own/);
  });

  it('an icc=false network has the host filter its bridges first (both families with IPv6); icc on asks nothing', async () => {
    const create = (net: string, n: number, options: string, v6 = '[]') =>
      call('NetworkDriver.CreateNetwork', `{"NetworkID":"${net}","Options":{"com.docker.network.generic":{${options}}},"IPv4Data":[{"Pool":"10.231.${n}.0/24","Gateway":"10.231.${n}.1/24"}],"IPv6Data":${v6}}\n`);
    const first = await create('d'.repeat(64), 66, '"com.docker.network.bridge.enable_icc":"true"');
    assert.equal(first.status, 200, JSON.stringify(first.body));
    assert.deepEqual(filtered, []);
    const second = await create('e'.repeat(64), 68, '"ledgernet.icc":"false"', '[{"Pool":"fd00:231:66::/64","Gateway":"fd00:231:66::1/64"}]');
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.deepEqual(filtered, [['iptables', 'ip6tables']]);
  });

  it('refuses an icc=false network the host cannot filter, naming the option and what is missing; nothing is recorded', async () => {
    noBrNetfilter = true;
    const net = 'f'.repeat(64);
    const res = await call('NetworkDriver.CreateNetwork', `{"NetworkID":"${net}","Options":{"com.docker.network.generic":{"com.docker.network.bridge.enable_icc":"false"}},"IPv4Data":[{"Pool":"10.231.67.0/24","Gateway":"10.231.67.1/24"}],"IPv6Data":[]}\n`);
    assert.equal(res.status, 500);
    assert.match(String(res.body['Err']), /^option ledgernet\.icc \/ com\.docker\.network\.bridge\.enable_icc=false needs the kernel to filter traffic inside a bridge, and it cannot: the kernel module br_netfilter is not loaded .*FATAL: Module br_netfilter not found\); load it, or create the network without icc=false/);
    assert.deepEqual((await readLog(dir)).events, []);
  });
});
