// The managed plugin's settings. Docker refuses `docker plugin set` of a variable its config.json
// does not declare, so every LEDGERNET_* variable ledgernet reads (a quoted name in src/, which is
// how the code reads its environment) is declared in the config.json scripts/build-plugin.sh
// writes, or left out on purpose and named, with why, in README's plugin section.
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const REPO = join(import.meta.dirname, '../..');

/** Not declared: each makes no sense as a plugin setting (README says why). */
const LEFT_OUT = [
  // The entrypoint's --socket and --state-dir win over them.
  'LEDGERNET_SOCKET',
  'LEDGERNET_STATE_DIR',
  // The supervisor's to its worker.
  'LEDGERNET_WORKER_SOCKET',
  'LEDGERNET_PREVIOUS_WORKER',
  'LEDGERNET_PLUGIN_SOCKET_FROM',
  // The chaos bench's trace file.
  'LEDGERNET_WINDOW_TRACE',
];

interface PluginEnv {
  readonly name: string;
  readonly description?: string;
  readonly settable?: readonly string[];
  readonly value: string;
}

/** The config.json build-plugin.sh writes: its quoted here-document (no expansion), as it is. */
async function pluginEnv(): Promise<PluginEnv[]> {
  const script = await readFile(join(REPO, 'scripts/build-plugin.sh'), 'utf8');
  const doc = /^cat >"\$OUT\/config\.json" <<'EOF'\n([\s\S]*?)^EOF$/m.exec(script)?.[1];
  assert.ok(doc !== undefined, 'build-plugin.sh writes config.json from a quoted here-document');
  return (JSON.parse(doc) as { env: PluginEnv[] }).env;
}

/** Every LEDGERNET_* name in a string literal of src/. */
async function namesRead(): Promise<string[]> {
  const files = (await readdir(join(REPO, 'src'), { recursive: true })).filter((f) => f.endsWith('.ts'));
  const texts = await Promise.all(files.map((f) => readFile(join(REPO, 'src', f), 'utf8')));
  return [...new Set(texts.flatMap((t) => [...t.matchAll(/['"](LEDGERNET_[A-Z0-9_]+)['"]/g)].map((m) => m[1]!)))].sort();
}

/** README's "As a managed Docker plugin" section. */
async function pluginSection(): Promise<string> {
  const readme = await readFile(join(REPO, 'README.md'), 'utf8');
  const start = readme.indexOf('### As a managed Docker plugin');
  assert.ok(start >= 0);
  return readme.slice(start, readme.indexOf('\n## ', start));
}

describe("the managed plugin's config.json env", () => {
  it('declares every LEDGERNET_* variable ledgernet reads, except those left out on purpose', async () => {
    const declared = new Set((await pluginEnv()).map((e) => e.name));
    const read = await namesRead();
    assert.ok(read.length > 20, `found ${read.length} names in src/`);
    assert.deepEqual(read.filter((n) => !declared.has(n) && !LEFT_OUT.includes(n)), [], 'read by ledgernet, not declared: `docker plugin set` refuses them');
    assert.deepEqual(LEFT_OUT.filter((n) => declared.has(n) || !read.includes(n)), [], 'left out, yet declared or no longer read');
    assert.deepEqual([...declared].filter((n) => n.startsWith('LEDGERNET_') && !read.includes(n)), [], 'declared, but nothing reads it');
  });

  it('each has a description and a value; all but the two mount paths are settable', async () => {
    for (const e of (await pluginEnv()).filter((e) => e.name.startsWith('LEDGERNET_'))) {
      assert.ok(e.description, `${e.name} has a description`);
      assert.equal(typeof e.value, 'string', `${e.name} has a value`);
      const mount = e.name === 'LEDGERNET_PROC_SYS_NET' || e.name === 'LEDGERNET_RUN_DIR';
      assert.deepEqual(e.settable, mount ? undefined : ['value'], e.name);
    }
  });

  it("README's plugin section names each declared variable and each one left out", async () => {
    const section = await pluginSection();
    const names = [...(await pluginEnv()).map((e) => e.name).filter((n) => n.startsWith('LEDGERNET_')), ...LEFT_OUT];
    assert.deepEqual(names.filter((n) => !section.includes(`\`${n}\``)), []);
  });
});
