// Stale connection tracking (moby/moby#8795), reproduced with real UDP traffic: the plugin and its
// reconciler run in this process against a throwaway "host" namespace (FORWARD policy DROP, as
// Docker sets it), an "outside" client namespace keeps sending from one source port, and each
// "container" is a namespace the endpoint's veth is moved into, as Docker does. After each stage
// the test asserts which receiver gets the datagrams: (1a) a container that takes a removed
// container's address, publishing nothing, gets none of the old client's; (1b) a port published
// again by another container goes to it; (1c) datagrams sent to a host port before it was
// published reach the container that publishes it. Without the flush, each stage fails (checked
// by turning it off). Traffic only between the namespaces made here. Needs root and python3.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execa } from 'execa';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { createPluginApp } from '../../src/api/plugin-http.ts';
import { fold } from '../../src/events/domain/evolve.ts';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { emptyState } from '../../src/events/domain/types.ts';
import { EventLog } from '../../src/events/log/log.ts';
import { EventStore } from '../../src/events/log/store.ts';
import { createKernel } from '../../src/kernel/index.ts';
import { Reconciler } from '../../src/reconciler/loop.ts';

const skip = process.getuid?.() === 0 ? false : 'needs root to make network namespaces';

const NET = 'c7c7c7c7c7c7' + '0'.repeat(52);
const UDP = (port: number) => `[{"Proto":17,"IP":"","Port":${port},"HostIP":"","HostPort":${port},"HostPortEnd":${port}}]`;
/** Receives datagrams on a port, one line each. */
const RECEIVER = `import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('',int(sys.argv[1])))
while True:
    d,a=s.recvfrom(2000); print(d.decode(),flush=True)`;
/** Sends a numbered datagram every 50 ms from one source port (as a NATed client does), for at most a minute. */
const SENDER = `import socket,sys,time
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('',int(sys.argv[3])))
for i in range(1200):
    s.sendto(str(i).encode(),(sys.argv[1],int(sys.argv[2]))); time.sleep(0.05)`;

/** A python3 script run in a namespace (never rejects: killed at the end). */
const spawnPython = (ns: string, script: string, ...args: string[]) => execa('ip', ['netns', 'exec', ns, 'python3', '-u', '-c', script, ...args], { reject: false, stdin: 'ignore' });
type Proc = ReturnType<typeof spawnPython>;

interface Receiver {
  readonly proc: Proc;
  readonly got: string[];
}

describe('stale conntrack entries of published UDP ports are deleted (moby#8795)', { skip }, () => {
  const tag = `${process.pid % 100000}-${randomBytes(2).toString('hex')}`;
  const host = `lnct-h-${tag}`;
  const outside = `lnct-o-${tag}`;
  const containers: string[] = [];
  const procs: Proc[] = [];
  const warnings: string[] = [];
  let dir: string;
  let app: FastifyInstance;
  let store: EventStore;
  let reconciler: Reconciler;

  const ip = (...args: string[]) => execa('ip', args);
  const inNs = (ns: string, ...args: string[]) => execa('ip', ['netns', 'exec', ns, ...args]);
  const call = async (method: string, body: string): Promise<Record<string, unknown>> => {
    const res = await app.inject({ method: 'POST', url: `/${method}`, payload: body });
    const json = res.json() as Record<string, unknown>;
    assert.equal(res.statusCode, 200, `${method}: ${res.body}`);
    return json;
  };
  const python = (ns: string, script: string, ...args: string[]): Proc => {
    const p = spawnPython(ns, script, ...args);
    procs.push(p);
    return p;
  };
  const receive = (ns: string, port: number): Receiver => {
    const proc = python(ns, RECEIVER, String(port));
    const got: string[] = [];
    proc.stdout?.on('data', (b: Buffer) => got.push(...b.toString().split('\n').filter((l) => l !== '')));
    return { proc, got };
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const waitGot = async (r: Receiver, what: string, ms = 5_000) => {
    const end = Date.now() + ms;
    while (r.got.length === 0 && Date.now() < end) await sleep(50);
    assert.ok(r.got.length > 0, `${what}: nothing received in ${ms} ms`);
  };

  /** CreateEndpoint, Join, the veth moved into a new "container" namespace, ProgramExternalConnectivity. */
  const up = async (ep: string, address: string, portmap: string): Promise<string> => {
    const ns = `lnct-c${containers.length}-${tag}`;
    const opts = `"Options":{"com.docker.network.endpoint.exposedports":[],"com.docker.network.portmap":${portmap}}`;
    await call('NetworkDriver.CreateEndpoint', `{"NetworkID":"${NET}","EndpointID":"${ep}","Interface":{"Address":"${address}/24","AddressIPv6":"","MacAddress":""},${opts}}`);
    await ip('netns', 'add', ns);
    containers.push(ns);
    const join = await call('NetworkDriver.Join', `{"NetworkID":"${NET}","EndpointID":"${ep}","SandboxKey":"/run/netns/${ns}",${opts}}`);
    const src = (join['InterfaceName'] as { SrcName: string }).SrcName;
    await ip('-n', host, 'link', 'set', src, 'netns', ns);
    await ip('-n', ns, 'link', 'set', src, 'name', 'eth0');
    await ip('-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
    await ip('-n', ns, 'link', 'set', 'eth0', 'up');
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    await ip('-n', ns, 'route', 'add', 'default', 'via', '10.77.0.1');
    await call('NetworkDriver.ProgramExternalConnectivity', `{"NetworkID":"${NET}","EndpointID":"${ep}",${opts}}`);
    return ns;
  };
  /** Docker's way down: Revoke, Leave, the container's namespace gone (its receiver stopped first), DeleteEndpoint. */
  const down = async (ep: string, ns: string, r: Receiver) => {
    await call('NetworkDriver.RevokeExternalConnectivity', `{"NetworkID":"${NET}","EndpointID":"${ep}"}`);
    await call('NetworkDriver.Leave', `{"NetworkID":"${NET}","EndpointID":"${ep}"}`);
    r.proc.kill();
    await r.proc;
    await ip('netns', 'del', ns);
    await call('NetworkDriver.DeleteEndpoint', `{"NetworkID":"${NET}","EndpointID":"${ep}"}`);
  };

  before(async () => {
    await ip('netns', 'add', host);
    await ip('netns', 'add', outside);
    await ip('-n', host, 'link', 'set', 'lo', 'up');
    await inNs(host, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    await inNs(host, 'iptables', '-P', 'FORWARD', 'DROP');
    await ip('-n', host, 'link', 'add', 'lnct-out', 'type', 'veth', 'peer', 'name', 'lnct-in', 'netns', outside);
    await ip('-n', host, 'addr', 'add', '10.99.250.1/30', 'dev', 'lnct-out');
    await ip('-n', host, 'link', 'set', 'lnct-out', 'up');
    await ip('-n', outside, 'addr', 'add', '10.99.250.2/30', 'dev', 'lnct-in');
    await ip('-n', outside, 'link', 'set', 'lnct-in', 'up');
    await ip('-n', outside, 'route', 'add', 'default', 'via', '10.99.250.1');
    dir = await mkdtemp(join(tmpdir(), 'ln-conntrack-'));
    const opened = await EventLog.open(dir, { host: 't' });
    store = new EventStore(opened.log, fold(emptyState, opened.events));
    const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    const kernel = createKernel({ netns: host, filterPrefixes: [VETH_PREFIX] });
    reconciler = new Reconciler({ kernel, getState: () => store.latest, log, intervalMs: 0, onLost: async () => undefined });
    app = createPluginApp({ store, reconciler, log, applyTimeoutMs: 15_000 });
    await app.ready();
    await call(
      'NetworkDriver.CreateNetwork',
      `{"NetworkID":"${NET}","Options":{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{}},"IPv4Data":[{"AddressSpace":"LocalDefault","Gateway":"10.77.0.1/24","Pool":"10.77.0.0/24"}],"IPv6Data":[]}`,
    );
  });

  after(async () => {
    for (const p of procs) p.kill();
    await Promise.all(procs);
    if (app) {
      await app.inject({ method: 'POST', url: '/NetworkDriver.DeleteNetwork', payload: `{"NetworkID":"${NET}"}` });
      await app.close();
    }
    await reconciler?.stop();
    await store?.close();
    for (const ns of [...containers, outside, host]) await execa('ip', ['netns', 'del', ns], { reject: false });
    if (dir) await rm(dir, { recursive: true, force: true });
    const { stdout } = await execa('ip', ['netns', 'list']);
    assert.doesNotMatch(stdout, new RegExp(`-${tag}\\b`), 'test namespaces leaked');
  });

  const A = 'a'.repeat(64);
  const D = 'd'.repeat(64);
  const B = 'b'.repeat(64);
  const E = 'e'.repeat(64);
  let recvD: Receiver;

  // The stages run in order (1b follows 1a's containers); each still runs when the one before failed.
  it('1a: a container that takes a removed one\'s address, publishing nothing, gets none of the old client\'s datagrams', async () => {
    // Container A publishes udp 5000; the client keeps sending to the host's port 5000 from port 40000.
    const nsA = await up(A, '10.77.0.2', UDP(5000));
    const recvA = receive(nsA, 5000);
    await sleep(300);
    void python(outside, SENDER, '10.99.250.1', '5000', '40000');
    await waitGot(recvA, 'A, which publishes udp 5000');
    await down(A, nsA, recvA);
    const nsD = await up(D, '10.77.0.2', '[]');
    recvD = receive(nsD, 5000);
    await sleep(1_500);
    assert.deepEqual(recvD.got, [], 'D published nothing, yet got the old client\'s datagrams');
  });

  it('1b: a port published again by a container at another address goes to it', async () => {
    const nsB = await up(B, '10.77.0.3', UDP(5000));
    const recvB = receive(nsB, 5000);
    const seenByD = recvD.got.length;
    await waitGot(recvB, 'B, which publishes udp 5000 now');
    await sleep(500);
    assert.equal(recvD.got.length, seenByD, 'D kept getting datagrams of a port B publishes');
  });

  it('1c: datagrams sent to a host port before it was published reach the container that publishes it', async () => {
    void python(outside, SENDER, '10.99.250.1', '6000', '40001');
    await sleep(1_000);
    const nsE = await up(E, '10.77.0.4', UDP(6000));
    const recvE = receive(nsE, 6000);
    await waitGot(recvE, 'E, which published udp 6000 after the client began');
  });

  it('said no warning about conntrack', () => {
    assert.deepEqual(
      warnings.filter((w) => w.includes('conntrack')),
      [],
    );
  });
});
