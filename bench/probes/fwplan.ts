// CPU of the scoped pass of a CreateNetwork and of a DeleteNetwork with N other networks (random
// ids, Docker's FORWARD rules of N bridge networks in the model), no kernel: planning and the
// model update. node --import tsx bench/probes/fwplan.ts [N] [rounds]
import { createHash } from 'node:crypto';
import type { Command } from '../../src/events/domain/commands.ts';
import { decide } from '../../src/events/domain/decide.ts';
import { fold } from '../../src/events/domain/evolve.ts';
import { emptyState, type State } from '../../src/events/domain/types.ts';
import { iptablesFirewall } from '../../src/kernel/index.ts';
import type { IptablesTable, KernelSnapshot } from '../../src/kernel/types.ts';
import { afterActions } from '../../src/reconciler/apply.ts';
import { ScopedPlanner } from '../../src/reconciler/scoped.ts';
import { networkSpec, stamp } from '../../test/helpers/events.ts';

const N = Number(process.argv[2] ?? 200);
const R = Number(process.argv[3] ?? 100);
const id = (i: number) => createHash('sha256').update(`n${i}`).digest('hex');
const sub = (i: number) => `10.${100 + (i >> 8)}.${i & 255}`;
const exec = (s: State, c: Command) => fold(s, stamp(decide(c, s), s));
let state = emptyState;
for (let i = 0; i < N; i++) state = exec(state, { type: 'CreateNetwork', spec: networkSpec(id(i), `${sub(i)}.0/24`, `${sub(i)}.1/24`) });
const fwd: string[] = ['-j DOCKER-USER', '-j DOCKER-ISOLATION-STAGE-1'];
for (let i = 0; i < N; i++) {
  const br = `br-${id(1000 + i).slice(0, 12)}`;
  fwd.push(`-o ${br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`, `-o ${br} -j DOCKER`, `-i ${br} ! -o ${br} -j ACCEPT`, `-i ${br} -o ${br} -j ACCEPT`);
}
const table = (name: string, chains: Record<string, string[]>): IptablesTable => ({ name, chains: Object.fromEntries(Object.entries(chains).map(([k, rules]) => [k, { name: k, policy: ['FORWARD', 'INPUT', 'OUTPUT', 'PREROUTING', 'POSTROUTING'].includes(k) ? 'ACCEPT' : null, rules }])) });
const empty: KernelSnapshot = {
  links: [], addrs: [], routeLocalnet: {}, qdiscs: [], ingressRedirects: {}, nftables: null,
  filter: table('filter', { FORWARD: fwd, INPUT: [], OUTPUT: [], 'DOCKER-USER': ['-j RETURN'], DOCKER: [] }),
  nat: table('nat', { PREROUTING: [], POSTROUTING: [], OUTPUT: [] }),
  filter6: table('filter', { FORWARD: [], INPUT: [], OUTPUT: [] }),
  nat6: table('nat', { PREROUTING: [], POSTROUTING: [], OUTPUT: [] }),
  mangle: table('mangle', { PREROUTING: [] }),
  mangle6: table('mangle', { PREROUTING: [] }),
} as KernelSnapshot;
const planner = new ScopedPlanner();
let fwMs = 0;
const fwCpu: number[] = [];
const rc = await import('../../src/kernel/iptables/render.ts');
const fw = { ...iptablesFirewall, plan: (p: Parameters<typeof iptablesFirewall.plan>[0], o: KernelSnapshot) => { const t0 = performance.now(); const c0 = process.cpuUsage(); const r = iptablesFirewall.plan(p, o); const c1 = process.cpuUsage(c0); fwCpu.push((c1.user + c1.system) / 1000); fwMs += performance.now() - t0; if (process.env['V']) { const t1 = performance.now(); iptablesFirewall.plan(p, o); const t2 = performance.now(); const { renderChains } = rc; const ch = renderChains(p); const t3 = performance.now(); console.log(`miss ${(globalThis as any).__miss} plan ${(t1 - t0).toFixed(2)} again ${(t2 - t1).toFixed(2)} render ${(t3 - t2).toFixed(2)} nets ${p.networks.length}`); } return r; }, planFrom: (p: Parameters<typeof iptablesFirewall.plan>[0], b: Parameters<typeof iptablesFirewall.plan>[0], o: KernelSnapshot) => { const c0 = process.cpuUsage(); const r = iptablesFirewall.planFrom!(p, b, o); const c1 = process.cpuUsage(c0); fwCpu.push((c1.user + c1.system) / 1000); return r; } };
let model = afterActions(empty, planner.full(state, empty, fw), fw)!;
planner.settle(model, planner.full(state, model, fw), []);
const t = { plan: [] as number[], after: [] as number[], fold: [] as number[] };
const X = N + 7;
for (let r = 0; r < R; r++) {
  for (const c of [{ type: 'CreateNetwork', spec: networkSpec(id(X), `${sub(X)}.0/24`, `${sub(X)}.1/24`) }, { type: 'DeleteNetwork', networkId: id(X) }] as Command[]) {
    let t0 = performance.now();
    state = exec(state, c);
    t.fold.push(performance.now() - t0);
    t0 = performance.now();
    const planned = planner.scoped(state, model, fw);
    if (planned === null) throw new Error('not scoped');
    t.plan.push(performance.now() - t0);
    t0 = performance.now();
    const next = afterActions(model, planned, fw);
    t.after.push(performance.now() - t0);
    if (!next) throw new Error('no model');
    model = next;
    planner.settle(model, planned, planned);
    if (r === R - 1) console.log(c.type, planned.length, 'actions:', planned.map((a) => `${a.kind} ${'chain' in a ? a.chain : 'name' in a ? a.name : ''}`).join(', '));
  }
}
const med = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); return `${s[Math.floor(xs.length / 2)]!.toFixed(3)} (min ${s[0]!.toFixed(3)}, p25 ${s[Math.floor(xs.length / 4)]!.toFixed(3)})`; };
console.log(`firewall.plan mean ${(fwMs / (2 * R + 2)).toFixed(3)} ms; CPU per call ${med(fwCpu)}`);
console.log(`N=${N}: per pass median: fold ${med(t.fold)} ms, plan ${med(t.plan)} ms, model update ${med(t.after)} ms`);
{
  const { desiredFromState } = await import('../../src/reconciler/desired.ts');
  const { renderChains } = await import('../../src/kernel/iptables/render.ts');
  const { diffChains } = await import('../../src/kernel/iptables/diff.ts');
  const pol = desiredFromState(state).firewall;
  const tr: number[] = [], td: number[] = [];
  for (let i = 0; i < 200; i++) {
    let t0 = performance.now();
    const ch = renderChains(pol);
    tr.push(performance.now() - t0);
    t0 = performance.now();
    diffChains(ch, model, pol.ownerTag);
    td.push(performance.now() - t0);
  }
  console.log(`render ${med(tr)} ms, diff ${med(td)} ms (same policy objects, ${renderChains(pol).length} chains)`);
}
