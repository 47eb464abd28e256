// A state directory's id in the cluster (src/operator/cluster.ts instanceOf): made once, kept
// across restarts, another for another state directory (a second machine under the same --host).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { instanceOf } from '../../../src/operator/cluster.ts';

describe("a state directory's cluster instance", () => {
  it('is made on first use, kept for the next, and another state directory has another', async () => {
    const [a, b] = await Promise.all([mkdtemp(join(tmpdir(), 'ledgernet-instance-')), mkdtemp(join(tmpdir(), 'ledgernet-instance-'))]);
    try {
      const first = await instanceOf(a);
      assert.match(first, /^[0-9a-f-]{36}$/);
      assert.equal(await instanceOf(a), first, 'a restart on the same state directory is the same instance');
      assert.equal((await readFile(join(a, 'cluster-instance'), 'utf8')).trim(), first);
      assert.equal((await stat(join(a, 'cluster-instance'))).mode & 0o777, 0o600);
      assert.notEqual(await instanceOf(b), first);
    } finally {
      await Promise.all([rm(a, { recursive: true, force: true }), rm(b, { recursive: true, force: true })]);
    }
  });
});
