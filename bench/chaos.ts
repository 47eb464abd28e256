// Crash chaos, big run (figures for RELIABILITY.md "## Crash chaos"): the scenario of
// test/e2e/chaos.test.ts at a chosen size, printed as one table. Run as root with dockerd up:
//   npm run bench:chaos            (CHAOS_OPS=1000 CHAOS_KILLS=30 CHAOS_SUP_OPS=200 CHAOS_SUP_KILLS=10 CHAOS_CONCURRENCY=4
//                                   CHAOS_PHASES=worker,whole,bridge CHAOS_HOLDER=1)
// CHAOS_HOLDER=1 (default): in the whole-daemon phase the plugin socket is held across the kills as
// systemd's ledgernet.socket holds it (test/helpers/socket-holder.ts); 0: each daemon binds it.
// It takes the host test lock (see package.json) and cleans up after itself.
import { execa } from 'execa';
import { runScenario, pause, type ScenarioResult } from '../test/helpers/chaos.ts';
import { ledgernetCli, startDaemon, type DaemonHandle } from '../test/helpers/daemon.ts';
import { findLeaks } from '../test/helpers/leaks.ts';
import { holdSocket, type SocketHolder } from '../test/helpers/socket-holder.ts';

/** Which runs: any of worker, whole, bridge (comma-separated; default all three); the others do nothing. */
const PHASES = new Set((process.env['CHAOS_PHASES'] ?? 'worker,whole,bridge').split(','));
const env = (k: string, d: number, phase: string) => (PHASES.has(phase) ? Number(process.env[k] ?? d) : 0);
const OPS = env('CHAOS_OPS', 1000, 'worker');
const KILLS = env('CHAOS_KILLS', 30, 'worker');
const SUP_OPS = env('CHAOS_SUP_OPS', 200, 'whole');
const SUP_KILLS = env('CHAOS_SUP_KILLS', 10, 'whole');
const BRIDGE_OPS = env('CHAOS_OPS', 1000, 'bridge');
const CONC = Number(process.env['CHAOS_CONCURRENCY'] ?? 4);
const HOLDER = process.env['CHAOS_HOLDER'] !== '0';
const ARGS = ['--reconcile-interval', '2', '--log-level', 'warn'];

const row = (name: string, r: ScenarioResult, kills: number, leaks: number, verify: string) =>
  `| ${name} | ${r.results.length} | ${kills} | ${r.failures.length} | ${r.duplicateAddresses.length} | ${r.pings - r.unreachable.length}/${r.pings} | ${r.networkRmFailures.length} | ${leaks} | ${verify} | ${Math.round(r.ms / 1000)} |`;

async function ledgerChecks(d: DaemonHandle): Promise<{ leaks: number; verify: string }> {
  await new Promise((r) => setTimeout(r, 5000)); // deletes converge in the background
  const leaks = await findLeaks();
  const peers = (JSON.parse((await execa('ip', ['-j', 'link', 'show'])).stdout) as { ifname: string }[]).filter((l) => /^ln[pi]-/.test(l.ifname));
  for (const l of [...leaks, ...peers.map((p) => p.ifname)]) console.error(`LEAK ${l}`);
  const v = await ledgernetCli(['events', 'verify', '--state-dir', d.stateDir]);
  return { leaks: leaks.length + peers.length, verify: v.exitCode === 0 ? 'ok' : 'FAILED' };
}

/** The supervisor's log lines about Docker's empty-body retries (its messages, with the method). */
function retryMessages(logs: string): string[] {
  return logs
    .split('\n')
    .filter((l) => /empty-body retr|from the request journal|cut-off calls/.test(l))
    .map((l) => {
      try {
        const j = JSON.parse(l) as { msg?: string; method?: string };
        return `${j.method ?? ''} ${j.msg ?? ''}`.trim();
      } catch {
        return l.slice(0, 160);
      }
    });
}

async function main(): Promise<void> {
  const retryLines: string[] = [];
  const lines: string[] = [];
  const failures: string[] = [];
  let d = await startDaemon({ extraArgs: ARGS });
  const { stateDir } = d;
  let holder: SocketHolder | null = null;
  try {
    let kills = 0;
    const r1 = await runScenario({
      driver: 'ledgernet',
      subnets: ['10.231.210.0/24', '10.231.211.0/24', '10.231.212.0/24'],
      networkArgs: [[], ['--ipam-driver', 'ledgernet'], []],
      operations: OPS,
      concurrency: CONC,
      log: (l) => console.error(l),
      chaos: async () => {
        const gap = Math.max(1000, Math.round((OPS / CONC) * 300 / KILLS));
        while (kills < KILLS) {
          await pause(300, 2 * gap);
          if ((await d.kill9Worker()) !== null) kills += 1;
        }
      },
    });
    const c1 = await ledgerChecks(d);
    lines.push(row('ledgernet, worker SIGKILLed', r1, kills, c1.leaks, c1.verify));
    failures.push(...r1.failures.map((f) => f.stderr));

    let supKills = 0;
    if (HOLDER && SUP_OPS > 0) {
      await d.terminate();
      holder = await holdSocket(d.socket);
      d = await startDaemon({ stateDir, extraArgs: ARGS, keepStateDir: false, launcher: holder.launcher });
    }
    const launcher = holder ? { launcher: holder.launcher } : {};
    const r2 = await runScenario({
      driver: 'ledgernet',
      subnets: ['10.231.213.0/24', '10.231.214.0/24', '10.231.215.0/24'],
      networkArgs: [[], ['--ipam-driver', 'ledgernet'], []],
      operations: SUP_OPS,
      concurrency: CONC,
      log: (l) => console.error(l),
      chaos: async () => {
        while (supKills < SUP_KILLS) {
          await pause(1000, 5000);
          await d.kill9All();
          retryLines.push(...retryMessages(d.logs()));
          supKills += 1;
          d = await startDaemon({ stateDir, extraArgs: ARGS, keepStateDir: false, ...launcher });
        }
      },
    });
    retryLines.push(...retryMessages(d.logs()));
    const c2 = await ledgerChecks(d);
    lines.push(row(`ledgernet, whole daemon SIGKILLed${holder ? ', socket held (socket activation)' : ''}`, r2, supKills, c2.leaks, c2.verify));
    failures.push(...r2.failures.map((f) => f.stderr));

    const r3 = await runScenario({
      driver: 'bridge',
      subnets: ['10.232.210.0/24', '10.232.211.0/24', '10.232.212.0/24'],
      operations: BRIDGE_OPS,
      concurrency: CONC,
      log: (l) => console.error(l),
    });
    lines.push(row('bridge (control), no kills', r3, 0, 0, '-'));
    failures.push(...r3.failures.map((f) => f.stderr));
  } finally {
    await d.stop();
    await holder?.close();
  }
  console.log(`\nconcurrency ${CONC}\n`);
  console.log('| run | operations | SIGKILLs | failed | addresses held twice | neighbour pings ok | networks not removable | leaks | events verify | s |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---|---:|');
  for (const l of lines) console.log(l);
  for (const f of failures) console.log(`failure: ${f}`);
  const counts = new Map<string, number>();
  for (const m of retryLines) counts.set(m, (counts.get(m) ?? 0) + 1);
  for (const [m, n] of counts) console.log(`supervisor, ${n}x: ${m}`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
