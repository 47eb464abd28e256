// per-call latency of Docker's call sequence, straight over the plugin socket, in a private netns
import { execa } from 'execa';
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const ns = `lncalls-${process.pid}`;
const dir = await mkdtemp(join(tmpdir(), 'lncalls-'));
const sock = join(dir, 'p.sock');
await execa('ip', ['netns', 'add', ns]);
const mode = process.env.INPROC ? ['--in-process'] : [];
const d = execa('ip', ['netns', 'exec', ns, 'node', 'dist/cli.js', 'serve', '--socket', sock, '--state-dir', join(dir, 's'), '--docker-socket', '', '--log-level', 'warn', ...mode], { env: { LEDGERNET_RUN_DIR: dir }, reject: false, stdout: 'inherit', stderr: 'inherit' });
const call = (path: string, body: unknown) => new Promise<{ ms: number; text: string }>((res, rej) => {
  const t0 = performance.now();
  const req = http.request({ socketPath: sock, path: `/${path}`, method: 'POST', headers: { 'content-type': 'application/vnd.docker.plugins.v1.2+json' } }, (r) => { let t = ''; r.on('data', (c) => (t += c)); r.on('end', () => res({ ms: performance.now() - t0, text: t })); });
  req.on('error', rej); req.end(JSON.stringify(body));
});
for (let i = 0; i < 100; i++) { try { await call('Plugin.Activate', {}); break; } catch { await new Promise((r) => setTimeout(r, 100)); } }
const NET = 'ab'.repeat(32);
console.log((await call('NetworkDriver.CreateNetwork', { NetworkID: NET, Options: { 'com.docker.network.generic': {} }, IPv4Data: [{ AddressSpace: 'x', Pool: '10.77.0.0/24', Gateway: '10.77.0.1/24' }], IPv6Data: [] })).text);
const EXTRA = Number(process.env.EXTRA ?? 0);
const t0 = performance.now();
for (let i = 0; i < EXTRA; i++) {
  const id = (i + 1).toString(16).padStart(8, '0') + 'ef'.repeat(28);
  const r = await call('NetworkDriver.CreateNetwork', { NetworkID: id, Options: { 'com.docker.network.generic': {} }, IPv4Data: [{ AddressSpace: 'x', Pool: `10.${120 + Math.floor(i / 256)}.${i % 256}.0/24`, Gateway: `10.${120 + Math.floor(i / 256)}.${i % 256}.1/24` }], IPv6Data: [] });
  if (r.text !== '{}') console.log(r.text);
}
console.log('created', EXTRA, 'networks in', (performance.now() - t0).toFixed(0), 'ms');
const times: Record<string, number[]> = {};
const N = Number(process.env.N ?? 30);
for (let i = 0; i < N; i++) {
  const EP = (i + 1).toString(16).padStart(4, '0') + 'cd'.repeat(30);
  const seq: [string, unknown][] = [
    ['NetworkDriver.CreateEndpoint', { NetworkID: NET, EndpointID: EP, Interface: { Address: `10.77.0.${i + 2}/24`, MacAddress: '' }, Options: {} }],
    ['NetworkDriver.Join', { NetworkID: NET, EndpointID: EP, SandboxKey: `/var/run/docker/netns/x${i}`, Options: {} }],
    ['NetworkDriver.ProgramExternalConnectivity', { NetworkID: NET, EndpointID: EP, Options: {} }],
    ['NetworkDriver.EndpointOperInfo', { NetworkID: NET, EndpointID: EP }],
    ['NetworkDriver.RevokeExternalConnectivity', { NetworkID: NET, EndpointID: EP }],
    ['NetworkDriver.Leave', { NetworkID: NET, EndpointID: EP }],
    ['NetworkDriver.DeleteEndpoint', { NetworkID: NET, EndpointID: EP }],
  ];
  for (const [m, b] of seq) { const r = await call(m, b); if (r.text !== '{}' && !m.includes('Join') && !m.includes('Oper') && !m.includes('CreateEndpoint')) console.log(m, r.text); (times[m] ??= []).push(r.ms); }
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
let total = 0;
for (const [m, xs] of Object.entries(times)) { total += med(xs); console.log(m.padEnd(45), med(xs).toFixed(2)); }
console.log('sum of medians', total.toFixed(1), process.env.INPROC ? 'in-process' : 'supervisor');
await call('NetworkDriver.DeleteNetwork', { NetworkID: NET });
d.kill('SIGTERM'); await d;
await execa('ip', ['netns', 'del', ns]);
