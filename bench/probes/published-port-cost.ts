// What a published port costs Docker's ProgramExternalConnectivity as the host's connections
// grow: the call reads the host's listeners first (src/kernel/host-listeners.ts). A ledgernet
// daemon on Docker's plugin socket (--in-process, --metrics), one ledgernet network, and
// `docker run --rm -p <port>:80 busybox true` repeated while a Python script on the host holds N
// established connections on loopback (127.0.0.1 only), in blocks of N alternating 0 and N.
// Each call's time is the growth of the daemon's ProgramExternalConnectivity histogram sum.
// Root, dockerd up, test image built, under the host test lock:
//   flock /run/lock/ledgernet-tests.lock node --import tsx bench/probes/published-port-cost.ts [runs per block] [connections]
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { loadavg } from 'node:os';
import { median } from '../rows.ts';
import { IMAGE, cleanup, docker, startDaemon } from '../firewall-daemon.ts';

const PREFIX = 'lnprobe-pp';
const PEC = 'NetworkDriver.ProgramExternalConnectivity';
const HOLDER = `
import socket, sys, resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); srv.bind(('127.0.0.1', 18079)); srv.listen(4096)
keep = [srv]
for i in range(int(sys.argv[1])):
    c = socket.create_connection(('127.0.0.1', 18079)); a, _ = srv.accept(); keep += [c, a]
print('ready', flush=True)
sys.stdin.read()
`;

const runs = Number(process.argv[2] ?? 8);
const connections = Number(process.argv[3] ?? 9000);
const daemon = await startDaemon('iptables');
const times = new Map<number, number[]>([[0, []], [connections, []]]);
try {
  await docker('network', 'create', '-d', 'ledgernet', '--subnet', '10.231.236.0/24', `${PREFIX}-net`);
  let port = 18100;
  for (const n of [0, connections, 0, connections]) {
    const holder = spawn('python3', ['-c', HOLDER, String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      let seen = '';
      while (!seen.includes('ready')) seen += String((await once(holder.stdout, 'data'))[0]);
      for (let i = 0; i < runs; i++) {
        const before = await daemon.callTime(PEC);
        await docker('run', '--rm', '--network', `${PREFIX}-net`, '-p', `${port++}:80`, IMAGE, 'true');
        times.get(n)?.push((await daemon.callTime(PEC)).sumMs - before.sumMs);
      }
    } finally {
      holder.stdin.end();
      await once(holder, 'exit');
    }
  }
} finally {
  await cleanup(PREFIX);
  await daemon.stop();
}
console.log(`| host connections | ProgramExternalConnectivity ms median (min–max) | n |`);
console.log('|---:|---:|---:|');
for (const [n, xs] of times) console.log(`| ${n} | ${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}) | ${xs.length} |`);
console.log(`load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
