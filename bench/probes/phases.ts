// Pass timings by phase for a container's Docker calls at N other networks, in a netns.
// node --import tsx bench/probes/phases.ts <otherNetworks> [rounds]
import { createKernel, iptablesFirewall, type Kernel } from '../../src/kernel/index.ts';
import { VETH_PREFIX } from '../../src/events/domain/naming.ts';
import { Reconciler } from '../../src/reconciler/index.ts';
import { desiredFromState } from '../../src/reconciler/desired.ts';
import { plan } from '../../src/reconciler/plan.ts';
import type { FirewallBackend } from '../../src/kernel/types.ts';
import { hostCommands, layout, stateFrom, networkSpec, endpointSpec, networkId } from '../offline/scenario.ts';
import { withNetns } from '../offline/netns.ts';
import type { State } from '../../src/events/domain/types.ts';
import { decide } from '../../src/events/domain/decide.ts';
import { evolveInPlace } from '../../src/events/domain/evolve.ts';
import { produce } from 'immer';
import { execa } from 'execa';
import { ScopedPlanner } from '../../src/reconciler/scoped.ts';
for (const m of ['scoped', 'full', 'settle'] as const) {
  const orig = (ScopedPlanner.prototype as any)[m];
  (ScopedPlanner.prototype as any)[m] = function (...a: unknown[]) { const t0 = performance.now(); try { return orig.apply(this, a); } finally { add(`planner.${m} ${current}`, performance.now() - t0); } };
}

let current = '';
const N = Number(process.argv[2] ?? 200);
const ROUNDS = Number(process.argv[3] ?? 20);
const quiet = { info() {}, warn() {}, error() {}, debug() {} };
const spent: Record<string, number[]> = {};
const add = (k: string, ms: number) => (spent[k] ??= []).push(ms);
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] ?? 0;

function timedKernel(k: Kernel): Kernel {
  return new Proxy(k, { get(t, p, r) { const v = Reflect.get(t, p, r) as unknown; if (typeof v !== 'function') return v; return async (...args: unknown[]) => { const t0 = performance.now(); try { return await (v as any).apply(t, args); } finally { add(`kernel.${String(p)} ${current}`, performance.now() - t0); } }; } });
}
const fw: FirewallBackend = { ...iptablesFirewall, plan: (p, o) => { const t0 = performance.now(); try { return iptablesFirewall.plan(p, o); } finally { add('firewall.plan', performance.now() - t0); } }, after: (o, a) => { const t0 = performance.now(); try { return iptablesFirewall.after(o, a); } finally { add('firewall.after', performance.now() - t0); } } };

function apply(state: State, cmd: any): State {
  return produce(state, (d: any) => { let seq = d.seq; for (const e of decide(cmd, d)) { seq++; evolveInPlace(d, { ...e, seq, id: `x:${seq}`, host: 'x', v: 1, at: '', prevhash: d.hash, hash: d.hash } as any); } });
}

await withNetns('lnphases', async (netns) => {
  // Docker's 200 bridges, as links (and nothing else) in the namespace.
  if (N > 0) await execa('ip', ['-n', netns, '-batch', '-'], { input: Array.from({ length: N }, (_, i) => `link add br-${i.toString(16).padStart(12, '0')} type bridge`).join('\n') });
  const l = { networks: N + 1, endpoints: 0, place: () => ({ net: 0, k: 0 }) };
  let state = stateFrom(hostCommands(l as any));
  const r = new Reconciler({ kernel: timedKernel(createKernel({ netns, filterPrefixes: [VETH_PREFIX] })), getState: () => { const t0 = performance.now(); const s = state; add('getState', performance.now() - t0); return s; }, log: quiet, onLost: async () => undefined, intervalMs: 0, firewall: fw });
  const first = await r.requestPass('startup');
  if (first.failures.length) throw new Error(JSON.stringify(first.failures[0]));
  for (const k of Object.keys(spent)) delete spent[k];
  const net = networkId(0);
  const passes: Record<string, number[]> = {};
  const phase: Record<string, number[]> = {};
  for (let i = 0; i < ROUNDS; i++) {
    const ep = ('e9d1' + i.toString(16).padStart(6, '0')).padEnd(64, '0');
    const spec = { ...endpointSpec(layout(10), 0), endpointId: ep, veth: 'lnv-' + ep.slice(0, 11), peer: 'lnp-' + ep.slice(0, 11), address: `10.100.0.${i + 2}/24` };
    const calls: [string, any][] = [
      ['CreateEndpoint', { type: 'CreateEndpoint', spec }],
      ['Join', { type: 'Join', networkId: net, endpointId: ep, sandboxKey: '/x' }],
      ['ProgramExternalConnectivity', { type: 'ProgramExternal', networkId: net, endpointId: ep, portmap: [] }],
      ['RevokeExternalConnectivity', { type: 'RevokeExternal', networkId: net, endpointId: ep }],
      ['Leave', { type: 'Leave', networkId: net, endpointId: ep }],
      ['DeleteEndpoint', { type: 'DeleteEndpoint', networkId: net, endpointId: ep }],
    ];
    for (const [m, c] of calls) {
      state = apply(state, c);
      // phases, against the model, outside the pass
      const model = (r as any).model;
      if (model) {
        let t0 = performance.now(); const d = desiredFromState(state); (phase['desired'] ??= []).push(performance.now() - t0);
        const before = spent['firewall.plan']?.length ?? 0;
        t0 = performance.now(); plan(d, model, fw); const pl = performance.now() - t0;
        const f = spent['firewall.plan']?.[before] ?? 0; spent['firewall.plan']?.splice(before);
        (phase['plan links'] ??= []).push(pl - f); (phase['plan firewall'] ??= []).push(f);
      }
      current = m;
      const t0 = performance.now();
      const res = await r.requestPass(`NetworkDriver.${m}`);
      (passes[m] ??= []).push(performance.now() - t0);
      if (res.failures.length) throw new Error(JSON.stringify(res.failures[0]));
    }
  }
  await r.stop();
  console.log(`N=${N} rounds=${ROUNDS} reads`, r.reads);
  for (const [k, v] of Object.entries(passes)) console.log(`pass ${k}: median ${med(v).toFixed(2)} ms`);
  for (const [k, v] of Object.entries(phase)) console.log(`phase ${k}: median ${med(v).toFixed(2)} ms`);
  for (const [k, v] of Object.entries(spent)) console.log(`${k}: n ${v.length} median ${med(v).toFixed(2)} total ${v.reduce((a, b) => a + b, 0).toFixed(0)} ms`);
});
