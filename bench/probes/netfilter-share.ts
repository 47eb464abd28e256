// Row 7's floor: what netfilter costs two containers on one bridge, and whether any per-packet
// saving is left that could make ledgernet faster than the bridge driver at 0 networks.
// Namespaces of its own, no Docker (no lock needed): a router namespace R holding the bridge, made
// by a real ledgernet daemon (iptables backend) started in R after Docker's own base rules were
// loaded there, so its bridge, veths and rules are exactly what it makes on a host; two
// "containers" A and B get its two endpoints' veths, as Docker would move them. Then iperf3 A→B
// under each ruleset in R, interleaved rounds:
//   off           net.bridge.bridge-nf-call-iptables=0, no tables (no netfilter at all)
//   brnf          br_netfilter on, no tables
//   ledgernet     ledgernet's rules for 1 network (+ Docker's base rules), as captured from R
//   ledgernet200  the same with ledgernet's rules for 200 more networks and Docker's for 200
//   docker        Docker 20.10's bridge-driver rules for the measured network (netfilter-rules.ts)
//   docker200     the same with 200 other bridge networks' rules inserted before it
//   docker-notrack  docker + raw NOTRACK for intra-subnet traffic
//   ledgernet-notrack  ledgernet + the same NOTRACK
// and two datapath variants under the `ledgernet` rules: `veth-dockerlike` (a second pair on the
// same bridge with veths made as Docker's bridge driver makes them: default queue count,
// txqueuelen 0) and `macvlan` (two macvlan-bridge links on one parent: no Linux bridge, no
// br_netfilter).
// Each variant's ruleset is written to /tmp/netfilter-share-<variant>.rules.
//   node --import tsx bench/probes/netfilter-share.ts [rounds] [seconds]   (build first)
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { median } from '../rows.ts';
import { startBenchDaemon } from '../offline/daemon.ts';
import { withNetns } from '../offline/netns.ts';
import { createEndpointBody, createNetworkBody, endpointSpec, layout, networkId, subnetOf } from '../offline/scenario.ts';
import { pluginCall } from '../../test/helpers/daemon.ts';
import { bridgeName } from '../../src/events/domain/naming.ts';
import { DOCKER_BASE, notrack, populationNet, withBridgeNetworks } from './netfilter-rules.ts';

const ROUNDS = Number(process.argv[2] ?? 5);
const SECONDS = Number(process.argv[3] ?? 3);
const POPULATION = 200;

const sh = (args: string[], input?: string): string => execFileSync(args[0] ?? '', args.slice(1), { encoding: 'utf8', ...(input === undefined ? {} : { input }) });
const inNs = (ns: string, args: string[], input?: string) => sh(['ip', 'netns', 'exec', ns, ...args], input);

interface Pair {
  client: string;
  server: string;
  ip: string;
}

/** Moves `dev` from R into `ns` as eth0 with `cidr`, up. */
function adopt(r: string, dev: string, ns: string, cidr: string): void {
  sh(['ip', '-n', r, 'link', 'set', 'dev', dev, 'netns', ns]);
  sh(['ip', '-n', ns, 'link', 'set', 'dev', dev, 'name', 'eth0']);
  sh(['ip', '-n', ns, 'addr', 'add', cidr, 'dev', 'eth0']);
  sh(['ip', '-n', ns, 'link', 'set', 'dev', 'eth0', 'up']);
}

async function call(socket: string, method: string, body: object): Promise<Record<string, unknown>> {
  const r = await pluginCall(method, body, socket);
  const json = r.json as Record<string, unknown> | undefined;
  if (r.status !== 200 || json?.['Err']) throw new Error(`${method}: ${r.text}`);
  return json ?? {};
}

/**
 * Ledgernet's network 0 with endpoints 0 (→ `a`) and 1 (→ `b`) in R; its rules captured with
 * 1 and with 1 + POPULATION networks. Returns the bridge, the rulesets and the pair.
 */
async function ledgernetHost(r: string, a: string, b: string): Promise<{ bridge: string; one: string; many: string; pair: Pair }> {
  const dir = mkdtempSync(join(tmpdir(), 'ledgernet-nfshare-'));
  inNs(r, ['iptables-restore'], DOCKER_BASE);
  const daemon = await startBenchDaemon({ netns: r, dir, extraArgs: ['--firewall', 'iptables', '--reconcile-interval', '0'] });
  try {
    const l = layout(2);
    await call(daemon.socket, 'NetworkDriver.CreateNetwork', createNetworkBody(0));
    for (const [e, ns] of [[0, a], [1, b]] as const) {
      await call(daemon.socket, 'NetworkDriver.CreateEndpoint', createEndpointBody(l, e));
      const spec = endpointSpec(l, e);
      const join = await call(daemon.socket, 'NetworkDriver.Join', { NetworkID: networkId(0), EndpointID: spec.endpointId, SandboxKey: `/var/run/docker/netns/${ns}`, Options: {} });
      adopt(r, (join['InterfaceName'] as { SrcName: string }).SrcName, ns, spec.address ?? '');
    }
    const one = inNs(r, ['iptables-save']);
    for (let i = 1; i <= POPULATION; i++) await call(daemon.socket, 'NetworkDriver.CreateNetwork', createNetworkBody(i));
    const many = inNs(r, ['iptables-save']);
    return { bridge: bridgeName(networkId(0)), one, many, pair: { client: a, server: b, ip: subnetOf(0).host(1).split('/')[0] ?? '' } };
  } finally {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Two veths made as Docker's bridge driver makes them (default queues, txqueuelen 0) on `bridge`. */
function dockerlikePair(r: string, bridge: string, a: string, b: string): Pair {
  for (const [k, ns] of [[20, a], [21, b]] as const) {
    sh(['ip', '-n', r, 'link', 'add', 'name', `vd${k}`, 'txqueuelen', '0', 'type', 'veth', 'peer', 'name', `vdp${k}`, 'txqueuelen', '0']);
    sh(['ip', '-n', r, 'link', 'set', 'dev', `vd${k}`, 'master', bridge, 'up']);
    adopt(r, `vdp${k}`, ns, `10.100.0.${k}/24`);
  }
  return { client: a, server: b, ip: '10.100.0.21' };
}

/** Two macvlan (bridge mode) links on a parent in R (one end of a veth: this kernel has no dummy). */
function macvlanPair(r: string, a: string, b: string): Pair {
  sh(['ip', '-n', r, 'link', 'add', 'mvparent', 'type', 'veth', 'peer', 'name', 'mvparent-peer']);
  sh(['ip', '-n', r, 'link', 'set', 'mvparent-peer', 'up']);
  sh(['ip', '-n', r, 'link', 'set', 'mvparent', 'up']);
  for (const [k, ns] of [[2, a], [3, b]] as const) {
    sh(['ip', '-n', r, 'link', 'add', `mv${k}`, 'link', 'mvparent', 'type', 'macvlan', 'mode', 'bridge']);
    adopt(r, `mv${k}`, ns, `10.101.0.${k}/24`);
  }
  return { client: a, server: b, ip: '10.101.0.3' };
}

interface Variant {
  name: string;
  brnf: 0 | 1;
  rules: string;
  pair: 'ledgernet' | 'dockerlike' | 'macvlan';
}

function variants(bridge: string, ln1: string, ln200: string): Variant[] {
  const subnet = subnetOf(0).pool;
  const measured = { bridge, subnet };
  const pop = Array.from({ length: POPULATION }, (_, i) => populationNet(i));
  const docker = withBridgeNetworks(DOCKER_BASE, [measured]);
  return [
    { name: 'off', brnf: 0, rules: '', pair: 'ledgernet' },
    { name: 'brnf', brnf: 1, rules: '', pair: 'ledgernet' },
    { name: 'ledgernet', brnf: 1, rules: ln1, pair: 'ledgernet' },
    { name: 'ledgernet200', brnf: 1, rules: withBridgeNetworks(ln200, pop), pair: 'ledgernet' },
    { name: 'docker', brnf: 1, rules: docker, pair: 'ledgernet' },
    { name: 'docker200', brnf: 1, rules: withBridgeNetworks(DOCKER_BASE, [measured, ...pop]), pair: 'ledgernet' },
    { name: 'docker-notrack', brnf: 1, rules: docker + notrack(bridge, subnet), pair: 'ledgernet' },
    { name: 'ledgernet-notrack', brnf: 1, rules: ln1 + notrack(bridge, subnet), pair: 'ledgernet' },
    { name: 'veth-dockerlike', brnf: 1, rules: ln1, pair: 'dockerlike' },
    { name: 'macvlan', brnf: 1, rules: ln1, pair: 'macvlan' },
  ];
}

function apply(r: string, v: Variant): void {
  sh(['ip', 'netns', 'exec', r, 'nft', 'flush', 'ruleset']);
  if (v.rules) inNs(r, ['iptables-restore'], v.rules);
  inNs(r, ['sysctl', '-qw', `net.bridge.bridge-nf-call-iptables=${v.brnf}`]);
}

interface Sample {
  mbps: number;
  /** CPU ms the two iperf3 processes spent per GB moved (their getrusage, which on this kernel
   * (tick accounting, no IRQ time accounting) includes the softirq work of the datapath that runs
   * in their context): less noisy than Mbit/s on a loaded machine. */
  cpuPerGB: number;
  /** The whole machine's busy CPU (/proc/stat) per GB: all of the datapath, wherever it ran,
   * plus whatever else the machine did meanwhile (read it on a quiet machine). */
  machinePerGB: number;
}

/** Busy and total jiffies of all CPUs, and how many CPUs. */
function cpuStat(): { busy: number; total: number; n: number } {
  const stat = readFileSync('/proc/stat', 'utf8');
  const f = (stat.split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total, n: stat.split('\n').filter((l) => /^cpu\d/.test(l)).length };
}

interface Iperf3Out {
  end?: { sum_received?: { bits_per_second?: number }; cpu_utilization_percent?: { host_total?: number; remote_total?: number } };
  error?: string;
}

/** One iperf3 run A → B. */
function iperf(p: Pair): Sample {
  const s0 = cpuStat();
  const out = JSON.parse(inNs(p.client, ['iperf3', '-c', p.ip, '-t', String(SECONDS), '-O', '1', '-J'])) as Iperf3Out;
  const s1 = cpuStat();
  const busyCpus = ((s1.busy - s0.busy) / Math.max(1, s1.total - s0.total)) * s0.n;
  const bps = out.end?.sum_received?.bits_per_second;
  const cpu = out.end?.cpu_utilization_percent;
  if (bps === undefined || cpu === undefined) throw new Error(`iperf3: ${out.error ?? 'no result'}`);
  const perGB = (cpus: number) => (cpus / (bps / 8e9)) * 1000;
  return { mbps: bps / 1e6, cpuPerGB: perGB(((cpu.host_total ?? 0) + (cpu.remote_total ?? 0)) / 100), machinePerGB: perGB(busyCpus) };
}

function report(out: Map<string, Sample[]>): void {
  const m = (name: string, k: keyof Sample) => median((out.get(name) ?? []).map((x) => x[k]));
  console.log('| variant | Mbit/s median | min | max | n | / docker | iperf3 CPU ms per GB, median | min | max | / docker | machine CPU ms per GB, median | / docker |\n|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const [name, xs] of out) {
    const t = xs.map((x) => x.mbps);
    const c = xs.map((x) => x.cpuPerGB);
    console.log(
      `| ${name} | ${m(name, 'mbps').toFixed(0)} | ${Math.min(...t).toFixed(0)} | ${Math.max(...t).toFixed(0)} | ${xs.length} | ${(m(name, 'mbps') / m('docker', 'mbps')).toFixed(3)} ` +
        `| ${m(name, 'cpuPerGB').toFixed(0)} | ${Math.min(...c).toFixed(0)} | ${Math.max(...c).toFixed(0)} | ${(m(name, 'cpuPerGB') / m('docker', 'cpuPerGB')).toFixed(3)} ` +
        `| ${m(name, 'machinePerGB').toFixed(0)} | ${(m(name, 'machinePerGB') / m('docker', 'machinePerGB')).toFixed(3)} |`,
    );
  }
}

async function measureAll(r: string, pairs: Record<Variant['pair'], Pair>, vs: Variant[]): Promise<void> {
  const servers: ChildProcess[] = Object.values(pairs).map((p) => spawn('ip', ['netns', 'exec', p.server, 'iperf3', '-s'], { stdio: 'ignore' }));
  try {
    await new Promise((res) => setTimeout(res, 500));
    for (const [name, p] of Object.entries(pairs)) {
      // A warm-up, and the servers are up; `ledgernet`'s rules let every pair through.
      apply(r, vs.find((v) => v.name === 'ledgernet') as Variant);
      try {
        iperf(p);
      } catch (e) {
        throw new Error(`pair ${name}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    for (const v of vs) writeFileSync(join(tmpdir(), `netfilter-share-${v.name}.rules`), v.rules);
    const out = new Map<string, Sample[]>(vs.map((v) => [v.name, []]));
    const load0 = loadavg();
    for (let i = 0; i < ROUNDS; i++)
      for (let j = 0; j < vs.length; j++) {
        const v = vs[(i + j) % vs.length] as Variant;
        apply(r, v);
        out.get(v.name)?.push(iperf(pairs[v.pair]));
      }
    console.log(`netfilter share: ${ROUNDS} rounds of ${SECONDS} s (+1 s omitted); load ${load0.map((x) => x.toFixed(2)).join(' ')} → ${loadavg().map((x) => x.toFixed(2)).join(' ')}\n`);
    report(out);
  } finally {
    for (const s of servers) s.kill('SIGTERM');
  }
}

if (!existsSync('/proc/sys/net/bridge')) throw new Error('br_netfilter is not loaded (modprobe br_netfilter; dockerd loads it)');
await withNetns('lnnfr', (r) =>
  withNetns('lnnfa', (a) =>
    withNetns('lnnfb', (b) =>
      withNetns('lnnfc', (c) =>
        withNetns('lnnfd', (d) =>
          withNetns('lnnfe', (e) =>
            withNetns('lnnff', async (f) => {
              const ln = await ledgernetHost(r, a, b);
              const pairs = { ledgernet: ln.pair, dockerlike: dockerlikePair(r, ln.bridge, c, d), macvlan: macvlanPair(r, e, f) };
              await measureAll(r, pairs, variants(ln.bridge, ln.one, ln.many));
            }),
          ),
        ),
      ),
    ),
  ),
);
