// Row 10: rows 1 and 2 again with 200 other networks of each driver present, in the same run as
// with none: how ledgernet's costs grow as the host fills up, the bridge driver's beside them.
import { measure, median, type BenchOptions, type BenchResult, type Measurement } from '../rows.ts';
import {
  atMost,
  containerRuns,
  createNetwork,
  createRmRounds,
  measureSubnet,
  networkCost,
  populate,
  ratio,
  type Driver,
  type Samples,
  type Variant,
} from '../docker/measure.ts';
import { withSession, type Session } from '../docker/session.ts';

interface Phase {
  runs: Samples<Variant>;
  createRm: Samples<Driver>;
}

async function phase(s: Session, nets: Record<Driver, string>, runRounds: number, crRounds: number): Promise<Phase> {
  return { runs: await containerRuns(s, nets, runRounds), createRm: await createRmRounds(s, crRounds) };
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const size = opts.smoke ? { runRounds: 1, crRounds: 1, population: 1 } : { runRounds: 30, crRounds: 20, population: 200 };
  const n = size.population;
  return withSession(async (s) => {
    const nets = {
      bridge: await createNetwork(s, 'bridge', measureSubnet(7)),
      ledgernet: await createNetwork(s, 'ledgernet', measureSubnet(8)),
    };
    const at0 = await phase(s, nets, size.runRounds, size.crRounds);
    const populateSeconds = await populate(s, n);
    const atN = await phase(s, nets, size.runRounds, size.crRounds);
    const cost = (p: Phase, d: Driver, at: number) => networkCost(p.runs, d, `network cost, ${d}, ${at} networks`);
    const costs = { b0: cost(at0, 'bridge', 0), l0: cost(at0, 'ledgernet', 0), bN: cost(atN, 'bridge', n), lN: cost(atN, 'ledgernet', n) };
    const cr = (p: Phase, d: Driver, at: number): Measurement =>
      measure(`\`docker network create\` + \`rm\`, ${d}, ${at} networks`, 'ms', p.createRm[d]);
    const crGrowth = (d: Driver) => median(atN.createRm[d]) / median(at0.createRm[d]);
    return {
      row: `10 rows 1 and 2 with ${n} other networks of each driver`,
      measurements: [
        measure(`\`docker run --rm --network none\`, 0 networks`, 'ms', at0.runs.none),
        measure(`\`docker run --rm --network none\`, ${n} networks`, 'ms', atN.runs.none),
        costs.b0,
        costs.bN,
        costs.l0,
        costs.lN,
        cr(at0, 'bridge', 0),
        cr(atN, 'bridge', n),
        cr(at0, 'ledgernet', 0),
        cr(atN, 'ledgernet', n),
        ratio(`network cost growth 0 → ${n}, bridge`, costs.bN.median / costs.b0.median),
        ratio(`create + rm growth 0 → ${n}, bridge`, crGrowth('bridge')),
        ratio(`network cost at ${n}, ledgernet / bridge`, costs.lN.median / costs.bN.median),
        ratio(`create + rm at ${n}, ledgernet / bridge`, median(atN.createRm.ledgernet) / median(atN.createRm.bridge)),
      ],
      verdicts: [
        atMost(`ledgernet network cost grows ≤ 10 % (${n} / 0 networks)`, costs.lN.median / costs.l0.median, 1.1),
        atMost(`ledgernet create + rm grows ≤ 10 % (${n} / 0 networks)`, crGrowth('ledgernet'), 1.1),
      ],
      notes: [
        `Rows 1 (${size.runRounds} rounds) and 2 (${size.crRounds} rounds) measured as there, first on ` +
          `an otherwise empty host, then after ${n} empty networks of each driver were created ` +
          `(${populateSeconds.toFixed(0)} s), with the same two measurement networks. Growth is the ` +
          `median at ${n} networks over the median at 0.`,
      ],
    };
  });
}
