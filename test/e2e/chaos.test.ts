// Crash chaos (issue 9, finding 9): container operations (run, connect, disconnect, stop, rm) at
// concurrency 4 on three ledgernet networks while the daemon is SIGKILLed at random moments:
// first its worker (the supervisor keeps the socket and starts a new one), then, in a smaller
// phase, the whole daemon (supervisor and worker; the test starts it again, with the plugin socket
// held across the kills as systemd's ledgernet.socket holds it: test/helpers/socket-holder.ts). Every Docker
// operation must succeed, no address may be held twice, every running container must reach its
// neighbours, every network must be removable, nothing may leak, and the log must verify. The
// same scenario runs with Docker's bridge driver as the control (no kills).
// Sizes: CHAOS_OPS (default 300), CHAOS_KILLS (10), CHAOS_SUP_OPS (60), CHAOS_SUP_KILLS (3).
// The big run with figures for RELIABILITY.md is bench/chaos.ts (`npm run bench:chaos`).
import assert from 'node:assert/strict';
import { execa } from 'execa';
import { after, before, describe, test } from 'node:test';
import { runScenario, pause, type ScenarioResult } from '../helpers/chaos.ts';
import { cleanupAll } from '../helpers/docker.ts';
import { ledgernetCli, startDaemon, stopAllDaemons, type DaemonHandle } from '../helpers/daemon.ts';
import { assertNoLeaks, waitNoLeaks } from '../helpers/leaks.ts';
import { holdSocket, type SocketHolder } from '../helpers/socket-holder.ts';

const OPS = Number(process.env['CHAOS_OPS'] ?? 300);
const KILLS = Number(process.env['CHAOS_KILLS'] ?? 10);
const SUP_OPS = Number(process.env['CHAOS_SUP_OPS'] ?? 60);
const SUP_KILLS = Number(process.env['CHAOS_SUP_KILLS'] ?? 3);
// The log is archived as it grows (every ~150 events), so kills land during archives too.
const DAEMON_ARGS = ['--reconcile-interval', '2', '--log-level', 'warn', '--archive-log-size', '64K'];

let daemon: DaemonHandle;
let holder: SocketHolder | null = null;
const report: string[] = [];

before(async () => {
  await assertNoLeaks();
  daemon = await startDaemon({ extraArgs: DAEMON_ARGS, keepStateDir: false });
});

after(async () => {
  await cleanupAll();
  await stopAllDaemons();
  await holder?.close();
  if (report.length > 0) console.log(`\n${report.join('\n')}\n`);
});

function summary(name: string, r: ScenarioResult, kills: number): string {
  return (
    `${name}: ${r.results.length} operations (${Object.entries(r.counts).map(([k, v]) => `${k} ${v}`).join(', ')}), ` +
    `${kills} SIGKILLs, ${r.failures.length} failed, ${r.duplicateAddresses.length} addresses held twice, ` +
    `${r.unreachable.length}/${r.pings} neighbour pings failed, ${r.networkRmFailures.length} networks not removable, ${Math.round(r.ms / 1000)} s`
  );
}

function assertClean(r: ScenarioResult, logs: () => string): void {
  const tail = () => `\n--- daemon logs (tail) ---\n${logs().slice(-6000)}`;
  assert.deepEqual(
    r.failures.map((f) => `${f.op} (docker ${f.args.join(' ')}): ${f.stderr}`),
    [],
    `every Docker operation succeeds${tail()}`,
  );
  assert.deepEqual(r.duplicateAddresses, [], 'no address is held twice');
  assert.deepEqual(r.unreachable, [], `every running container reaches its neighbours (${r.pings} pings)${tail()}`);
  assert.deepEqual(r.networkRmFailures, [], `every network can be removed${tail()}`);
}

/** What `ledgernet repair --dry-run` would fix while the containers still run (reported). */
async function repairFindings(into: string[]): Promise<void> {
  const r = await ledgernetCli(['repair', '--dry-run', '--state-dir', daemon.stateDir]);
  into.push(...r.stdout.split('\n').filter((l) => l.startsWith('would ')));
  if (r.exitCode === 1) into.push(`repair --dry-run failed: ${r.stderr}`);
}

async function assertLedgerClean(): Promise<void> {
  const v = await ledgernetCli(['events', 'verify', '--state-dir', daemon.stateDir]);
  assert.equal(v.exitCode, 0, `events verify: ${v.stdout}${v.stderr}`);
  const st = await ledgernetCli(['status', '--json', '--state-dir', daemon.stateDir]);
  const s = JSON.parse(st.stdout) as { networks: unknown[]; endpoints: unknown[]; archived: { files: number } };
  assert.deepEqual([s.networks.length, s.endpoints.length], [0, 0], `ledgernet holds no network or endpoint: ${st.stdout}`);
  assert.ok(s.archived.files > 0, `the log was archived on the way (--archive-log-size): ${JSON.stringify(s.archived)}`);
  report.push(`log: ${v.stdout.trim()}`);
  await waitNoLeaks(20_000);
  // Links that leaks.ts does not name: container-side peers and ifb devices.
  const links = JSON.parse((await execa('ip', ['-j', 'link', 'show'])).stdout) as { ifname: string }[];
  assert.deepEqual(links.map((l) => l.ifname).filter((n) => /^ln[pi]-/.test(n)), [], 'no lnp-/lni- links left');
}

describe('crash chaos', () => {
  test(`${OPS} container operations while the worker is SIGKILLed at least ${KILLS} times: all succeed, nothing leaks`, async () => {
    let kills = 0;
    const repairs: string[] = [];
    const r = await runScenario({
      driver: 'ledgernet',
      subnets: ['10.231.210.0/24', '10.231.211.0/24', '10.231.212.0/24'],
      // One network with ledgernet's IPAM, so RequestAddress/ReleaseAddress are in the mix too.
      networkArgs: [[], ['--ipam-driver', 'ledgernet'], []],
      operations: OPS,
      concurrency: 4,
      log: (l) => console.log(l),
      beforeTeardown: () => repairFindings(repairs),
      chaos: async () => {
        // Spread over the run at random moments (also while a new worker is still starting).
        while (kills < KILLS) {
          await pause(500, 4000);
          if ((await daemon.kill9Worker()) !== null) kills += 1;
        }
      },
    });
    report.push(summary('ledgernet, worker SIGKILLs', r, kills), `  ledgernet repair --dry-run before teardown: ${repairs.length} finding(s)`, ...repairs.map((l) => `    ${l}`));
    assert.ok(kills >= KILLS, `${kills} kills`);
    assertClean(r, () => daemon.logs());
    await assertLedgerClean();
  });

  test(`${SUP_OPS} operations while the whole daemon (supervisor and worker) is SIGKILLed ${SUP_KILLS} times and started again on the held socket`, async () => {
    let kills = 0;
    const repairs: string[] = [];
    const { stateDir } = daemon;
    // From here on the socket is the service manager's (socket activation): it outlives each kill.
    await daemon.terminate();
    let logs = daemon.logs();
    holder = await holdSocket(daemon.socket);
    const launcher = holder.launcher;
    daemon = await startDaemon({ stateDir, extraArgs: DAEMON_ARGS, keepStateDir: false, launcher });
    const r = await runScenario({
      driver: 'ledgernet',
      subnets: ['10.231.213.0/24', '10.231.214.0/24', '10.231.215.0/24'],
      networkArgs: [[], ['--ipam-driver', 'ledgernet'], []],
      operations: SUP_OPS,
      concurrency: 4,
      log: (l) => console.log(l),
      beforeTeardown: () => repairFindings(repairs),
      chaos: async () => {
        while (kills < SUP_KILLS) {
          await pause(1000, 5000);
          await daemon.kill9All();
          kills += 1;
          logs += daemon.logs();
          // Start again at once, as systemd would (Restart=always); calls wait in the backlog.
          daemon = await startDaemon({ stateDir, extraArgs: DAEMON_ARGS, keepStateDir: false, launcher });
        }
      },
    });
    report.push(summary('ledgernet, whole-daemon SIGKILLs', r, kills), `  ledgernet repair --dry-run before teardown: ${repairs.length} finding(s)`, ...repairs.map((l) => `    ${l}`));
    // With the socket held, no call meets a closed socket (each waits in the backlog). A call
    // the killed supervisor had accepted but not yet journaled (it reads and journals each call in
    // the callback that accepted it, src/supervisor/front.ts; the window is tens of microseconds,
    // about a millisecond under load) cannot be told apart on Docker's empty retry: it is refused
    // with a clear Err, never answered wrongly (src/supervisor/retry-match.ts). The window is not
    // zero (accept(2) hands the only reference to the killed process), so such refusals are
    // reported, not hidden, and at most one is allowed (RELIABILITY.md "The window"); every other
    // check is as strict as with worker kills.
    const refusedOps = r.failures.filter((f) => /the request body is empty/.test(f.stderr));
    // Docker 20.10 may keep the endpoint of a refused connect until the container goes: the same
    // connect again then says "already exists" (a consequence, not another failure).
    const after = r.failures.filter(
      (f) => /endpoint with name .* already exists/.test(f.stderr) && refusedOps.some((x) => x.args.at(-1) === f.args.at(-1)),
    );
    const refused = [...refusedOps, ...after];
    report.push(`  of which refused as ambiguous empty-body retries: ${refusedOps.length} (+${after.length} repeated connects of those containers)`);
    assertClean({ ...r, failures: r.failures.filter((f) => !refused.includes(f)) }, () => logs + daemon.logs());
    assert.ok(refusedOps.length <= 1, `at most one refused empty-body retry: ${refusedOps.length} for ${kills} kills`);
    await assertLedgerClean();
  });

  test(`control: the same ${OPS} operations with Docker's bridge driver, no kills`, async () => {
    const r = await runScenario({
      driver: 'bridge',
      subnets: ['10.232.210.0/24', '10.232.211.0/24', '10.232.212.0/24'],
      operations: OPS,
      concurrency: 4,
      log: (l) => console.log(l),
    });
    report.push(summary('bridge (control), no kills', r, 0));
    // The control is reported, and checked the same way: a failure here is the harness or Docker.
    assertClean(r, () => '');
  });
});
