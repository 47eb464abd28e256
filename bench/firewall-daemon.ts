// For the firewall benchmarks (bench/suite/3x-*.ts): a ledgernet daemon on Docker's plugin socket
// with a given --firewall backend, its per-call times read from its Prometheus metrics, and the
// docker commands they time. Run as root with dockerd up (`npm run bench` takes the host test lock).
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

export const DOCKER = '/usr/bin/docker';
export const IMAGE = 'ledgernet-test-busybox:latest';
const SOCKET = '/run/docker/plugins/ledgernet.sock';
const METRICS = '127.0.0.1:19654';

export const docker = (...args: string[]) => execa(DOCKER, args);

export async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export interface BenchDaemon {
  /** The daemon's process id (its CPU time: /proc/<pid>/stat). */
  readonly pid: number;
  /** Sum (ms) and count of one plugin method's calls so far, from `ledgernet_request_duration_seconds`. */
  callTime(method: string): Promise<{ sumMs: number; count: number }>;
  stop(): Promise<void>;
}

/** Starts `ledgernet serve --firewall <firewall>` on Docker's plugin socket; resolves once Docker can reach it. */
export async function startDaemon(firewall: 'iptables' | 'nftables'): Promise<BenchDaemon> {
  const stateDir = await mkdtemp(join(tmpdir(), 'ledgernet-bench-fw-'));
  // Its warnings and errors go to a file that outlives the run (a Docker call that failed is in it).
  const log = join(tmpdir(), `ledgernet-bench-fw-${firewall}.log`);
  const proc = execa(process.execPath, ['dist/cli.js', 'serve', '--in-process', '--state-dir', stateDir, '--log-level', 'warn', '--firewall', firewall, '--metrics', METRICS], {
    reject: false,
    stdout: { file: log },
    stderr: { file: log },
  });
  for (let i = 0; i < 150; i++) {
    if ((await execa('test', ['-S', SOCKET], { reject: false })).exitCode === 0 && (await execa(DOCKER, ['network', 'ls'], { reject: false })).exitCode === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    pid: proc.pid ?? 0,
    async callTime(method) {
      const text = await (await fetch(`http://${METRICS}/metrics`)).text();
      const value = (suffix: string) => Number(new RegExp(`^ledgernet_request_duration_seconds_${suffix}\\{[^}]*method="${method}"[^}]*outcome="ok"[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
      return { sumMs: value('sum') * 1000, count: value('count') };
    },
    async stop() {
      proc.kill('SIGTERM');
      await proc;
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

/** Removes containers and networks whose names start with `prefix` (what a benchmark made). */
export async function cleanup(prefix: string): Promise<void> {
  const ids = (await execa(DOCKER, ['ps', '-aq', '--filter', `name=${prefix}`], { reject: false })).stdout.split('\n').filter(Boolean);
  if (ids.length > 0) await execa(DOCKER, ['rm', '-f', ...ids], { reject: false });
  const nets = (await execa(DOCKER, ['network', 'ls', '-q', '--filter', `name=${prefix}`], { reject: false })).stdout.split('\n').filter(Boolean);
  for (let i = 0; i < nets.length; i += 50) await execa(DOCKER, ['network', 'rm', ...nets.slice(i, i + 50)], { reject: false });
}
