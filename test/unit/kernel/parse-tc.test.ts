import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseQdiscs, parseTcBatchErrors } from '../../../src/kernel/parse-tc.ts';
import { readFixture, readFixtureLines } from '../../helpers/fixtures.ts';

describe('parseQdiscs', () => {
  it('reads tbf (rate in bytes/s) and ingress qdiscs of every device', () => {
    assert.deepEqual(parseQdiscs(readFixture('tc/qdisc-show.tbf-ingress.json')), [
      { dev: 'lnv-aaaa', kind: 'tbf', handle: '8004:', root: true, parent: null, rate: 1_250_000 },
      { dev: 'lnv-bbbb', kind: 'ingress', handle: 'ffff:', root: false, parent: 'ffff:fff1', rate: null },
    ]);
  });

  it('reads empty output as no qdiscs, and refuses what is not tc JSON', () => {
    assert.deepEqual(parseQdiscs(''), []);
    assert.throws(() => parseQdiscs('{"kind":1}'), { name: 'DriverError', code: 'LN_ERR_KERNEL_PARSE' });
    assert.throws(() => parseQdiscs('[{"kind":"tbf"}]'), { code: 'LN_ERR_KERNEL_PARSE' });
  });
});

describe('parseTcBatchErrors', () => {
  it('maps "Command failed -:N" to the failed lines with their messages', () => {
    const lines = readFixtureLines('tc/batch-input.missing-dev.txt');
    assert.deepEqual(parseTcBatchErrors(readFixture('tc/batch-stderr.missing-dev.txt'), lines), [
      { line: 1, command: 'qdisc del dev lnv-cccc root', message: 'Cannot find device "lnv-cccc"' },
      { line: 2, command: 'qdisc del dev lnv-bbbb root', message: 'Error: Cannot delete qdisc with handle of zero.' },
    ]);
  });
});
