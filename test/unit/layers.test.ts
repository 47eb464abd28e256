// The layer rules (.dependency-cruiser.cjs) hold for src/ and really fail on a violation.
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';

const root = resolve(import.meta.dirname, '../..');
const depcruise = join(root, 'node_modules/.bin/depcruise');
const config = join(root, '.dependency-cruiser.cjs');

async function cruise(cwd: string) {
  return execa(depcruise, ['src', '--config', config, '--output-type', 'err'], { cwd, reject: false, all: true });
}

describe('layer rules', () => {
  it('src/ follows the layer table', async () => {
    const r = await cruise(root);
    assert.equal(r.exitCode, 0, r.all);
  });

  it('an import against the table fails, naming the rule and both files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ledgernet-layers-'));
    try {
      for (const d of ['src/kernel', 'src/api', 'src/events/domain']) await mkdir(join(dir, d), { recursive: true });
      await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'nodenext', allowImportingTsExtensions: true, noEmit: true } }));
      await writeFile(join(dir, 'src/api/index.ts'), 'export const route = 1;\n');
      await writeFile(join(dir, 'src/events/domain/types.ts'), "import { route } from '../../api/index.ts';\nexport const e = route;\n");
      await writeFile(join(dir, 'src/kernel/run.ts'), "import { e } from '../events/domain/types.ts';\nexport const k = e;\n");
      const r = await cruise(dir);
      assert.notEqual(r.exitCode, 0, 'a kernel → events and an events → api import must fail');
      assert.match(r.all, /layer-kernel: src\/kernel\/run\.ts → src\/events\/domain\/types\.ts/);
      assert.match(r.all, /layer-events-domain: src\/events\/domain\/types\.ts → src\/api\/index\.ts/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
