import { renderChains } from './src/kernel/iptables/render.ts';
import { desiredFromState } from './src/reconciler/desired.ts';
import { given } from './test/helpers/state.ts';
import { networkSpec } from './test/helpers/events.ts';
import { flatChain } from './test/helpers/iptables-flat.ts';
import type { Command } from './src/events/domain/commands.ts';

const N = Number(process.argv[2] ?? 200);
const id = (i: number) => ((i * 2654435761) >>> 0).toString(16).padStart(8, '0').repeat(8);
const cmds: Command[] = Array.from({ length: N }, (_, i) => ({ type: 'CreateNetwork', spec: networkSpec(id(i + 1), `10.${100 + ((i + 1) >> 8)}.${(i + 1) & 255}.0/24`, `10.${100 + ((i + 1) >> 8)}.${(i + 1) & 255}.1/24`) }));
const chains = renderChains(desiredFromState(given(...cmds)).firewall);
const filter = new Map(chains.filter((c) => c.table === 'filter').map((c) => [c.name, c.rules] as const));
const mangle = new Map(chains.filter((c) => c.table === 'mangle').map((c) => [c.name, c.rules] as const));
interface Pkt { i: string; o: string; state: string }
const ifm = (pat: string, name: string) => (pat.endsWith('+') ? name.startsWith(pat.slice(0, -1)) : pat === name);
function matches(r: string, p: Pkt): boolean {
  const i = /(?:^| )(!? ?)-i (\S+)/.exec(r); if (i && ifm(i[2]!, p.i) === i[1]!.includes('!')) return false;
  const o = /(?:^| )(!? ?)-o (\S+)/.exec(r); if (o && ifm(o[2]!, p.o) === o[1]!.includes('!')) return false;
  const c = /(!? ?)--ctstate (\S+)/.exec(r); if (c && c[2]!.split(',').includes(p.state) === c[1]!.includes('!')) return false;
  if (/ -d | -s |^-d |^-s | -p |^-p /.test(r)) return false; // addresses and ports: our packet goes elsewhere
  return true;
}
// Returns [verdict, rules evaluated].
function walk(t: Map<string, readonly string[]>, name: string, p: Pkt): [string, number] {
  let n = 0;
  for (const r of t.get(name) ?? []) {
    n++;
    if (!matches(r, p)) continue;
    const target = /-j (\S+)/.exec(r)?.[1] ?? '';
    if (target === 'ACCEPT' || target === 'DROP' || target.startsWith('REJECT')) return [target, n];
    if (target === 'RETURN') return ['RETURN', n];
    if (t.has(target)) { const [v, m] = walk(t, target, p); n += m; if (v !== 'RETURN') return [v, n]; }
  }
  return ['RETURN', n];
}
const flat = new Map([['F', flatChain(filter, 'LEDGERNET-FORWARD')]]);
const mflat = new Map([['F', flatChain(mangle, 'LEDGERNET-DIRECT')]]);
const bridges = [...new Set([...filter.values()].flat().flatMap((r) => /-i (lnb-[0-9a-f]{11})/.exec(r)?.[1] ?? []))].sort();
const mid = bridges[Math.floor(bridges.length / 2)]!;
const other = bridges[Math.floor(bridges.length / 3)]!;
for (const [what, p] of [
  ['new, container -> outside', { i: mid, o: 'eth0', state: 'NEW' }],
  ['new, outside -> container (DNAT)', { i: 'eth0', o: mid, state: 'DNAT' }],
  ['new, same network', { i: mid, o: mid, state: 'NEW' }],
  ['new, to another network', { i: mid, o: other, state: 'NEW' }],
  ['established, container -> outside', { i: mid, o: 'eth0', state: 'ESTABLISHED' }],
  ['established, reply into container', { i: 'eth0', o: mid, state: 'ESTABLISHED' }],
] as const) {
  const before = walk(flat, 'F', p); const after = walk(filter, 'LEDGERNET-FORWARD', p);
  console.log(`${N} nets, filter FORWARD, ${what}: before ${before[1]} rules (${before[0]}), after ${after[1]} rules (${after[0]})`);
}
const mp = { i: 'eth0', o: '', state: 'NEW' };
console.log(`${N} nets, mangle DIRECT, new packet not to a container subnet: before ${walk(mflat, 'F', mp)[1]}, after ${walk(mangle, 'LEDGERNET-DIRECT', mp)[1]}`);
