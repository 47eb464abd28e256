// Restores of several tables joined into one input (one process): where each table's section
// starts, and which table a failed restore stopped at, from the messages iptables-restore 1.8.9
// prints (nf_tables and legacy).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { failedSection, joinInputs } from '../../../../src/kernel/iptables/restore.ts';

const filter = '*filter\n:LEDGERNET-A - [0:0]\n-A LEDGERNET-A -j RETURN\nCOMMIT\n';
const nat = '*nat\n-D POSTROUTING -j RETURN\nCOMMIT\n';
const mangle = '*mangle\n-A PREROUTING -j RETURN\nCOMMIT\n';

describe('joined iptables restores', () => {
  it('joins the inputs and says the line each section starts at', () => {
    const { input, starts } = joinInputs([filter, nat, mangle]);
    assert.equal(input, filter + nat + mangle);
    assert.deepEqual(starts, [1, 5, 8]);
    assert.deepEqual(input.split('\n').filter((_, i) => starts.includes(i + 1)), ['*filter', '*nat', '*mangle']);
  });

  it('finds the table a restore stopped at, from a failed commit or a parse error', () => {
    const starts = joinInputs([filter, nat, mangle]).starts;
    assert.equal(failedSection('iptables-restore: line 6 failed: Bad rule (does a matching rule exist in that chain?).\n', starts), 1);
    assert.equal(failedSection("iptables-restore v1.8.9 (nf_tables): Chain 'X' does not exist\nError occurred at line: 3\nTry `iptables-restore -h'\n", starts), 0);
    assert.equal(failedSection('iptables-restore: line 10 failed\n', starts), 2);
  });

  it('names no table when the message names no line', () => {
    assert.equal(failedSection("iptables-restore v1.8.9 (nf_tables): unable to initialize table 'mangle'\n", [1, 5]), null);
    assert.equal(failedSection('', [1]), null);
  });
});
