// Issue 14: TCP throughput between containers on two hosts of a cluster network (VXLAN through
// ledgernet: veth, bridge, VXLAN device, underlay and back) against a VXLAN pair built by hand
// between the same two host namespaces (the tunnel alone, no bridge or veth). Target: ledgernet
// ≥ 0.9 × the hand-built pair. Both on the multi-host test bed (test/helpers/multihost.ts): two
// hosts, each its own dockerd, nats-server and ledgernet. iperf3 is the machine's, run in the
// containers' (or hosts') network namespaces with `nsenter -n`, so both paths use one binary.
// Both sides use MTU 1450 (underlay 1500 − 50): the container network with
// `-o com.docker.network.driver.mtu=1450`.
import { execa } from 'execa';
import { measure, median, type BenchOptions, type BenchResult } from '../rows.ts';
import { TEST_IMAGE } from '../../test/helpers/docker.ts';
import { createTestbed, type Host } from '../../test/helpers/multihost.ts';

const NET = 'tput';
const HAND = { vni: 77, dev: 'vxhand', net: '10.231.207' };

/** `nsenter` arguments that enter a network namespace: a process's, or a named one. */
type NetnsOf = readonly string[];
const ofPid = (pid: string): NetnsOf => ['-t', pid, '-n'];
const ofNetns = (h: Host): NetnsOf => [`--net=/run/netns/${h.netns}`];

/** `iperf3 -c` from the client's namespace against a server started in the server's; Mbit/s received per run. */
async function iperf(server: NetnsOf, client: NetnsOf, ip: string, seconds: number, runs: number): Promise<number[]> {
  const srv = execa('nsenter', [...server, 'iperf3', '-s', '-B', ip], { reject: false });
  const out: number[] = [];
  try {
    await new Promise((r) => setTimeout(r, 500));
    for (let i = 0; i < runs; i++) {
      const r = await execa('nsenter', [...client, 'iperf3', '-c', ip, '-t', String(seconds), '-J'], { reject: false });
      const bps = (JSON.parse(r.stdout || '{}') as { end?: { sum_received?: { bits_per_second?: number } } }).end?.sum_received?.bits_per_second;
      if (!bps) throw new Error(`iperf3 to ${ip} gave no result: ${r.stderr || r.stdout.slice(0, 300)}`);
      out.push(bps / 1e6);
    }
  } finally {
    srv.kill('SIGTERM');
    await srv;
  }
  return out;
}

/** The hand-built pair: a VXLAN device per host with a static FDB entry and neighbour for the other. */
async function handPair(a: Host, b: Host): Promise<void> {
  const mac = (h: Host) => `02:42:0a:e7:cf:${h.n.toString(16).padStart(2, '0')}`;
  for (const [h, peer] of [[a, b], [b, a]] as const) {
    const ip = (...args: string[]) => execa('ip', ['-n', h.netns, ...args]);
    await ip('link', 'add', HAND.dev, 'type', 'vxlan', 'id', String(HAND.vni), 'dstport', '4789', 'local', h.underlay, 'dev', 'eth0', 'nolearning');
    await ip('link', 'set', HAND.dev, 'address', mac(h), 'mtu', '1450', 'up');
    await ip('addr', 'add', `${HAND.net}.${h.n}/24`, 'dev', HAND.dev);
    await execa('bridge', ['-n', h.netns, 'fdb', 'add', mac(peer), 'dev', HAND.dev, 'dst', peer.underlay, 'self', 'permanent']);
    await ip('neigh', 'replace', `${HAND.net}.${peer.n}`, 'lladdr', mac(peer), 'dev', HAND.dev, 'nud', 'permanent');
  }
}

async function containerNetns(h: Host, name: string): Promise<NetnsOf> {
  return ofPid((await h.docker(['inspect', '-f', '{{.State.Pid}}', name], { check: true })).stdout.trim());
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const [seconds, rounds] = opts.smoke ? [1, 1] : [5, 3];
  const bed = await createTestbed({ hosts: 2, ledgernet: ['--reconcile-interval', '5'] });
  try {
    const [h1, h2] = bed.hosts as [Host, Host];
    const cluster = ['-d', 'ledgernet', '--ipam-driver', 'ledgernet', '--ipam-opt', `ledgernet.cluster=${NET}`, '-o', `ledgernet.cluster=${NET}`];
    await Promise.all([h1, h2].map((h) => h.docker(['network', 'create', ...cluster, '-o', 'com.docker.network.driver.mtu=1450', NET], { check: true })));
    await Promise.all([h1, h2].map((h) => h.docker(['run', '-d', '--init', '--name', `t${h.n}`, '--network', NET, TEST_IMAGE, 'sleep', '3600'], { check: true })));
    const serverIp = (await h2.docker(['inspect', '-f', `{{.NetworkSettings.Networks.${NET}.IPAddress}}`, 't2'], { check: true })).stdout.trim();
    // The peer's FDB entry comes through NATS: wait until the client reaches the server.
    for (let i = 0; (await h1.docker(['exec', 't1', 'ping', '-c', '1', '-W', '1', serverIp])).exitCode !== 0; i++) {
      if (i > 60) throw new Error(`t1 on h1 never reached ${serverIp} on h2`);
    }
    await handPair(h1, h2);
    const [cli, srv] = [await containerNetns(h1, 't1'), await containerNetns(h2, 't2')];
    const [hostCli, hostSrv] = [ofNetns(h1), ofNetns(h2)];
    const ours: number[] = [];
    const hand: number[] = [];
    // Interleaved, so load on the shared machine falls on both alike.
    for (let r = 0; r < rounds; r++) {
      hand.push(...(await iperf(hostSrv, hostCli, `${HAND.net}.${h2.n}`, seconds, 1)));
      ours.push(...(await iperf(srv, cli, serverIp, seconds, 1)));
    }
    const ratio = median(ours) / median(hand);
    return {
      row: '14.1 throughput between containers on two hosts (VXLAN) against a hand-built VXLAN pair',
      measurements: [
        measure('iperf3, hand-built VXLAN pair between the two host namespaces', 'Mbit/s', hand),
        measure('iperf3, containers of a ledgernet cluster network on the two hosts', 'Mbit/s', ours),
      ],
      verdicts: [{ target: 'ledgernet ≥ 0.9 × the hand-built VXLAN pair', value: ratio, met: ratio >= 0.9 }],
      notes: [
        `Two hosts of the multi-host test bed (network namespaces on one machine joined by an underlay bridge, MTU 1500). ` +
          `iperf3 -t ${seconds}, ${rounds} runs each, interleaved; the machine's iperf3 run in the namespaces with nsenter -n. ` +
          'The hand-built pair is two VXLAN devices (VNI 77, nolearning, MTU 1450) with static FDB and neighbour entries; ' +
          'the cluster network (MTU 1450) adds a veth and the bridge on each side.',
      ],
    };
  } finally {
    await bed.down();
  }
}
