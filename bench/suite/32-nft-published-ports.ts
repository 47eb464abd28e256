// Issue 13, row 2: 50 containers started one after another, each with 10 separately published
// ports (`-p` ×10), under each firewall backend. ProgramExternalConnectivity's own time per
// container is read from the daemon's metrics (the histogram's sum grows by exactly that call).
// Targets: under nftables the last containers' call takes ≤ 1.2 × the first ones' (a port is a
// map element, so the 50th costs what the 1st did), and the total is ≤ 0.5 × iptables'.
import { measure, median, type BenchOptions, type BenchResult } from '../rows.ts';
import { IMAGE, cleanup, docker, startDaemon } from '../firewall-daemon.ts';

const PREFIX = 'lnbench32';
const PEC = 'NetworkDriver.ProgramExternalConnectivity';

/** PEC time (ms) of each container, in start order. */
async function runBackend(firewall: 'iptables' | 'nftables', containers: number): Promise<number[]> {
  const daemon = await startDaemon(firewall);
  const times: number[] = [];
  try {
    await docker('network', 'create', '-d', 'ledgernet', '--subnet', '10.231.232.0/22', `${PREFIX}-net`);
    for (let i = 0; i < containers; i++) {
      const ports = Array.from({ length: 10 }, (_, j) => ['-p', `${21000 + i * 10 + j}:${80 + j}`]).flat();
      const before = await daemon.callTime(PEC);
      await docker('run', '-d', '--name', `${PREFIX}-${firewall}-${i}`, '--network', `${PREFIX}-net`, ...ports, IMAGE, 'sleep', '600');
      const after = await daemon.callTime(PEC);
      times.push(after.sumMs - before.sumMs);
    }
  } finally {
    await cleanup(PREFIX);
    await daemon.stop();
  }
  return times;
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const n = opts.smoke ? 3 : 50;
  const edge = opts.smoke ? 1 : 5;
  const ipt = await runBackend('iptables', n);
  const nft = await runBackend('nftables', n);
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const growth = median(nft.slice(-edge)) / median(nft.slice(0, edge));
  const share = sum(nft) / sum(ipt);
  return {
    row: '13.2 published ports: 50 containers × 10 ports',
    measurements: [
      measure('ProgramExternalConnectivity, iptables (per container)', 'ms', ipt),
      measure('ProgramExternalConnectivity, nftables (per container)', 'ms', nft),
      measure(`nftables: last ${edge} over first ${edge}`, 'x', [growth]),
      measure('nftables total over iptables total', 'x', [share]),
    ],
    verdicts: [
      { target: `nftables: the ${n}th container's ProgramExternalConnectivity ≤ 1.2 × the 1st's (medians of ${edge})`, value: growth, met: growth <= 1.2 },
      { target: 'nftables total ≤ 0.5 × iptables total', value: share, met: share <= 0.5 },
    ],
    notes: [
      `${n} containers, each \`docker run -d\` with 10 \`-p host:container\` on one ledgernet network, one backend after the other in one run. ` +
        'Each call\'s time is the growth of `ledgernet_request_duration_seconds_sum{method="NetworkDriver.ProgramExternalConnectivity"}` across its `docker run`. ' +
        `iptables: total ${Math.round(sum(ipt))} ms; nftables: total ${Math.round(sum(nft))} ms; ` +
        `nftables, medians of the first and last ${edge}: ${median(nft.slice(0, edge)).toFixed(1)} and ${median(nft.slice(-edge)).toFixed(1)} ms (iptables: ${median(ipt.slice(0, edge)).toFixed(1)} and ${median(ipt.slice(-edge)).toFixed(1)} ms).`,
    ],
  };
}
