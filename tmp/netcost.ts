// quick: network cost of a container (run on N minus run on none), ledgernet vs bridge, with K extra networks of each
import { execa } from 'execa';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const D = (...a: string[]) => execa('docker', a);
const IMG = 'ledgernet-test-busybox:latest';
const ROUNDS = Number(process.env.ROUNDS ?? 10), EXTRA = Number(process.env.EXTRA ?? 0);
const med = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]!; };
async function t(f: () => Promise<unknown>) { const t0 = performance.now(); await f(); return performance.now() - t0; }
const state = await mkdtemp(join(tmpdir(), 'lnq-'));
const daemon = execa('node', ['dist/cli.js', 'serve', '--state-dir', state, '--log-level', 'info', ...(process.env.INPROC ? ['--in-process'] : [])], { reject: false, stdout: { file: `${state}/log` } });
for (let i = 0; i < 100; i++) { if ((await execa('test', ['-S', '/run/docker/plugins/ledgernet.sock'], { reject: false })).exitCode === 0) break; await new Promise((r) => setTimeout(r, 100)); }
const made: string[] = [];
try {
  await D('network', 'create', '-d', 'bridge', '--subnet', '10.231.200.0/24', 'q-br'); made.push('q-br');
  await D('network', 'create', '-d', 'ledgernet', '--subnet', '10.231.201.0/24', 'q-ln'); made.push('q-ln');
  for (let i = 0; i < EXTRA; i++) {
    await D('network', 'create', '-d', 'bridge', '--subnet', `10.${240 + Math.floor(i / 128)}.${(i % 128) * 2}.0/24`, `q-xb${i}`); made.push(`q-xb${i}`);
    await D('network', 'create', '-d', 'ledgernet', '--subnet', `10.${240 + Math.floor(i / 128)}.${(i % 128) * 2 + 1}.0/24`, `q-xl${i}`); made.push(`q-xl${i}`);
  }
  const r: Record<string, number[]> = { none: [], bridge: [], ledgernet: [] };
  for (const n of ['none', 'q-br', 'q-ln']) await D('run', '--rm', '--network', n, IMG, 'true');
  for (let i = 0; i < ROUNDS; i++) {
    r.none!.push(await t(() => D('run', '--rm', '--network', 'none', IMG, 'true')));
    r.bridge!.push(await t(() => D('run', '--rm', '--network', 'q-br', IMG, 'true')));
    r.ledgernet!.push(await t(() => D('run', '--rm', '--network', 'q-ln', IMG, 'true')));
  }
  const none = med(r.none!);
  console.log(JSON.stringify({ EXTRA, ROUNDS, none, bridge: med(r.bridge!) - none, ledgernet: med(r.ledgernet!) - none, ratio: (med(r.ledgernet!) - none) / (med(r.bridge!) - none) }));
} finally {
  for (const n of made.reverse()) await execa('docker', ['network', 'rm', n], { reject: false });
  daemon.kill('SIGTERM'); await daemon;
  const log = (await execa('grep', ['-c', 'reconcile pass', `${state}/log`], { reject: false })).stdout;
  console.log('passes logged', log);
  console.log((await execa('bash', ['-c', `grep -o '"trigger":"[^"]*"' ${state}/log | sort | uniq -c | sort -rn | head`], { reject: false })).stdout);
}
