// Row 1: the network's cost of one container, ledgernet against Docker's bridge driver.
import { measure, type BenchOptions, type BenchResult } from '../rows.ts';
import { atMost, containerRuns, createNetwork, measureSubnet, networkCost } from '../docker/measure.ts';
import { withSession } from '../docker/session.ts';

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const rounds = opts.smoke ? 1 : 30;
  return withSession(async (s) => {
    const nets = {
      bridge: await createNetwork(s, 'bridge', measureSubnet(1)),
      ledgernet: await createNetwork(s, 'ledgernet', measureSubnet(2)),
    };
    const runs = await containerRuns(s, nets, rounds);
    const bridge = networkCost(runs, 'bridge', 'network cost, bridge');
    const ledgernet = networkCost(runs, 'ledgernet', 'network cost, ledgernet');
    return {
      row: '1 network cost of one container',
      measurements: [
        measure('`docker run --rm --network none busybox true`', 'ms', runs.none),
        measure('`docker run --rm --network <bridge> busybox true`', 'ms', runs.bridge),
        measure('`docker run --rm --network <ledgernet> busybox true`', 'ms', runs.ledgernet),
        bridge,
        ledgernet,
      ],
      verdicts: [atMost('ledgernet ≤ 0.8 × bridge (network cost)', ledgernet.median / bridge.median, 0.8)],
      notes: [
        `${rounds} rounds after one warm-up of each; every round runs the three variants one after ` +
          'another, in an order that rotates each round. The network cost is median(run on the ' +
          'network) − median(run with `--network none`); its min and max are those of the ' +
          "per-round differences. Ledgernet runs with `--log-level warn` and its default " +
          'reconcile interval.',
      ],
    };
  });
}
