// What ledgernet holds in the kernel, in a form that shows whether an object was recreated:
// links with their ifindex, firewall rules with their packet counters (a rewritten rule starts
// again at 0), qdiscs with their handle and packet counters (a new qdisc starts again at 0).
import { execa } from 'execa';

export interface KernelObjects {
  /** `name#ifindex` of every ln* link (bridges, veths, ifbs), sorted. */
  readonly links: readonly string[];
  /** `<cmd> -t <table> <rule>` → packets, for every ledgernet chain, rule and hook. */
  readonly rules: ReadonlyMap<string, number>;
  /** `<dev> <kind> <handle> <parent>` → packets, for every qdisc on an ln* link. */
  readonly qdiscs: ReadonlyMap<string, number>;
}

interface IpLink {
  ifname: string;
  ifindex: number;
}

interface TcQdisc {
  kind: string;
  handle: string;
  parent?: string;
  root?: boolean;
  packets?: number;
}

const isOurs = (name: string) => /^ln[bvi]-/.test(name);

export async function kernelObjects(): Promise<KernelObjects> {
  const linkList = JSON.parse((await execa('ip', ['-j', 'link', 'show'], { stdin: 'ignore' })).stdout || '[]') as IpLink[];
  const ours = linkList.filter((l) => isOurs(l.ifname));
  const rules = new Map<string, number>();
  for (const cmd of ['iptables-save', 'ip6tables-save']) {
    const r = await execa(cmd, ['-c'], { stdin: 'ignore', reject: false });
    if (r.exitCode !== 0) continue;
    let table = '?';
    for (const line of r.stdout.split('\n')) {
      if (line.startsWith('*')) table = line.slice(1);
      if (!line.includes('LEDGERNET') && !line.includes('ledgernet:')) continue;
      // `[pkts:bytes] -A CHAIN …` for rules; `:CHAIN POLICY [pkts:bytes]` for chains.
      const m = /^\[(\d+):\d+\] (.*)$/.exec(line);
      if (m) rules.set(`${cmd} -t ${table} ${m[2]}`, Number(m[1]));
      else if (line.startsWith(':')) rules.set(`${cmd} -t ${table} ${line.replace(/ \[\d+:\d+\]$/, '')}`, 0);
    }
  }
  const qdiscs = new Map<string, number>();
  for (const l of ours) {
    const r = await execa('tc', ['-s', '-j', 'qdisc', 'show', 'dev', l.ifname], { stdin: 'ignore', reject: false });
    if (r.exitCode !== 0) continue;
    for (const q of JSON.parse(r.stdout || '[]') as TcQdisc[]) {
      if (q.kind === 'noqueue') continue;
      qdiscs.set(`${l.ifname} ${q.kind} ${q.handle} ${q.root ? 'root' : (q.parent ?? '')}`, q.packets ?? 0);
    }
  }
  return { links: ours.map((l) => `${l.ifname}#${l.ifindex}`).sort(), rules, qdiscs };
}

/**
 * What differs between two looks, one line each; empty when nothing was recreated: the same
 * links with the same ifindexes, the same rules and qdiscs, none whose counter went down.
 */
export function recreated(before: KernelObjects, after: KernelObjects): string[] {
  const out: string[] = [];
  const a = new Set(after.links);
  const b = new Set(before.links);
  for (const l of before.links) if (!a.has(l)) out.push(`link ${l} is gone or has another ifindex`);
  for (const l of after.links) if (!b.has(l)) out.push(`link ${l} is new`);
  for (const [what, map, mapAfter] of [
    ['rule', before.rules, after.rules],
    ['qdisc', before.qdiscs, after.qdiscs],
  ] as const) {
    for (const [k, n] of map) {
      const m = mapAfter.get(k);
      if (m === undefined) out.push(`${what} ${k} is gone`);
      else if (m < n) out.push(`${what} ${k}: its packet counter went from ${n} to ${m} (recreated)`);
    }
    for (const k of mapAfter.keys()) if (!map.has(k)) out.push(`${what} ${k} is new`);
  }
  return out;
}
