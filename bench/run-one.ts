// Runs one benchmark module of bench/suite and prints its result as JSON, e.g.
//   node --import tsx bench/run-one.ts bench/suite/05-startup.ts --smoke
// (`npm run bench` runs them all; this is for working on one.)
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { BenchOptions, BenchResult } from './rows.ts';

const [file, ...flags] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: node --import tsx bench/run-one.ts bench/suite/NN-name.ts [--smoke]\n');
  process.exit(2);
}
const mod = (await import(pathToFileURL(resolve(file)).href)) as { run(o: BenchOptions): Promise<BenchResult> };
const result = await mod.run({ smoke: flags.includes('--smoke') });
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
