// Worker + supervisor CPU per container (Docker's calls of `docker run --rm`) with N other networks,
// a daemon of its own in a netns. node --import tsx bench/probes/daemon-cost.ts <N> <containers> [profDir]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pluginCall } from '../../test/helpers/daemon.ts';
import { cpuMs, startBenchDaemon } from '../offline/daemon.ts';
import { withNetns } from '../offline/netns.ts';
import { createNetworkBody, networkId, subnetOf } from '../offline/scenario.ts';

const N = Number(process.argv[2] ?? 200);
const C = Number(process.argv[3] ?? 40);
const prof = process.argv[4];
const call = async (m: string, body: object, socket: string) => {
  const r = await pluginCall(m, body, socket, { timeoutMs: 60_000 });
  if (r.status !== 200) throw new Error(`${m}: ${r.status} ${r.text}`);
};
const dir = await mkdtemp(join(tmpdir(), 'ln-scoped-'));
try {
  await withNetns('lnscoped', async (netns) => {
    const d = await startBenchDaemon({ netns, dir, cpuProfDir: prof, extraArgs: ['--reconcile-interval', '3600'] });
    try {
      for (let i = 0; i <= N; i++) await call('NetworkDriver.CreateNetwork', createNetworkBody(i), d.socket);
      await new Promise((r) => setTimeout(r, 3000));
      const net = networkId(0);
      const one = async (c: number) => {
        const ep = ('c0' + c.toString(16).padStart(6, '0')).padEnd(64, '1');
        const ids = { NetworkID: net, EndpointID: ep };
        await call('NetworkDriver.CreateEndpoint', { ...ids, Interface: { Address: subnetOf(0).host(c % 200), AddressIPv6: '', MacAddress: '' }, Options: {} }, d.socket);
        await call('NetworkDriver.Join', { ...ids, SandboxKey: `/var/run/docker/netns/x${c}`, Options: {} }, d.socket);
        await call('NetworkDriver.ProgramExternalConnectivity', { ...ids, Options: {} }, d.socket);
        await call('NetworkDriver.EndpointOperInfo', ids, d.socket);
        await call('NetworkDriver.RevokeExternalConnectivity', ids, d.socket);
        await call('NetworkDriver.Leave', ids, d.socket);
        await call('NetworkDriver.DeleteEndpoint', ids, d.socket);
      };
      for (let c = 0; c < 5; c++) await one(1000 + c);
      await new Promise((r) => setTimeout(r, 500));
      const w = d.workerPid() ?? 0, s = d.proc.pid ?? 0;
      const c0 = { w: cpuMs(w), s: cpuMs(s) };
      const mono0 = process.hrtime.bigint() / 1000n;
      const t0 = performance.now();
      const walls: number[] = [];
      for (let c = 0; c < C; c++) { const t = performance.now(); await one(c); walls.push(performance.now() - t); }
      const mono1 = process.hrtime.bigint() / 1000n;
      console.log(`WINDOW ${mono0} ${mono1}`);
      await new Promise((r) => setTimeout(r, 500));
      const wall = performance.now() - t0 - 500;
      const c1 = { w: cpuMs(w), s: cpuMs(s) };
      walls.sort((a, b) => a - b);
      console.log(`N=${N} containers=${C}: worker CPU ${((c1.w - c0.w) / C).toFixed(2)} ms/container, supervisor ${((c1.s - c0.s) / C).toFixed(2)} ms/container, wall median ${walls[Math.floor(C / 2)]!.toFixed(1)} ms (mean ${(wall / C).toFixed(1)})`);
    } finally {
      await d.stop();
    }
  });
} finally {
  await rm(dir, { recursive: true, force: true });
}
