// Where `docker network create` + `rm` spends its time at 0 and N networks of each driver:
// the bridge driver, ledgernet, and a null remote driver (a plugin that answers every call at
// once: what Docker itself costs a remote driver). For the null driver and ledgernet, the time
// of the plugin calls (the null plugin's own clock; ledgernet's /metrics) against the CLI's wall
// time. Under the test lock: flock /run/lock/ledgernet-tests.lock node --import tsx bench/probes/docker-split.ts [N] [rounds]
import { unlinkSync } from 'node:fs';
import { createServer } from 'node:http';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { startDaemon } from '../../test/helpers/daemon.ts';
import { docker } from '../../test/helpers/docker.ts';
import { freePort, histogramTotals } from '../docker/daemon-view.ts';
import { measureSubnet, pool, rotate } from '../docker/measure.ts';

const N = Number(process.argv[2] ?? 200);
const R = Number(process.argv[3] ?? 20);
const NULL = 'lnnull';
const NULL_SOCK = `/run/docker/plugins/${NULL}.sock`;
const mine = `lnbench-${process.pid}-`;
let k = 0;
const name = (w: string) => `${mine}${w}-${++k}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function run(args: string[]): Promise<number> {
  const t0 = performance.now();
  const r = await docker(args, { timeoutMs: 120_000 });
  if (r.exitCode !== 0) throw new Error(`docker ${args.join(' ')}: ${r.stderr}`);
  return performance.now() - t0;
}

// The null plugin: answers at once; records how long each call took it (≈ 0) and when it came.
const nullCalls: { method: string; at: number }[] = [];
const srv = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const method = (req.url ?? '').slice(1);
    nullCalls.push({ method, at: performance.now() });
    const out =
      method === 'Plugin.Activate' ? { Implements: ['NetworkDriver'] } : method === 'NetworkDriver.GetCapabilities' ? { Scope: 'local', ConnectivityScope: 'local' } : {};
    res.setHeader('content-type', 'application/vnd.docker.plugins.v1+json');
    res.end(JSON.stringify(out));
  });
});

type D = 'bridge' | 'ledgernet' | typeof NULL;
const DRIVERS: D[] = ['bridge', 'ledgernet', NULL];
const SUBNET: Record<D, string> = { bridge: measureSubnet(250), ledgernet: measureSubnet(251), [NULL]: measureSubnet(252) };

interface Sample { create: number; rm: number; toPlugin?: number; fromPlugin?: number; rmTo?: number; rmFrom?: number }

async function once(d: D): Promise<Sample> {
  const n = name(`cr-${d}`);
  const from = nullCalls.length;
  const t0 = performance.now();
  const create = await run(['network', 'create', '-d', d, '--subnet', SUBNET[d], n]);
  const t1 = performance.now();
  const rm = await run(['network', 'rm', n]);
  const t2 = performance.now();
  if (d !== NULL) return { create, rm };
  const c = nullCalls.slice(from).find((x) => x.method === 'NetworkDriver.CreateNetwork');
  const r = nullCalls.slice(from).find((x) => x.method === 'NetworkDriver.DeleteNetwork');
  return { create, rm, toPlugin: (c?.at ?? NaN) - t0, fromPlugin: t1 - (c?.at ?? NaN), rmTo: (r?.at ?? NaN) - t1, rmFrom: t2 - (r?.at ?? NaN) };
}

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function metrics(port: number) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const calls = histogramTotals(text, 'ledgernet_request_duration_seconds', 'method');
  const passes = histogramTotals(text, 'ledgernet_reconcile_pass_duration_seconds');
  return { calls, passes: passes.get('') ?? { sum: 0, count: 0 } };
}

async function phase(label: string, port: number): Promise<void> {
  const out: Record<D, Sample[]> = { bridge: [], ledgernet: [], [NULL]: [] };
  for (const d of DRIVERS) await once(d);
  const m0 = await metrics(port);
  for (let i = 0; i < R; i++) for (const d of rotate(DRIVERS, i)) out[d].push(await once(d));
  const m1 = await metrics(port);
  const mean = (m: string) => {
    const a = m0.calls.get(m) ?? { sum: 0, count: 0 };
    const b = m1.calls.get(m) ?? { sum: 0, count: 0 };
    return (((b.sum - a.sum) / Math.max(1, b.count - a.count)) * 1000).toFixed(1);
  };
  const pm = (((m1.passes.sum - m0.passes.sum) / Math.max(1, m1.passes.count - m0.passes.count)) * 1000).toFixed(1);
  const f = (xs: number[]) => med(xs).toFixed(1);
  for (const d of DRIVERS) {
    const s = out[d];
    console.log(`${label} ${d.padEnd(9)} create+rm ${f(s.map((x) => x.create + x.rm))} (create ${f(s.map((x) => x.create))}, rm ${f(s.map((x) => x.rm))}) min ${Math.min(...s.map((x) => x.create + x.rm)).toFixed(0)} max ${Math.max(...s.map((x) => x.create + x.rm)).toFixed(0)}`);
  }
  const s = out[NULL];
  console.log(`${label} null plugin: CLI start -> CreateNetwork ${f(s.map((x) => x.toPlugin!))}, -> CLI end ${f(s.map((x) => x.fromPlugin!))}; rm: -> DeleteNetwork ${f(s.map((x) => x.rmTo!))}, -> CLI end ${f(s.map((x) => x.rmFrom!))}`);
  console.log(`${label} ledgernet's answers (mean): CreateNetwork ${mean('NetworkDriver.CreateNetwork')} ms, DeleteNetwork ${mean('NetworkDriver.DeleteNetwork')} ms; passes ${m1.passes.count - m0.passes.count} × ${pm} ms; load ${loadavg()[0]!.toFixed(2)}`);
}

async function sweep(): Promise<void> {
  const nets = (await docker(['network', 'ls', '--filter', `name=${mine}`, '--format', '{{.Name}}'])).stdout.split('\n').filter((x) => x.startsWith(mine));
  for (let i = 0; i < nets.length; i += 50) await docker(['network', 'rm', ...nets.slice(i, i + 50)], { timeoutMs: 300_000 });
}

await new Promise<void>((r) => srv.listen(NULL_SOCK, r));
const port = await freePort();
const daemon = await startDaemon({ extraArgs: ['--log-level', 'warn', '--metrics', `127.0.0.1:${port}`], nodeArgs: process.env['PROF'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['PROF']}`] : [] });
const onSig = () => void cleanup().finally(() => process.exit(130));
process.on('SIGINT', onSig);
process.on('SIGTERM', onSig);
let cleaning: Promise<void> | null = null;
function cleanup(): Promise<void> {
  return (cleaning ??= (async () => {
    try {
      await sweep();
    } finally {
      await daemon.stop();
      srv.close();
      try { unlinkSync(NULL_SOCK); } catch { /* gone */ }
    }
  })());
}
try {
  console.log(`start: load ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  await phase('N=0  ', port);
  const t0 = Date.now();
  const jobs = Array.from({ length: N }, (_, i) => (['bridge', 'ledgernet'] as const).map((d) => ({ d, i }))).flat();
  await pool(jobs, 4, async ({ d, i }) => run(['network', 'create', '-d', d, '--subnet', `${d === 'bridge' ? '10.240' : '10.241'}.${i}.0/24`, name('pop')]));
  console.log(`populated ${N} of each in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  await sleep(2000);
  await phase(`N=${N}`, port);
} finally {
  await cleanup();
}
