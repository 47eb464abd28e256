// What `ledgernet events archive` costs the calls that record something while it runs: a store
// on a state dir (on disk, not tmpfs) whose state holds N networks, R archives in a row, each with
// a call made right after it starts (it waits for the new file), against the same call alone.
// node --import tsx bench/probes/archive-pause.ts [N] [R] [dir]
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { byLedgernet, openStore, type EventStore } from '../../src/events/index.ts';
import { networkSpec } from '../../test/helpers/events.ts';

const N = Number(process.argv[2] ?? 2000);
const R = Number(process.argv[3] ?? 15);
const parent = process.argv[4] ?? '/var/tmp';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const BASE: Record<string, number> = { a: 210, b: 220, c: 230 };
const spec = (tag: string, i: number) => networkSpec(`${tag}${i}`.padEnd(64, 'e'), `10.${BASE[tag]}.${i}.0/24`, `10.${BASE[tag]}.${i}.1/24`);

async function timedCall(store: EventStore, tag: string, i: number): Promise<number> {
  const t0 = performance.now();
  await store.execute({ type: 'CreateNetwork', spec: spec(tag, i) }, byLedgernet('bench'));
  return performance.now() - t0;
}

const dir = await mkdtemp(join(parent, 'ln-archive-pause-'));
try {
  const { store } = await openStore(dir, { host: 'bench' });
  await Promise.all(Array.from({ length: N }, (_, i) => store.execute({ type: 'CreateNetwork', spec: networkSpec(`${i}`.padEnd(64, 'd'), `10.${i >> 8}.${i & 255}.0/24`, `10.${i >> 8}.${i & 255}.1/24`) }, byLedgernet('bench'))));
  const alone: number[] = [];
  const during: number[] = [];
  const archive: number[] = [];
  for (let r = 0; r < R; r++) {
    alone.push(await timedCall(store, 'a', r));
    const t0 = performance.now();
    const a = store.archive(byLedgernet('bench'));
    const waited = timedCall(store, 'b', r);
    await a;
    archive.push(performance.now() - t0);
    during.push(await waited);
    await timedCall(store, 'c', r); // something to archive next round
  }
  await store.close();
  const f = (xs: number[]) => `${median(xs).toFixed(1)} ms (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)})`;
  console.log(JSON.stringify({ networks: N, rounds: R, dir: parent }));
  console.log(`archive: ${f(archive)}`);
  console.log(`a call alone: ${f(alone)}`);
  console.log(`a call made as an archive starts: ${f(during)}`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
