// The operator's read-only commands on a long log, as an operator feels them: a state dir written
// by the project's own generator (bench/offline/gen-log.ts: N events for E endpoints, a snapshot
// 500 events before the end), then each command run by the built CLI (dist/cli.js, no daemon) with
// its wall time and peak RSS (/usr/bin/time), and `events --follow` sampled while it waits for new
// lines. Kernel-reading commands (status, reconcile --dry-run) are left out: run them in a netns.
// npm run build && node --import tsx bench/probes/operator-log.ts [N] [E] [dir]
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { generateLog } from '../offline/gen-log.ts';
import { CLI_PATH as cli } from '../../test/helpers/daemon.ts';

const N = Number(process.argv[2] ?? 1_000_000);
const E = Number(process.argv[3] ?? 1_500);
const parent = process.argv[4] ?? '/var/tmp';

const dir = await mkdtemp(join(parent, 'ln-operator-log-'));
const env = { LEDGERNET_RUN_DIR: join(dir, 'run') };
try {
  const state = join(dir, 'state');
  const gen = await generateLog(state, N, { endpoints: E, snapshotAt: N - 500 });
  console.log(`${gen.events} events, ${(gen.bytes / 1e6).toFixed(0)} MB, written in ${(gen.ms / 1000).toFixed(0)} s`);
  for (const args of [['events', 'verify'], ['events', '--network', 'bee700000100'], ['events', '--since', String(N - 1_000)], ['events', '--address', '10.100.5.3'], ['events', '--json']]) {
    const r = await execa('/usr/bin/time', ['-f', '%e s %M KB', process.execPath, cli, ...args, '--state-dir', state], { env, reject: false, stdout: 'ignore' });
    console.log(`${args.join(' ')}: exit ${r.exitCode}, ${r.stderr.split('\n').at(-1)}`);
  }
  // --follow: its peak RSS once the first reading is shown and it waits (VmHWM after FOLLOW_WAIT_MS, default 60 s).
  const wait = Number(process.env['FOLLOW_WAIT_MS'] ?? 60_000);
  const follow = execa(process.execPath, [cli, 'events', '--follow', '--since', String(N - 10), '--state-dir', state], { env, reject: false, stdout: 'ignore' });
  await new Promise((r) => setTimeout(r, wait));
  const status = await readFile(`/proc/${follow.pid}/status`, 'utf8').catch(() => '');
  console.log(`events --follow --since ${N - 10}, after ${wait / 1000} s: ${/VmHWM:\s*(\d+ kB)/.exec(status)?.[1] ?? '?'} peak, ${/VmRSS:\s*(\d+ kB)/.exec(status)?.[1] ?? '?'} now`);
  follow.kill();
  await follow;
} finally {
  await rm(dir, { recursive: true, force: true });
}
