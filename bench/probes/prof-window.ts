// Self time by function (and by file) of a V8 .cpuprofile within a monotonic window [from, to] in µs.
// node --import tsx bench/probes/prof-window.ts <file.cpuprofile> <fromUs> <toUs> [top]
import { readFileSync } from 'node:fs';
interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
const [file, from, to, topArg] = process.argv.slice(2);
const p = JSON.parse(readFileSync(file!, 'utf8')) as { nodes: Node[]; startTime: number; samples: number[]; timeDeltas: number[] };
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const self = new Map<string, number>();
const incl = new Map<string, number>();
let t = p.startTime;
let total = 0;
for (let i = 0; i < p.samples.length; i++) {
  t += p.timeDeltas[i]!;
  if (t < Number(from) || t > Number(to)) continue;
  const dt = p.timeDeltas[i + 1] ?? 0;
  const n = byId.get(p.samples[i]!)!;
  const key = (x: Node) => `${x.callFrame.functionName || '(anon)'} ${x.callFrame.url.replace(/.*\/(dist|node_modules)\//, '$1/')}:${x.callFrame.lineNumber}`;
  if (n.callFrame.functionName === '(idle)') continue;
  total += dt;
  self.set(key(n), (self.get(key(n)) ?? 0) + dt);
  const seen = new Set<string>();
  for (let x: Node | undefined = n; x; x = byId.get(parent.get(x.id) ?? -1)) {
    const k = key(x);
    if (seen.has(k)) continue;
    seen.add(k);
    incl.set(k, (incl.get(k) ?? 0) + dt);
  }
}
const top = Number(topArg ?? 25);
console.log(`busy ${(total / 1000).toFixed(0)} ms in window`);
console.log('--- self');
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log((v / 1000).toFixed(1).padStart(8), k);
console.log('--- inclusive');
for (const [k, v] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, top * 2)) console.log((v / 1000).toFixed(1).padStart(8), k);
// FOCUS=<substring>: inclusive time under the first frame matching it, by its callee (one level down), and by leaf.
const focus = process.env['FOCUS'];
if (focus) {
  const byChild = new Map<string, number>();
  const byLeaf = new Map<string, number>();
  let t2 = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    t2 += p.timeDeltas[i]!;
    if (t2 < Number(from) || t2 > Number(to)) continue;
    const dt = p.timeDeltas[i + 1] ?? 0;
    const chain: Node[] = [];
    for (let x: Node | undefined = byId.get(p.samples[i]!); x; x = byId.get(parent.get(x.id) ?? -1)) chain.push(x);
    const k = (x: Node) => `${x.callFrame.functionName || '(anon)'} ${x.callFrame.url.replace(/.*\/(dist|node_modules)\//, '$1/')}:${x.callFrame.lineNumber}`;
    const at = chain.findLastIndex((x) => k(x).includes(focus));
    if (at < 0) continue;
    const child = at > 0 ? k(chain[at - 1]!) : '(self)';
    byChild.set(child, (byChild.get(child) ?? 0) + dt);
    byLeaf.set(k(chain[0]!), (byLeaf.get(k(chain[0]!)) ?? 0) + dt);
  }
  console.log(`--- under ${focus}, by callee`);
  for (const [kk, v] of [...byChild].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log((v / 1000).toFixed(1).padStart(8), kk);
  console.log(`--- under ${focus}, by leaf`);
  for (const [kk, v] of [...byLeaf].sort((a, b) => b[1] - a[1]).slice(0, 20)) console.log((v / 1000).toFixed(1).padStart(8), kk);
}
