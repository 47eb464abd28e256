// Row 2: `docker network create` + `rm`, ledgernet against Docker's bridge driver.
import { measure, median, type BenchOptions, type BenchResult } from '../rows.ts';
import { atMost, createRmRounds } from '../docker/measure.ts';
import { withSession } from '../docker/session.ts';

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const rounds = opts.smoke ? 1 : 30;
  return withSession(async (s) => {
    const t = await createRmRounds(s, rounds);
    return {
      row: '2 network create + rm',
      measurements: [
        measure('`docker network create` + `rm`, bridge', 'ms', t.bridge),
        measure('`docker network create` + `rm`, ledgernet', 'ms', t.ledgernet),
      ],
      verdicts: [atMost('ledgernet ≤ 0.6 × bridge', median(t.ledgernet) / median(t.bridge), 0.6)],
      notes: [
        `${rounds} rounds after one warm-up of each, the two drivers in alternating order; each ` +
          'sample is the time of `docker network create -d <driver> --subnet …` plus that of ' +
          '`docker network rm`, both as the docker CLI returns.',
      ],
    };
  });
}
