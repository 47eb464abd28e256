import { given, networkSpec, endpointSpec } from '../test/helpers/events.ts';
import { desiredFromState } from '../src/reconciler/desired.ts';
import { plan } from '../src/reconciler/plan.ts';
import { afterActions } from '../src/reconciler/apply.ts';
import type { Command } from '../src/events/domain/commands.ts';
const N = Number(process.argv[2] ?? 200), E = Number(process.argv[3] ?? 2000);
const cmds: Command[] = [];
const hex = (i: number, w: number) => i.toString(16).padStart(w, '0');
for (let n = 0; n < N; n++) cmds.push({ type: 'CreateNetwork', spec: networkSpec(hex(n, 8) + '0'.repeat(56), `10.${100 + Math.floor(n / 256)}.${n % 256}.0/24`, `10.${100 + Math.floor(n / 256)}.${n % 256}.1/24`) });
for (let e = 0; e < E; e++) { const n = e % N; cmds.push({ type: 'CreateEndpoint', spec: endpointSpec(hex(n, 8) + '0'.repeat(56), hex(e, 8) + 'f'.repeat(56), `10.${100 + Math.floor(n / 256)}.${n % 256}.${2 + Math.floor(e / N)}/24`) }); }
let t = performance.now();
const state = given(...cmds);
console.log('fold ms', (performance.now() - t).toFixed(1));
const empty = { links: [], addrs: [], filter: { name: 'filter', chains: {} }, nat: { name: 'nat', chains: {} }, filter6: { name: 'filter', chains: {} }, routeLocalnet: {}, qdiscs: [], ingressRedirects: {} };
t = performance.now();
const d = desiredFromState(state);
console.log('desired ms', (performance.now() - t).toFixed(1));
t = performance.now();
const a = plan(d, empty as any);
console.log('plan from empty ms', (performance.now() - t).toFixed(1), a.length);
const model = afterActions(empty as any, a);
for (let i = 0; i < 5; i++) {
  t = performance.now();
  const d2 = desiredFromState(state);
  const p = plan(d2, model);
  console.log('desired+plan no-change ms', (performance.now() - t).toFixed(1), p.length);
}
