import { desiredFromState } from '../src/reconciler/desired.ts';
import { emptyState } from '../src/events/domain/types.ts';
import { networkSpec, endpointSpec } from '../test/helpers/events.ts';
const N = 200, E = 2000;
const hex = (i: number, w: number) => i.toString(16).padStart(w, '0');
const networks: any = {}, endpoints: any = {};
for (let n = 0; n < N; n++) { const s = networkSpec(hex(n, 8) + '0'.repeat(56), `10.${100 + Math.floor(n / 256)}.${n % 256}.0/24`, `10.${100 + Math.floor(n / 256)}.${n % 256}.1/24`); networks[s.networkId] = { ...s }; }
for (let e = 0; e < E; e++) { const n = e % N; const s = endpointSpec(hex(n, 8) + '0'.repeat(56), hex(e, 8) + 'f'.repeat(56), `10.${100 + Math.floor(n / 256)}.${n % 256}.${2 + Math.floor(e / N)}/24`); endpoints[s.endpointId] = { ...s, joined: false, lost: false, portmap: [] }; }
const state = { ...emptyState, networks, endpoints } as any;
for (let i = 0; i < Number(process.env.IT ?? 5); i++) { const t = performance.now(); desiredFromState(state); console.log('desired ms', (performance.now() - t).toFixed(1)); }
import { plan } from '../src/reconciler/plan.ts';
import { afterActions } from '../src/reconciler/apply.ts';
const empty = { links: [], addrs: [], filter: { name: 'filter', chains: {} }, nat: { name: 'nat', chains: {} }, filter6: { name: 'filter', chains: {} }, routeLocalnet: {}, qdiscs: [], ingressRedirects: {} } as any;
const model = afterActions(empty, plan(desiredFromState(state), empty));
for (let i = 0; i < Number(process.env.IT ?? 5); i++) { const t = performance.now(); const p = plan(desiredFromState(state), model); console.log('desired+plan ms', (performance.now() - t).toFixed(1), p.length); }
