// The benchmark suite at a tiny size (`npm run bench -- --smoke`, here in process): every module
// in bench/suite, whatever is there, runs and returns well-formed results, the smoke run writes
// neither BENCHMARKS.md nor bench/results.json, and nothing of the benchmarks stays on the host.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { BENCHMARKS_FILE, checkResult, discover, RESULTS_FILE, runSuite } from '../../bench/harness.ts';
import { docker } from '../helpers/docker.ts';
import { waitNoLeaks } from '../helpers/leaks.ts';

const contents = async (path: string): Promise<string | null> => readFile(path, 'utf8').catch(() => null);

async function benchObjects(): Promise<string[]> {
  const ls = async (args: string[], field: string) => (await docker([...args, '--filter', 'name=lnbench-', '--format', field])).stdout;
  const found = await Promise.all([ls(['ps', '-a'], '{{.Names}}'), ls(['network', 'ls'], '{{.Name}}')]);
  return found.flatMap((s) => s.split('\n')).filter((l) => l.trim() !== '');
}

test('every benchmark in bench/suite runs at smoke size and returns well-formed results', { timeout: 240_000 }, async (t) => {
  const ids = await discover();
  assert.ok(ids.length >= 5, `bench/suite holds only ${ids.join(', ')}`);
  const before = { md: await contents(BENCHMARKS_FILE), json: await contents(RESULTS_FILE) };

  const runs = await runSuite({ smoke: true, log: (l) => t.diagnostic(l) });

  assert.deepEqual(runs.map((r) => r.id), ids, 'every module ran, in order');
  for (const r of runs) {
    await t.test(r.id, () => {
      assert.equal(r.error, undefined, `bench/suite/${r.id}.ts failed: ${r.error}`);
      const result = r.result;
      assert.ok(result, 'a result');
      assert.deepEqual(checkResult(result), []);
      for (const m of result.measurements) assert.ok(Number.isFinite(m.median) && m.n > 0, `${m.what}: median ${m.median}, n ${m.n}`);
      for (const v of result.verdicts) assert.ok(Number.isFinite(v.value), `${v.target}: ${v.value}`);
    });
  }
  assert.equal(await contents(BENCHMARKS_FILE), before.md, 'a smoke run leaves BENCHMARKS.md alone');
  assert.equal(await contents(RESULTS_FILE), before.json, 'a smoke run leaves bench/results.json alone');
  assert.deepEqual(await benchObjects(), [], 'no benchmark container or network is left');
  await waitNoLeaks();
});

test('a malformed benchmark result is named, not recorded', () => {
  const bad = {
    row: '0 nothing',
    measurements: [{ what: 'x', unit: 'ms' as const, median: Number.NaN, min: 1, max: 1, n: 0 }],
    verdicts: [{ target: 't', value: Number.POSITIVE_INFINITY, met: true }],
    notes: [],
  };
  assert.deepEqual(checkResult(bad), ['x: n is 0', 'x: median is NaN', 't: value is Infinity']);
});
