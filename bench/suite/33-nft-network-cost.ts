// Issue 13, row 3: `docker network create`+`rm` and the network cost of one container
// (`docker run --rm … true`) under the nftables backend against the iptables one. One daemon at a
// time (one ledgernet per host), so the backends take turns round by round, the order swapped
// every round (iptables first, then nftables first), each round a fresh daemon and network: a
// change of machine load during the run falls on both alike. Target: nftables ≤ iptables for
// both (ratio of the medians). `docker run --rm` is mostly Docker's own work (~400 ms, of which
// ledgernet's calls are ~20 ms), so the CPU time of ledgernet per container (/proc: its threads',
// and the `ip` processes it starts) and its time in Docker's calls are reported beside it; the
// CPU time does not depend on what else the machine runs.
import { execa } from 'execa';
import { readdir, readFile } from 'node:fs/promises';
import { measure, median, type BenchOptions, type BenchResult } from '../rows.ts';
import { IMAGE, cleanup, docker, startDaemon, time, type BenchDaemon } from '../firewall-daemon.ts';

const PREFIX = 'lnbench33';
const BACKENDS = ['iptables', 'nftables'] as const;
type Backend = (typeof BACKENDS)[number];

interface Samples {
  container: number[];
  /** The median container of each round (the rounds pair the backends). */
  rounds: number[];
  network: number[];
  /** ms of CPU of ledgernet's threads per container, one value per round. */
  cpu: number[];
  cpuTotalMs: number;
  /** ms of CPU of the processes it started, all rounds. */
  childrenTotalMs: number;
  /** ms ledgernet spent answering Docker's calls per container, one value per round. */
  calls: number[];
  containers: number;
}

/** Docker's calls to ledgernet for one `docker run --rm` (IPAM's address calls are answered from memory). */
const METHODS = ['CreateEndpoint', 'Join', 'ProgramExternalConnectivity', 'EndpointOperInfo', 'RevokeExternalConnectivity', 'Leave', 'DeleteEndpoint'].map((m) => `NetworkDriver.${m}`);

const callsMs = async (d: BenchDaemon): Promise<number> => (await Promise.all(METHODS.map((m) => d.callTime(m)))).reduce((sum, c) => sum + c.sumMs, 0);

/**
 * CPU time (ms) of `pid`: its threads' run time from /proc/<pid>/task/<tid>/schedstat (ns, exact;
 * the main thread, libuv's pool, the nft worker), and its waited-for children's (the `ip` it
 * starts: /proc/<pid>/stat's cutime + cstime, in clock ticks).
 */
async function cpuMs(pid: number, tick: number): Promise<{ threads: number; children: number }> {
  const tids = await readdir(`/proc/${pid}/task`);
  const ns = await Promise.all(tids.map((t) => readFile(`/proc/${pid}/task/${t}/schedstat`, 'utf8').then((x) => Number(x.split(' ')[0]), () => 0)));
  const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? [];
  return { threads: ns.reduce((a, b) => a + b, 0) / 1e6, children: (Number(f[13] ?? 0) + Number(f[14] ?? 0)) * tick };
}

/** One round of one backend: a fresh daemon and network, a container to warm up, then the measured ones. */
async function session(firewall: Backend, containers: number, tick: number, out: Samples): Promise<void> {
  const daemon = await startDaemon(firewall);
  const run = () => docker('run', '--rm', '--network', `${PREFIX}-net`, IMAGE, 'true');
  try {
    await docker('network', 'create', '-d', 'ledgernet', '--subnet', '10.231.236.0/24', `${PREFIX}-net`);
    await run();
    const [cpu0, calls0] = [await cpuMs(daemon.pid, tick), await callsMs(daemon)];
    const mine: number[] = [];
    for (let i = 0; i < containers; i++) mine.push(await time(run));
    out.container.push(...mine);
    out.rounds.push(median(mine));
    const cpu1 = await cpuMs(daemon.pid, tick);
    const cpu = cpu1.threads - cpu0.threads;
    out.childrenTotalMs += cpu1.children - cpu0.children;
    out.calls.push(((await callsMs(daemon)) - calls0) / containers);
    out.cpu.push(cpu / containers);
    out.cpuTotalMs += cpu;
    out.containers += containers;
    for (let i = 0; i < 2; i++) {
      out.network.push(await time(async () => {
        await docker('network', 'create', '-d', 'ledgernet', '--subnet', '10.231.237.0/24', `${PREFIX}-n2`);
        await docker('network', 'rm', `${PREFIX}-n2`);
      }));
    }
  } finally {
    await cleanup(PREFIX);
    await daemon.stop();
  }
}

/** A 95 % bootstrap interval of median(a) / median(b) (fixed seed: the same samples give the same interval). */
function ratioInterval(a: readonly number[], b: readonly number[]): [number, number] {
  let seed = 33;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const resample = (xs: readonly number[]) => xs.map(() => xs[Math.floor(rand() * xs.length)] ?? 0);
  const ratios = Array.from({ length: 2000 }, () => median(resample(a)) / median(resample(b))).sort((x, y) => x - y);
  return [ratios[50] ?? Number.NaN, ratios[1949] ?? Number.NaN];
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const rounds = opts.smoke ? 1 : 16;
  const containers = opts.smoke ? 1 : 5;
  const tick = 1000 / Number((await execa('getconf', ['CLK_TCK'])).stdout);
  const s = Object.fromEntries(BACKENDS.map((b) => [b, { container: [], rounds: [], network: [], cpu: [], calls: [], cpuTotalMs: 0, childrenTotalMs: 0, containers: 0 } as Samples])) as Record<Backend, Samples>;
  for (let r = 0; r < rounds; r++) {
    for (const fw of r % 2 === 0 ? BACKENDS : [...BACKENDS].reverse()) await session(fw, containers, tick, s[fw]);
  }
  const { iptables: ipt, nftables: nft } = s;
  const ratio = (k: 'container' | 'network') => median(nft[k]) / median(ipt[k]);
  const [lo, hi] = ratioInterval(nft.container, ipt.container);
  const cpuPer = (x: Samples) => x.cpuTotalMs / x.containers;
  const childPer = (x: Samples) => x.childrenTotalMs / x.containers;
  const paired = median(nft.rounds.map((v, i) => v / (ipt.rounds[i] ?? Number.NaN)));
  const calls = median(nft.calls) / median(ipt.calls);
  return {
    row: '13.3 network create+rm and a container, nftables vs iptables',
    measurements: [
      measure('docker run --rm (iptables)', 'ms', ipt.container),
      measure('docker run --rm (nftables)', 'ms', nft.container),
      measure('network create+rm (iptables)', 'ms', ipt.network),
      measure('network create+rm (nftables)', 'ms', nft.network),
      measure("CPU of ledgernet's threads per container, per round (iptables)", 'ms', ipt.cpu),
      measure("CPU of ledgernet's threads per container, per round (nftables)", 'ms', nft.cpu),
      measure("ledgernet's time in Docker's calls per container, per round (iptables)", 'ms', ipt.calls),
      measure("ledgernet's time in Docker's calls per container, per round (nftables)", 'ms', nft.calls),
    ],
    verdicts: [
      { target: 'a container under nftables ≤ iptables (median ratio)', value: ratio('container'), met: ratio('container') <= 1 },
      { target: 'network create+rm under nftables ≤ iptables (median ratio)', value: ratio('network'), met: ratio('network') <= 1 },
    ],
    notes: [
      `${rounds} rounds; in each, both backends in turn (the order swapped every round), each with a fresh daemon and network, one warm-up container, then ${containers} measured \`docker run --rm\` and 2 network create+rm.`,
      `A container, nftables over iptables: ratio of medians ${ratio('container').toFixed(3)}, 95 % bootstrap interval ${lo.toFixed(3)}–${hi.toFixed(3)}; median of the rounds' ratios ${paired.toFixed(3)}. ledgernet's time in Docker's calls (\`ledgernet_request_duration_seconds\`), ratio of medians ${calls.toFixed(3)}. CPU per container over all rounds, from /proc: ledgernet's threads (schedstat) iptables ${cpuPer(ipt).toFixed(2)} ms, nftables ${cpuPer(nft).toFixed(2)} ms (ratio ${(cpuPer(nft) / cpuPer(ipt)).toFixed(3)}); the processes it started (cutime + cstime, ticks of ${tick} ms) iptables ${childPer(ipt).toFixed(1)} ms, nftables ${childPer(nft).toFixed(1)} ms.`,
    ],
  };
}
