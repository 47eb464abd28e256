import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const GOLDEN_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'golden');

/** Compares `value` with test/golden/<name>; `UPDATE_GOLDEN=1` rewrites the file instead. */
export function assertGolden(name: string, value: unknown): void {
  const path = join(GOLDEN_DIR, name);
  const text = typeof value === 'string' ? value : `${JSON.stringify(value, null, 2)}\n`;
  if (process.env['UPDATE_GOLDEN'] === '1' || !existsSync(path)) {
    if (process.env['UPDATE_GOLDEN'] !== '1' && process.env['CI_STRICT_GOLDEN'] === '1') {
      assert.fail(`golden file ${path} is missing`);
    }
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    return;
  }
  assert.equal(text, readFileSync(path, 'utf8'), `output differs from golden file ${path} (UPDATE_GOLDEN=1 rewrites it)`);
}
