// The accept → journal window, hit on purpose (RELIABILITY.md, "The window"): the crash-chaos
// scenario (test/helpers/chaos.ts, three networks, one of them on ledgernet's IPAM) with Docker
// talking to a proxy in front of the daemon. Every so often the proxy takes a call with a body,
// drops it unanswered and SIGKILLs supervisor and worker at that moment, exactly what a kill
// between accept(2) and the journal's write(2) does: nothing recorded the call, and Docker
// re-sends it with an empty body (moby#39331) to the daemon started next. Calls in flight to the
// killed daemon get their Docker connection closed too (what Docker sees when the daemon dies),
// so Docker retries them as it would. Prints, per method, how many calls were cut, and every
// failed docker command: which cut-off calls ledgernet can still answer, and which not.
// CUT_LOG=<file> writes every daemon's log there. Under the test lock (≤ 15 min):
//   flock /run/lock/ledgernet-tests.lock node --import tsx bench/probes/cut-chaos.ts [operations] [cuts]
import { randomInt } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { runScenario } from '../../test/helpers/chaos.ts';
import { PLUGIN_SOCKET, ledgernetCli, pluginCall, startDaemon, type DaemonHandle } from '../../test/helpers/daemon.ts';
import { findLeaks } from '../../test/helpers/leaks.ts';

const OPS = Number(process.argv[2] ?? 200);
const CUTS = Number(process.argv[3] ?? 20);
/** One call in this many (with a body, none in flight to a restart) is cut. */
const EVERY = Number(process.env['CUT_EVERY'] ?? 12);
const INNER = '/run/ledgernet-cut-chaos.sock';
const ARGS = ['--reconcile-interval', '2', '--log-level', 'warn'];
/** The daemon behind the proxy reads Docker's API (networks whose CreateNetwork was cut off) under the name Docker gives the proxy's socket. */
const ENV = { LEDGERNET_DOCKER_SOCKET: '/var/run/docker.sock', LEDGERNET_DRIVER_NAME: 'ledgernet' };

async function main(): Promise<void> {
  let d: DaemonHandle = await startDaemon({ socket: INNER, extraArgs: ARGS, keepStateDir: true, env: ENV });
  const stateDir = d.stateDir;
  let restarting: Promise<void> | null = null;
  let lastRestart = 0;
  const cutBy = new Map<string, number>();
  const retryLines: string[] = [];
  let cuts = 0;
  const proxy = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const method = (req.url ?? '/').slice(1);
      const eligible = body !== '' && !method.startsWith('Plugin.') && !method.endsWith('GetCapabilities') && !method.endsWith('GetDefaultAddressSpaces');
      // Kills at least 3 s apart: Docker's retries of one cut (1, 2, 4, 8 s after) must find a daemon.
      if (eligible && restarting === null && cuts < CUTS && Date.now() - lastRestart > 3_000 && randomInt(EVERY) === 0) {
        cuts += 1;
        cutBy.set(method, (cutBy.get(method) ?? 0) + 1);
        req.socket.destroy();
        restarting = d.kill9All().then(async () => {
          retryLines.push(...d.logs().split('\n'));
          d = await startDaemon({ socket: INNER, stateDir, extraArgs: ARGS, keepStateDir: true, env: ENV });
          lastRestart = Date.now();
          restarting = null;
        });
        return;
      }
      const send = async () => {
        if (restarting) await restarting;
        return pluginCall(method, body, INNER, { timeoutMs: 60_000 });
      };
      send().then(
        (r) => res.writeHead(r.status).end(r.text),
        // The daemon died with the call: Docker sees its connection closed and retries.
        () => req.socket.destroy(),
      );
    });
  });
  rmSync(PLUGIN_SOCKET, { force: true });
  await new Promise<void>((r) => proxy.listen(PLUGIN_SOCKET, r));
  let exit = 0;
  try {
    const r = await runScenario({
      driver: 'ledgernet',
      subnets: ['10.231.216.0/24', '10.231.217.0/24', '10.231.218.0/24'],
      networkArgs: [[], ['--ipam-driver', 'ledgernet'], []],
      operations: OPS,
      concurrency: 4,
      log: (l) => console.error(l),
      chaos: async () => {
        while (cuts < CUTS) await new Promise((res) => setTimeout(res, 500));
        if (restarting) await restarting;
      },
    });
    // Set by the chaos callback (tsc narrows it to null here: it cannot see the closure's writes).
    const pending = restarting as Promise<void> | null;
    if (pending) await pending;
    retryLines.push(...d.logs().split('\n'));
    await new Promise((res) => setTimeout(res, 5_000));
    const leaks = await findLeaks();
    const verify = await ledgernetCli(['events', 'verify', '--state-dir', stateDir]);
    console.log(`\n${r.results.length} operations, concurrency 4, ${cuts} calls cut off before they were journaled (each with a whole-daemon SIGKILL)\n`);
    console.log('| method cut off | calls |');
    console.log('|---|---:|');
    for (const [m, n] of [...cutBy].sort((a, b) => b[1] - a[1])) console.log(`| ${m} | ${n} |`);
    console.log(`\nfailed docker commands: ${r.failures.length}; addresses held twice: ${r.duplicateAddresses.length}; pings ${r.pings - r.unreachable.length}/${r.pings}; networks not removable: ${r.networkRmFailures.length}; leaks: ${leaks.length}; events verify: ${verify.exitCode === 0 ? 'ok' : 'FAILED'}`);
    for (const f of r.failures) console.log(`failure: ${f.op} ${f.stderr.trim().split('\n').pop()}`);
    const counts = new Map<string, number>();
    for (const l of retryLines) {
      if (!/empty-body retr|request journal|deferred|created at its Join|matches no journaled/.test(l)) continue;
      try {
        const j = JSON.parse(l) as { msg?: string; method?: string };
        const k = `${j.method ?? ''} ${j.msg ?? ''}`.trim();
        counts.set(k, (counts.get(k) ?? 0) + 1);
      } catch {
        // not a log line
      }
    }
    for (const [m, n] of counts) console.log(`daemon, ${n}x: ${m}`);
    if (process.env['CUT_LOG']) writeFileSync(process.env['CUT_LOG'], retryLines.join('\n'));
    if (r.duplicateAddresses.length > 0 || r.networkRmFailures.length > 0 || leaks.length > 0 || verify.exitCode !== 0) exit = 1;
  } finally {
    await new Promise((res) => proxy.close(res));
    await d.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
  process.exit(exit);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
