// `npm run bench [-- [--smoke] [row …]]`: runs the benchmark suite (bench/suite/NN-*.ts, all of
// it or the rows named, e.g. `npm run bench -- 01 10`) and rewrites BENCHMARKS.md's generated
// block. `--smoke` runs each at a tiny size, prints the tables and writes nothing.
// Root, dockerd up, test images built (scripts/test-env.sh); package.json takes the host test lock.
import { renderRow } from './render.ts';
import { BENCHMARKS_FILE, runSuite } from './harness.ts';

function usage(problem: string): never {
  console.error(`bench: ${problem}\nusage: npm run bench -- [--smoke] [row …]   (a row: 1, 01 or 01-container-cost)`);
  process.exit(2);
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const flags = args.filter((a) => a.startsWith('-'));
  const bad = flags.filter((f) => f !== '--smoke');
  if (bad.length > 0) usage(`unknown option ${bad.join(', ')}`);
  const smoke = flags.includes('--smoke');
  const filter = args.filter((a) => !a.startsWith('-'));
  let runs;
  try {
    runs = await runSuite({ smoke, filter, log: (l) => console.error(l) });
  } catch (e) {
    usage(e instanceof Error ? e.message : String(e));
  }
  for (const r of runs) {
    if (!r.result) continue;
    console.log(`\n### ${r.result.row} (${r.seconds} s)\n\n${renderRow(r.result).join('\n')}`);
  }
  const failed = runs.filter((r) => r.error);
  if (!smoke && runs.length > failed.length) console.error(`bench: results written to ${BENCHMARKS_FILE}`);
  if (failed.length > 0) console.error(`bench: FAILED: ${failed.map((r) => r.id).join(', ')}`);
  return failed.length > 0 ? 1 : 0;
}

process.exitCode = await main();
