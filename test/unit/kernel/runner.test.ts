// How the daemon runs a command (src/kernel/runner.ts over spawn-lean.ts): output and exit code of
// a process that ran, and a missing program as "did not run" (not as an exit code of its own).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRunner } from '../../../src/kernel/runner.ts';

describe('the command runner', () => {
  const run = createRunner(5_000, undefined);

  it('returns stdout, stderr and the exit code, input on stdin, in LC_ALL=C', async () => {
    const o = await run('echo', 'sh', ['-c', 'cat; echo "$LC_ALL"; echo oops >&2; exit 3'], 'in\n');
    assert.deepEqual([o.stdout, o.stderr, o.exitCode], ['in\nC\n', 'oops\n', 3]);
    const f = await createRunner(5_000, undefined, 'file')('echo', 'sh', ['-c', 'echo through a file']);
    assert.equal(f.stdout, 'through a file\n');
  });

  it('fails a program that does not exist as not run, naming it', async () => {
    await assert.rejects(run('read the nftables table', 'ledgernet-no-such-program', ['-j']), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'LN_ERR_KERNEL_EXEC');
      assert.match(e.message, /could not read the nftables table: ledgernet-no-such-program -j did not run/);
      return true;
    });
  });
});
