// CreateNetwork + DeleteNetwork over the plugin socket with 0 and N other networks of each kind
// (ledgernet's, and Docker-like bridges with the bridge driver's iptables rules), a daemon of its
// own in a netns: per-call wall time, the passes' times (info log), worker CPU per round.
// node --import tsx bench/probes/create-cost.ts <N> <rounds> [gapMs] [profDir]
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pluginCall } from '../../test/helpers/daemon.ts';
import { cpuMs, startBenchDaemon, type BenchDaemon } from '../offline/daemon.ts';
import { withNetns } from '../offline/netns.ts';
import { createHash } from 'node:crypto';
import { createNetworkBody as bodyOf } from '../offline/scenario.ts';

/** Docker's network ids are random hex: spread them as Docker would (the buckets go by the id's first character). */
const networkId = (i: number) => createHash('sha256').update(`net-${i}`).digest('hex');
const createNetworkBody = (i: number) => ({ ...bodyOf(i), NetworkID: networkId(i) });

const N = Number(process.argv[2] ?? 200);
const R = Number(process.argv[3] ?? 20);
const GAP = Number(process.argv[4] ?? 40);
const prof = process.argv[5];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const call = async (m: string, body: object, socket: string) => {
  const t = performance.now();
  const r = await pluginCall(m, body, socket, { timeoutMs: 60_000 });
  if (r.status !== 200 || r.text !== '{}') throw new Error(`${m}: ${r.status} ${r.text}`);
  return performance.now() - t;
};

/** N bridges as Docker's bridge driver makes them, with its iptables rules. */
async function dockerLike(netns: string, from: number, n: number, head: boolean): Promise<void> {
  const ip: string[] = [];
  const filter: string[] = [];
  const nat: string[] = [];
  for (let i = from; i < from + n; i++) {
    const br = `br-${i.toString(16).padStart(12, 'd')}`;
    const sub = `10.${200 + (i >> 8)}.${i & 255}`;
    ip.push(`link add ${br} type bridge`, `addr add ${sub}.1/24 dev ${br}`, `link set ${br} up`);
    filter.push(
      `-A DOCKER-ISOLATION-STAGE-1 -i ${br} ! -o ${br} -j DOCKER-ISOLATION-STAGE-2`,
      `-A DOCKER-ISOLATION-STAGE-2 -o ${br} -j DROP`,
      `-A FORWARD -o ${br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
      `-A FORWARD -o ${br} -j DOCKER`,
      `-A FORWARD -i ${br} ! -o ${br} -j ACCEPT`,
      `-A FORWARD -i ${br} -o ${br} -j ACCEPT`,
    );
    nat.push(`-A POSTROUTING -s ${sub}.0/24 ! -o ${br} -j MASQUERADE`, `-A DOCKER -i ${br} -j RETURN`);
  }
  if (ip.length > 0) await execa('ip', ['-n', netns, '-batch', '-'], { input: ip.join('\n') + '\n' });
  const f = ['*filter', ...(head ? [':DOCKER - [0:0]', ':DOCKER-USER - [0:0]', ':DOCKER-ISOLATION-STAGE-1 - [0:0]', ':DOCKER-ISOLATION-STAGE-2 - [0:0]', '-A FORWARD -j DOCKER-USER', '-A FORWARD -j DOCKER-ISOLATION-STAGE-1', '-A DOCKER-USER -j RETURN'] : []), ...filter, 'COMMIT'];
  const nt = ['*nat', ...(head ? [':DOCKER - [0:0]', '-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER', '-A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER'] : []), ...nat, 'COMMIT'];
  await execa('ip', ['netns', 'exec', netns, 'iptables-restore', '--noflush'], { input: f.join('\n') + '\n' });
  await execa('ip', ['netns', 'exec', netns, 'iptables-restore', '--noflush'], { input: nt.join('\n') + '\n' });
}

interface Pass { trigger: string; ms: number }
function passes(log: string): Pass[] {
  const out: Pass[] = [];
  for (const line of log.split('\n')) {
    if (!line.includes('reconcile pass')) continue;
    try {
      const j = JSON.parse(line) as { trigger?: string; ms?: number };
      if (j.trigger !== undefined && j.ms !== undefined) out.push({ trigger: j.trigger, ms: j.ms });
    } catch { /* not json */ }
  }
  return out;
}

const med = (xs: number[]) => (xs.length === 0 ? NaN : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!);

async function phase(d: BenchDaemon, label: string): Promise<void> {
  const id = networkId(900);
  const body = createNetworkBody(900);
  const w = d.workerPid() ?? 0;
  const t = { create: [] as number[], del: [] as number[] };
  for (let i = 0; i < 2; i++) { await call('NetworkDriver.CreateNetwork', body, d.socket); await sleep(GAP); await call('NetworkDriver.DeleteNetwork', { NetworkID: id }, d.socket); await sleep(GAP); }
  await sleep(300);
  const logAt = d.logs().length;
  const c0 = cpuMs(w);
  const mono0 = process.hrtime.bigint() / 1000n;
  for (let i = 0; i < R; i++) {
    t.create.push(await call('NetworkDriver.CreateNetwork', body, d.socket));
    await sleep(GAP);
    t.del.push(await call('NetworkDriver.DeleteNetwork', { NetworkID: id }, d.socket));
    await sleep(GAP);
  }
  console.log(`WINDOW ${label} ${mono0} ${process.hrtime.bigint() / 1000n}`);
  await sleep(300);
  const cpu = (cpuMs(w) - c0) / R;
  const ps = passes(d.logs().slice(logAt));
  const by = (k: string) => ps.filter((p) => p.trigger.includes(k)).map((p) => p.ms);
  console.log(`${label}: CreateNetwork ${med(t.create).toFixed(1)} ms (min ${Math.min(...t.create).toFixed(1)}), DeleteNetwork ${med(t.del).toFixed(1)} ms; passes create ${med(by('CreateNetwork'))} ms, delete ${med(by('DeleteNetwork'))} ms, others ${ps.filter((p) => !p.trigger.includes('Network')).map((p) => `${p.trigger}:${p.ms}`).join(' ')}; worker CPU ${cpu.toFixed(1)} ms per create+rm; load ${(await import('node:os')).loadavg()[0]!.toFixed(2)}`);
}

const dir = await mkdtemp(join(tmpdir(), 'ln-create-'));
try {
  await withNetns('lncreate', async (netns) => {
    await dockerLike(netns, 0, 0, true);
    const d = await startBenchDaemon({ netns, dir, cpuProfDir: prof, extraArgs: ['--reconcile-interval', '3600', '--log-level', 'info'] });
    try {
      await phase(d, 'N=0');
      if (N > 0) {
        await dockerLike(netns, 0, N, false);
        for (let i = 0; i < N; i++) await call('NetworkDriver.CreateNetwork', createNetworkBody(i), d.socket);
        await sleep(1000);
        await phase(d, `N=${N}`);
      }
    } finally {
      await d.stop();
    }
  });
} finally {
  await rm(dir, { recursive: true, force: true });
}
