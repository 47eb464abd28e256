// Issue 13, row 3: `docker network create`+`rm` and the network cost of one container
// (`docker run --rm … true`) under the nftables backend against the iptables one. One daemon at a
// time (one ledgernet per host), so the backends take turns in blocks: iptables, nftables,
// iptables, nftables. Target: nftables ≤ iptables for both (medians).
import { measure, median, type BenchOptions, type BenchResult } from '../rows.ts';
import { IMAGE, cleanup, docker, startDaemon, time } from '../firewall-daemon.ts';

const PREFIX = 'lnbench33';

async function block(firewall: 'iptables' | 'nftables', rounds: number, out: Record<string, number[]>): Promise<void> {
  const daemon = await startDaemon(firewall);
  const add = (k: string, v: number) => (out[k] ??= []).push(v);
  try {
    await docker('network', 'create', '-d', 'ledgernet', '--subnet', '10.231.236.0/24', `${PREFIX}-net`);
    await docker('run', '--rm', '--network', `${PREFIX}-net`, IMAGE, 'true');
    for (let i = 0; i < rounds; i++) {
      add(`container ${firewall}`, await time(() => docker('run', '--rm', '--network', `${PREFIX}-net`, IMAGE, 'true')));
      add(`network ${firewall}`, await time(async () => {
        await docker('network', 'create', '-d', 'ledgernet', '--subnet', '10.231.237.0/24', `${PREFIX}-n2`);
        await docker('network', 'rm', `${PREFIX}-n2`);
      }));
    }
  } finally {
    await cleanup(PREFIX);
    await daemon.stop();
  }
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const rounds = opts.smoke ? 1 : 8;
  const t: Record<string, number[]> = {};
  for (const fw of ['iptables', 'nftables', 'iptables', 'nftables'] as const) await block(fw, rounds, t);
  const get = (k: string) => t[k] ?? [];
  const ratio = (k: string) => median(get(`${k} nftables`)) / median(get(`${k} iptables`));
  return {
    row: '13.3 network create+rm and a container, nftables vs iptables',
    measurements: [
      measure('docker run --rm (iptables)', 'ms', get('container iptables')),
      measure('docker run --rm (nftables)', 'ms', get('container nftables')),
      measure('network create+rm (iptables)', 'ms', get('network iptables')),
      measure('network create+rm (nftables)', 'ms', get('network nftables')),
    ],
    verdicts: [
      { target: 'a container under nftables ≤ iptables (median ratio)', value: ratio('container'), met: ratio('container') <= 1 },
      { target: 'network create+rm under nftables ≤ iptables (median ratio)', value: ratio('network'), met: ratio('network') <= 1 },
    ],
    notes: [`${rounds * 2} rounds per backend in blocks of ${rounds} (iptables, nftables, iptables, nftables), one ledgernet network present.`],
  };
}
