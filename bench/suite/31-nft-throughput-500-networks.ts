// Issue 13, row 1: iperf3 between two containers of one ledgernet network with 0 and with 500
// other ledgernet networks present, per firewall backend. Every forwarded packet passes the
// firewall: with iptables its rules grow with the networks (isolation pairs), with nftables the
// forward chain is two verdict-map lookups whatever their number. Target: nftables keeps ≥ 0.97
// of its 0-network speed. iperf3 is the host's, run in the containers' network namespaces
// (`nsenter -n`), since the test image has none.
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import { measure, median, type BenchOptions, type BenchResult } from '../rows.ts';
import { IMAGE, cleanup, docker, startDaemon } from '../firewall-daemon.ts';

const PREFIX = 'lnbench31';

const pidOf = async (c: string) => (await docker('inspect', '-f', '{{.State.Pid}}', c)).stdout.trim();

/** Mbit/s of `seconds` of TCP from client to server container, `runs` times. */
async function iperf(server: string, client: string, serverIp: string, seconds: number, runs: number): Promise<number[]> {
  const srv = execa('nsenter', ['-t', await pidOf(server), '-n', 'iperf3', '-s'], { reject: false });
  const out: number[] = [];
  try {
    await new Promise((r) => setTimeout(r, 500));
    for (let i = 0; i < runs; i++) {
      const r = await execa('nsenter', ['-t', await pidOf(client), '-n', 'iperf3', '-c', serverIp, '-t', String(seconds), '-J'], { reject: false });
      const bps = (JSON.parse(r.stdout || '{}') as { end?: { sum_received?: { bits_per_second?: number } } }).end?.sum_received?.bits_per_second;
      if (bps) out.push(bps / 1e6);
    }
  } finally {
    srv.kill('SIGTERM');
    await srv;
  }
  return out;
}

async function backend(firewall: 'iptables' | 'nftables', others: number, seconds: number, runs: number): Promise<{ zero: number[]; many: number[]; createS: number }> {
  const daemon = await startDaemon(firewall);
  try {
    await docker('network', 'create', '-d', 'ledgernet', '--subnet', '10.231.240.0/24', `${PREFIX}-net`);
    const run = (name: string) => docker('run', '-d', '--name', `${PREFIX}-${name}`, '--network', `${PREFIX}-net`, IMAGE, 'sleep', '600');
    await run('srv');
    await run('cli');
    const ip = (await docker('inspect', '-f', `{{(index .NetworkSettings.Networks "${PREFIX}-net").IPAddress}}`, `${PREFIX}-srv`)).stdout.trim();
    const zero = await iperf(`${PREFIX}-srv`, `${PREFIX}-cli`, ip, seconds, runs);
    // 8 creates at a time (as Compose does): the daemon folds concurrent calls into one pass.
    const t0 = performance.now();
    for (let i = 0; i < others; i += 8) {
      const batch = Array.from({ length: Math.min(8, others - i) }, (_, j) => i + j);
      await Promise.all(batch.map((k) => docker('network', 'create', '-d', 'ledgernet', '--subnet', `10.${232 + Math.floor(k / 256)}.${k % 256}.0/24`, `${PREFIX}-o${k}`)));
    }
    const createS = (performance.now() - t0) / 1000;
    const many = await iperf(`${PREFIX}-srv`, `${PREFIX}-cli`, ip, seconds, runs);
    return { zero, many, createS };
  } finally {
    await cleanup(PREFIX);
    await daemon.stop();
  }
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const others = opts.smoke ? 3 : 500;
  const [seconds, runs] = opts.smoke ? [1, 1] : [5, 3];
  const nft = await backend('nftables', others, seconds, runs);
  const ipt = await backend('iptables', others, seconds, runs);
  const kept = (r: { zero: number[]; many: number[] }) => median(r.many) / median(r.zero);
  return {
    row: `13.1 iperf3 between two containers with 0 and ${others} networks`,
    measurements: [
      measure('nftables, 0 other networks', 'Mbit/s', nft.zero),
      measure(`nftables, ${others} other networks`, 'Mbit/s', nft.many),
      measure('iptables, 0 other networks', 'Mbit/s', ipt.zero),
      measure(`iptables, ${others} other networks`, 'Mbit/s', ipt.many),
    ],
    verdicts: [
      { target: `nftables keeps ≥ 0.97 of its 0-network speed with ${others} networks`, value: kept(nft), met: kept(nft) >= 0.97 },
    ],
    notes: [
      `iperf3 -t ${seconds}, ${runs} runs each, TCP between two containers of one network, from the host's iperf3 in their namespaces. ` +
        `iptables keeps ${kept(ipt).toFixed(2)} of its speed for comparison. Other networks use 10.232.0.0/15 /24s (no containers), ` +
        `created 8 at a time: ${Math.round(nft.createS)} s under nftables, ${Math.round(ipt.createS)} s under iptables.`,
    ],
  };
}
