// What the daemon pays to learn the host's listeners before it publishes a port (Docker's call
// path: ProgramExternalConnectivity with published ports), as the host's connections grow: the
// sock_diag read (src/kernel/host-listeners.ts, TCP in LISTEN and unconnected UDP only) against
// the /proc/net/{tcp,tcp6,udp,udp6} read it replaced (every socket of the host, printed and
// parsed). Namespaces of its own, no Docker (no lock needed): a Python script in a throwaway
// namespace holds 8 listeners and N established loopback connections (2N sockets), and this file
// runs again inside the namespace (`ip netns exec`, as the daemon reads its own namespace) to time
// both reads, interleaved.
//   node --import tsx bench/probes/host-listeners.ts [rounds] [connections...]
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { readDiagListeners, readProcNetListeners } from '../../src/kernel/host-listeners.ts';
import { median } from '../rows.ts';

const HOLDER = `
import socket, sys, resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
keep = []
for port in range(18080, 18088):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', port)); s.listen(4096); keep.append(s)
srv = keep[0]
for i in range(int(sys.argv[1])):
    c = socket.create_connection(('127.0.0.1', 18080)); a, _ = srv.accept(); keep += [c, a]
print('ready', flush=True)
sys.stdin.read()
`;

async function inner(rounds: number): Promise<void> {
  const times = { diag: [] as number[], proc: [] as number[] };
  let found = { diag: 0, proc: 0 };
  for (let i = 0; i < rounds; i++) {
    let t = performance.now();
    const d = await readDiagListeners();
    times.diag.push(performance.now() - t);
    t = performance.now();
    const p = await readProcNetListeners();
    times.proc.push(performance.now() - t);
    found = { diag: d?.length ?? -1, proc: p.length };
  }
  process.stdout.write(`${JSON.stringify({ times, found })}\n`);
}

async function outer(rounds: number, counts: number[]): Promise<void> {
  const netns = `lnlisten-${process.pid}-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', netns]);
  try {
    execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    const ms = (xs: number[]) => `${median(xs).toFixed(2)} (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
    console.log(`| connections | sockets | sock_diag ms median (min–max) | /proc/net ms median (min–max) | listeners found (diag, proc) | load |`);
    console.log('|---:|---:|---:|---:|---|---:|');
    for (const n of counts) {
      const holder = spawn('ip', ['netns', 'exec', netns, 'python3', '-c', HOLDER, String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
      try {
        let seen = '';
        while (!seen.includes('ready')) seen += String((await once(holder.stdout, 'data'))[0]);
        const self = fileURLToPath(import.meta.url);
        const out = execFileSync('ip', ['netns', 'exec', netns, process.execPath, '--import', 'tsx', self, '--inner', String(rounds)], { encoding: 'utf8' });
        const r = JSON.parse(out) as { times: { diag: number[]; proc: number[] }; found: { diag: number; proc: number } };
        console.log(`| ${n} | ${2 * n + 8} | ${ms(r.times.diag)} | ${ms(r.times.proc)} | ${r.found.diag}, ${r.found.proc} | ${loadavg()[0]?.toFixed(1)} |`);
      } finally {
        holder.stdin.end();
        await once(holder, 'exit');
      }
    }
  } finally {
    execFileSync('ip', ['netns', 'del', netns]);
  }
}

const args = process.argv.slice(2);
if (args[0] === '--inner') await inner(Number(args[1] ?? 30));
else await outer(Number(args[0] ?? 30), args.length > 1 ? args.slice(1).map(Number) : [0, 1000, 9000]);
