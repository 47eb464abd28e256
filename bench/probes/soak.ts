// A long run of one daemon under a real dockerd: does anything grow that should not? N cycles of
// `docker run --rm -p 127.0.0.1::80` on one ledgernet network, and every 10th cycle a network
// created, connected to a running container, disconnected and removed. Prints the supervisor's
// and the worker's RSS and the log's size every 100 cycles, and after 30 s idle at half-way and
// at the end each process's live heap: a heap snapshot (taken after a full GC; SIGUSR2 through
// --heapsnapshot-signal) gives its size and object count, the figures a leak would move.
// node --import tsx bench/probes/soak.ts [N]   (root, dockerd running, scripts/test-env.sh done)
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon } from '../../test/helpers/daemon.ts';
import { docker, TEST_IMAGE, uniqueName } from '../../test/helpers/docker.ts';

const N = Number(process.argv[2] ?? 1000);
const rssKb = (pid: number | null | undefined) => (pid ? Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) : NaN);
const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
const diag = mkdtempSync(join(tmpdir(), 'ln-soak-'));

/** The live heap of process `pid`: its snapshot's size and object count (the snapshot is deleted). */
async function liveHeap(pid: number | null | undefined): Promise<string> {
  if (!pid) return 'not running';
  const before = new Set(readdirSync(diag));
  process.kill(pid, 'SIGUSR2');
  for (let waited = 0; waited < 60_000; waited += 500) {
    await new Promise((r) => setTimeout(r, 500));
    const file = readdirSync(diag).find((f) => !before.has(f) && f.endsWith('.heapsnapshot'));
    if (!file) continue;
    const path = join(diag, file);
    const size = statSync(path).size;
    await new Promise((r) => setTimeout(r, 1_000));
    if (statSync(path).size !== size) continue; // still being written
    const nodes = /"node_count":(\d+)/.exec(readFileSync(path, 'utf8').slice(0, 16_384))?.[1];
    rmSync(path);
    return `${mb(size)} MB snapshot, ${nodes} objects`;
  }
  return 'no snapshot within 60 s';
}

const d = await startDaemon({ nodeArgs: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${diag}`] });
const net = uniqueName('soak');
const peer = uniqueName('soakpeer');
const failures: string[] = [];
const sample = (i: number | string) =>
  console.log(`${i}\tsupervisor ${(rssKb(d.proc.pid) / 1024).toFixed(1)} MB\tworker ${(rssKb(d.workerPid()) / 1024).toFixed(1)} MB\tlog ${mb(statSync(join(d.stateDir, 'events.log')).size)} MB`);
const idleHeap = async (when: string) => {
  await new Promise((r) => setTimeout(r, 30_000));
  console.log(`${when}, 30 s idle: supervisor ${await liveHeap(d.proc.pid)}; worker ${await liveHeap(d.workerPid())}`);
};
try {
  await docker(['network', 'create', '-d', 'ledgernet', '--subnet', '10.231.210.0/24', net], { check: true });
  await docker(['run', '-d', '--name', peer, '--network', net, TEST_IMAGE, 'sleep', '100000'], { check: true });
  sample(0);
  const t0 = performance.now();
  for (let i = 1; i <= N; i++) {
    const r = await docker(['run', '--rm', '--network', net, '-p', '127.0.0.1::80', TEST_IMAGE, 'true']);
    if (r.exitCode !== 0) failures.push(`run ${i}: ${r.stderr.trim()}`);
    if (i % 10 === 0) {
      const n = uniqueName('soakn');
      for (const args of [['network', 'create', '-d', 'ledgernet', n], ['network', 'connect', n, peer], ['network', 'disconnect', n, peer], ['network', 'rm', n]]) {
        const s = await docker(args);
        if (s.exitCode !== 0) failures.push(`${args.slice(0, 2).join(' ')} ${i}: ${s.stderr.trim()}`);
      }
    }
    if (i % 100 === 0) sample(i);
    if (i === Math.floor(N / 2)) await idleHeap(`after ${i} cycles`);
  }
  console.log(`${N} cycles in ${((performance.now() - t0) / 1000).toFixed(0)} s (idle pause included), ${failures.length} failed`);
  await idleHeap(`after ${N} cycles`);
  for (const f of failures.slice(0, 10)) console.log(f);
} finally {
  await docker(['rm', '-f', peer]);
  await docker(['network', 'rm', net]);
  await d.stop();
  rmSync(diag, { recursive: true, force: true });
}
