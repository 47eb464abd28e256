// Benchmark: ledgernet against Docker's built-in bridge driver, interleaved in one run on the
// same machine, reported as ratios (the machine is noisy; absolute times mean little).
// Run as root with dockerd up: `npm run bench` (takes the host test lock).
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

const DOCKER = '/usr/bin/docker';
const IMAGE = 'ledgernet-test-busybox:latest';
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 12);

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

const d = (...args: string[]) => execa(DOCKER, args);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
}

async function main(): Promise<void> {
  const stateDir = await mkdtemp(join(tmpdir(), 'ledgernet-bench-'));
  const daemon = execa(process.execPath, ['dist/cli.js', 'serve', '--state-dir', stateDir, '--log-level', 'warn'], { reject: false });
  for (let i = 0; i < 100; i++) {
    if ((await execa(DOCKER, ['network', 'ls'], { reject: false })).exitCode === 0 && (await execa('test', ['-S', '/run/docker/plugins/ledgernet.sock'], { reject: false })).exitCode === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const results: Record<string, number[]> = {};
  const add = (k: string, v: number) => (results[k] ??= []).push(v);
  try {
    await d('network', 'create', '-d', 'bridge', '--subnet', '10.231.200.0/24', 'bench-bridge');
    await d('network', 'create', '-d', 'ledgernet', '--subnet', '10.231.201.0/24', 'bench-ln');
    await d('run', '--rm', '--network', 'bench-bridge', IMAGE, 'true');
    await d('run', '--rm', '--network', 'bench-ln', IMAGE, 'true');
    for (let i = 0; i < ROUNDS; i++) {
      add('run bridge', await time(() => d('run', '--rm', '--network', 'bench-bridge', IMAGE, 'true')));
      add('run ledgernet', await time(() => d('run', '--rm', '--network', 'bench-ln', IMAGE, 'true')));
      add('net create+rm bridge', await time(async () => {
        await d('network', 'create', '-d', 'bridge', '--subnet', '10.231.202.0/24', 'bench-b2');
        await d('network', 'rm', 'bench-b2');
      }));
      add('net create+rm ledgernet', await time(async () => {
        await d('network', 'create', '-d', 'ledgernet', '--subnet', '10.231.203.0/24', 'bench-l2');
        await d('network', 'rm', 'bench-l2');
      }));
    }
  } finally {
    await execa(DOCKER, ['network', 'rm', 'bench-bridge', 'bench-ln', 'bench-b2', 'bench-l2'], { reject: false });
    daemon.kill('SIGTERM');
    await daemon;
    await rm(stateDir, { recursive: true, force: true });
  }
  const row = (k: string) => {
    const xs = results[k] ?? [];
    return `| ${k} | ${median(xs).toFixed(1)} | ${Math.min(...xs).toFixed(1)} | ${Math.max(...xs).toFixed(1)} | ${xs.length} |`;
  };
  const ratio = (a: string, b: string) => (median(results[a] ?? []) / median(results[b] ?? [])).toFixed(2);
  console.log(`| measurement | median ms | min ms | max ms | n |\n|---|---:|---:|---:|---:|`);
  for (const k of Object.keys(results)) console.log(row(k));
  console.log(`\nratio docker run --rm … true, ledgernet / bridge: ${ratio('run ledgernet', 'run bridge')}`);
  console.log(`ratio network create+rm, ledgernet / bridge: ${ratio('net create+rm ledgernet', 'net create+rm bridge')}`);
}

await main();
