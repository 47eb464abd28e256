// Row 7: TCP throughput between two containers on one network (iperf3), ledgernet against
// Docker's bridge driver, on an empty host and with 200 other networks of each driver present.
import { measure, median, type BenchOptions, type BenchResult } from '../rows.ts';
import { atLeast, createNetwork, DRIVERS, measureSubnet, populate, ratio, rotate, type Driver, type Samples } from '../docker/measure.ts';
import { IPERF3_IMAGE, withSession, type Session } from '../docker/session.ts';
import { containerIp } from '../../test/helpers/docker.ts';

interface Size {
  seconds: number;
  omit: number;
  reps: number;
  population: number;
}

interface Pair {
  client: string;
  server: string;
}

/** A network on `d` with an iperf3 server and an idle client container on it. */
async function pair(s: Session, d: Driver, k: number): Promise<Pair> {
  const net = await createNetwork(s, d, measureSubnet(k), 'tp');
  const srv = s.name(`iperf3-server-${d}`);
  const client = s.name(`iperf3-client-${d}`);
  await s.docker(['run', '-d', '--name', srv, '--network', net, IPERF3_IMAGE, 'iperf3', '-s']);
  await s.docker(['run', '-d', '--name', client, '--network', net, IPERF3_IMAGE, 'sleep', '3600']);
  return { client, server: await containerIp(srv, net) };
}

interface Iperf3Json {
  end?: { sum_received?: { bits_per_second?: number } };
  error?: string;
}

/** One iperf3 run from the client to the server; Mbit/s the server received. */
async function throughput(s: Session, p: Pair, size: Size): Promise<number> {
  const args = ['exec', p.client, 'iperf3', '-c', p.server, '-t', String(size.seconds), '-O', String(size.omit), '-J'];
  const out = JSON.parse(await s.docker(args, (size.seconds + size.omit + 30) * 1000)) as Iperf3Json;
  const bps = out.end?.sum_received?.bits_per_second;
  if (bps === undefined || !Number.isFinite(bps)) throw new Error(`iperf3 gave no result: ${out.error ?? 'no end.sum_received'}`);
  return bps / 1e6;
}

/** Waits until the server accepts a test (it starts listening shortly after `docker run -d`). */
async function warmUp(s: Session, p: Pair): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await throughput(s, p, { seconds: 1, omit: 0, reps: 1, population: 0 });
      return;
    } catch (e) {
      if (i >= 20) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

async function rounds(s: Session, pairs: Record<Driver, Pair>, size: Size): Promise<Samples<Driver>> {
  const out: Samples<Driver> = { bridge: [], ledgernet: [] };
  for (let i = 0; i < size.reps; i++) for (const d of rotate(DRIVERS, i)) out[d].push(await throughput(s, pairs[d], size));
  return out;
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const size: Size = opts.smoke ? { seconds: 1, omit: 0, reps: 1, population: 1 } : { seconds: 5, omit: 1, reps: 6, population: 200 };
  return withSession(async (s) => {
    const pairs = { bridge: await pair(s, 'bridge', 5), ledgernet: await pair(s, 'ledgernet', 6) };
    for (const d of DRIVERS) await warmUp(s, pairs[d]);
    const empty = await rounds(s, pairs, size);
    const populateSeconds = await populate(s, size.population);
    const full = await rounds(s, pairs, size);
    const m = (xs: Samples<Driver>, d: Driver) => median(xs[d]);
    const n = size.population;
    return {
      row: '7 TCP throughput between two containers',
      measurements: [
        measure('iperf3, bridge, 0 other networks', 'Mbit/s', empty.bridge),
        measure('iperf3, ledgernet, 0 other networks', 'Mbit/s', empty.ledgernet),
        measure(`iperf3, bridge, ${n} other networks of each driver`, 'Mbit/s', full.bridge),
        measure(`iperf3, ledgernet, ${n} other networks of each driver`, 'Mbit/s', full.ledgernet),
        ratio(`bridge at ${n} / bridge at 0`, m(full, 'bridge') / m(empty, 'bridge')),
      ],
      verdicts: [
        atLeast('ledgernet ≥ 0.97 × bridge (0 other networks)', m(empty, 'ledgernet') / m(empty, 'bridge'), 0.97),
        atLeast(`ledgernet at ${n} networks ≥ 0.95 × ledgernet at 0`, m(full, 'ledgernet') / m(empty, 'ledgernet'), 0.95),
        atLeast(`ledgernet ≥ 1.8 × bridge (${n} networks of each driver)`, m(full, 'ledgernet') / m(full, 'bridge'), 1.8),
      ],
      notes: [
        'Per driver one network with two containers of the iperf3 image (busybox plus Debian\'s ' +
          '`iperf3` and the libraries `ldd` lists, built by scripts/test-env.sh): `iperf3 -s` in ' +
          `one, and in the other \`iperf3 -c <server> -t ${size.seconds} -O ${size.omit} -J\` ` +
          '(`docker exec`), whose received bits per second count. ' +
          `${size.reps} runs per driver, alternating, first on an otherwise empty host, then the same ` +
          `containers again after ${n} empty networks of each driver were created (${populateSeconds.toFixed(0)} s).`,
      ],
    };
  });
}
