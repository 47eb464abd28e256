// Row 7 outside netfilter: does anything on the datapath differ between a container on the bridge
// driver and one on ledgernet? One network of each with a `sleep` container; for the bridge, the
// host-side veth and the container's eth0 it compares every setting the kernel reports
// (`ip -d -j link`: MTU, queues, GSO/GRO sizes, bridge and bridge-port options), the offloads
// (`ethtool -k`), the qdisc and the interface sysctls, and prints the settings that differ.
// It also writes the host's `iptables-save` with both networks present to /tmp/datapath-iptables.txt
// (Docker's rule shape for a user-defined bridge network, and ledgernet's). Under the test lock:
//   flock /run/lock/ledgernet-tests.lock node --import tsx bench/probes/datapath-diff.ts
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { BenchResult } from '../rows.ts';
import { createNetwork, measureSubnet, type Driver } from '../docker/measure.ts';
import { withSession, type Session } from '../docker/session.ts';
import { TEST_IMAGE } from '../../test/helpers/docker.ts';

type Flat = Map<string, string>;
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });
const VOLATILE = /ifindex|ifname|address|broadcast|bridge_id|root_id|timer|link_index|link_netnsid|master$|^stats|operstate|flags|port_no|port_id|designated|^ifalias|^group$|parentdev|parentbus|\.id$|no$/;

function flatten(prefix: string, v: unknown, out: Flat): void {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) for (const [k, x] of Object.entries(v)) flatten(prefix ? `${prefix}.${k}` : k, x, out);
  else if (!VOLATILE.test(prefix)) out.set(prefix, JSON.stringify(v));
}

/** Everything about link `dev`, in the netns of process `pid` (0: the host's). */
function linkFacts(dev: string, pid: number): Flat {
  const inNs = (cmd: string, args: string[]) => (pid ? sh('nsenter', ['-t', String(pid), '-n', cmd, ...args]) : sh(cmd, args));
  const out: Flat = new Map();
  flatten('', (JSON.parse(inNs('ip', ['-d', '-j', 'link', 'show', 'dev', dev])) as unknown[])[0], out);
  for (const l of inNs('ethtool', ['-k', dev]).split('\n').slice(1)) {
    const m = /^\s*([\w-]+): (\w+)/.exec(l);
    if (m) out.set(`ethtool.${m[1]}`, m[2] ?? '');
  }
  out.set('qdisc', inNs('tc', ['qdisc', 'show', 'dev', dev]).replace(/\s+/g, ' ').replace(/dev \S+ /, '').trim());
  for (const fam of ['ipv4', 'ipv6']) {
    const dir = `/proc/sys/net/${fam}/conf/${dev}`;
    const files = pid ? inNs('ls', [dir]).split('\n').filter(Boolean) : readdirSync(dir);
    for (const f of files) {
      try {
        out.set(`sysctl.${fam}.${f}`, (pid ? inNs('cat', [`${dir}/${f}`]) : readFileSync(`${dir}/${f}`, 'utf8')).trim());
      } catch {
        /* write-only */
      }
    }
  }
  return out;
}

interface Sides {
  bridge: Flat;
  host: Flat;
  eth0: Flat;
  names: string;
}

async function sides(s: Session, d: Driver, k: number): Promise<Sides> {
  const net = await createNetwork(s, d, measureSubnet(k), 'dp');
  const c = s.name(`dp-${d}`);
  await s.docker(['run', '-d', '--name', c, '--network', net, TEST_IMAGE, 'sleep', '600']);
  const pid = Number((await s.docker(['inspect', '-f', '{{.State.Pid}}', c])).trim());
  // The container's /sys is not its netns's view under nsenter: ask ip for the peer's index.
  const iflink = String((JSON.parse(sh('nsenter', ['-t', String(pid), '-n', 'ip', '-j', 'link', 'show', 'dev', 'eth0'])) as { link_index: number }[])[0]?.link_index);
  const host = (JSON.parse(sh('ip', ['-j', 'link', 'show'])) as { ifindex: number; ifname: string; master?: string }[]).find((l) => String(l.ifindex) === iflink);
  if (!host?.master) throw new Error(`no host veth with ifindex ${iflink} on a bridge`);
  return { bridge: linkFacts(host.master, 0), host: linkFacts(host.ifname, 0), eth0: linkFacts('eth0', pid), names: `${host.master}/${host.ifname}` };
}

function differ(what: string, a: Flat, b: Flat): string[] {
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  return keys.filter((k) => a.get(k) !== b.get(k)).map((k) => `| ${what} | ${k} | ${a.get(k) ?? '(absent)'} | ${b.get(k) ?? '(absent)'} |`);
}

const result = await withSession(async (s): Promise<BenchResult> => {
  const br = await sides(s, 'bridge', 3);
  const ln = await sides(s, 'ledgernet', 4);
  writeFileSync('/tmp/datapath-iptables.txt', sh('iptables-save', []));
  const rows = [...differ('bridge', br.bridge, ln.bridge), ...differ('host veth', br.host, ln.host), ...differ('container eth0', br.eth0, ln.eth0)];
  return { row: `datapath: bridge driver (${br.names}) vs ledgernet (${ln.names})`, measurements: [], verdicts: [], notes: ['| link | setting | bridge driver | ledgernet |', '|---|---|---|---|', ...rows] };
});
console.log(`## ${result.row}\n\n${result.notes.join('\n')}`);
